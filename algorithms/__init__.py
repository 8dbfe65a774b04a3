"""Style-transfer algorithms: pure PyTorch, no Ray, MLflow or file I/O (see base.py)."""

from __future__ import annotations

from .adain import ALGORITHM as _ADAIN
from .adain_optimize import ALGORITHM as _ADAIN_OPTIMIZE
from .base import Algorithm, StepInfo, StepLoss, StylizeResult
from .gatys import ALGORITHM as _GATYS
from .histogram import ALGORITHM as _HISTOGRAM
from .johnson import ALGORITHM as _JOHNSON
from .mrf import ALGORITHM as _MRF

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (_GATYS, _MRF, _HISTOGRAM, _ADAIN, _ADAIN_OPTIMIZE, _JOHNSON)
}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered under ``name``; ``ValueError`` lists the valid names."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; available: {', '.join(sorted(ALGORITHMS))}") from None


__all__ = ["ALGORITHMS", "Algorithm", "StepInfo", "StepLoss", "StylizeResult", "get_algorithm"]

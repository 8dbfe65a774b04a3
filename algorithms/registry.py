"""The registry of algorithms: name -> ``Algorithm`` (loads every algorithm, and PyTorch)."""

from __future__ import annotations

from .base import Algorithm
from .feedforward.adain.algorithm import ALGORITHM as _ADAIN
from .feedforward.johnson.algorithm import ALGORITHM as _JOHNSON
from .feedforward.style_swap.algorithm import ALGORITHM as _STYLE_SWAP
from .feedforward.wct.algorithm import ALGORITHM as _WCT
from .names import unknown_algorithm
from .optimization.adain_optimize import ALGORITHM as _ADAIN_OPTIMIZE
from .optimization.gatys import ALGORITHM as _GATYS
from .optimization.histogram import ALGORITHM as _HISTOGRAM
from .optimization.mrf import ALGORITHM as _MRF
from .optimization.style_swap_optimize import ALGORITHM as _STYLE_SWAP_OPTIMIZE

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        _GATYS,
        _MRF,
        _HISTOGRAM,
        _ADAIN,
        _ADAIN_OPTIMIZE,
        _JOHNSON,
        _STYLE_SWAP,
        _STYLE_SWAP_OPTIMIZE,
        _WCT,
    )
}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered under ``name``; ``ValueError`` lists the valid names (and the
    nearest one)."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(unknown_algorithm(name)) from None

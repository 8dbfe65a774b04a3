"""The registry of algorithms: name -> ``Algorithm`` (loads every algorithm, and PyTorch)."""

from __future__ import annotations

from .adain import ALGORITHM as _ADAIN
from .adain_optimize import ALGORITHM as _ADAIN_OPTIMIZE
from .base import Algorithm
from .gatys import ALGORITHM as _GATYS
from .histogram import ALGORITHM as _HISTOGRAM
from .johnson import ALGORITHM as _JOHNSON
from .mrf import ALGORITHM as _MRF
from .names import unknown_algorithm
from .style_swap import ALGORITHM as _STYLE_SWAP
from .style_swap_optimize import ALGORITHM as _STYLE_SWAP_OPTIMIZE
from .wct import ALGORITHM as _WCT

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

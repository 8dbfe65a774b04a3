"""The sizes an output or style image may have: light (no PyTorch), so that the command line
checks ``--size`` before it loads anything."""

from __future__ import annotations

import os

from stylegrid.algorithms.names import MIN_SIDE

DEFAULT_MAX_SIZE = 8192  # output and style sizes: MIN_SIDE..8192 px unless $STYLEGRID_MAX_SIZE says more
MAX_SIZE_ENV = "STYLEGRID_MAX_SIZE"


def size_limit() -> int:
    """The largest output or style size allowed: 8192 px, or ``$STYLEGRID_MAX_SIZE``."""
    text = os.environ.get(MAX_SIZE_ENV, "")
    try:
        return max(MIN_SIDE, int(text)) if text.strip() else DEFAULT_MAX_SIZE
    except ValueError:
        raise ValueError(f"${MAX_SIZE_ENV}={text!r}: expected a whole number of pixels") from None


def check_size(value: int, what: str) -> int:
    """``value`` if it lies in MIN_SIDE..size_limit(); else a ValueError saying so."""
    limit = size_limit()
    if not MIN_SIDE <= value <= limit:
        raise ValueError(
            f"{what}: {value} px is outside {MIN_SIDE}..{limit} "
            f"(VGG-19 needs {MIN_SIDE} px; set ${MAX_SIZE_ENV} to allow more than {limit})"
        )
    return value

"""Sizes: fitting an image's long side, resizing, padding to a network's multiple, and the side at
which a large result is measured. Every algorithm, the quality measures and the image loading take
their sizes from here, so that a 2000 x 1333 photo at 512 px is 512 x 341 everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# px: a result larger than this is measured (its losses and quality) on a copy of this long side,
# so that a 4096 px print costs what a 1024 px image does to measure and rows of every size compare
MEASURE_SIDE = 1024


def fitted_size(height: int, width: int, long_side: int, *, enlarge: bool = True, min_side: int = 1):
    """(height, width) scaled so that the long side is ``long_side`` (never larger than it is when
    ``enlarge`` is False), each side at least ``min_side``."""
    f = long_side / max(height, width)
    if not enlarge:
        f = min(f, 1.0)
    return max(min_side, round(height * f)), max(min_side, round(width * f))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` [..., H, W] at ``size`` (bicubic, antialiased when shrinking); itself when equal."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True)


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """``image`` with its long side at ``long_side`` (bicubic, either way)."""
    return resize(image, fitted_size(*image.shape[-2:], long_side))


def shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` with its long side at most ``side`` (area-averaged: what a network's output is
    measured on); itself when it is no larger."""
    if max(image.shape[-2:]) <= side:
        return image
    return F.interpolate(image.float(), size=fitted_size(*image.shape[-2:], side), mode="area")


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad right and bottom to a multiple of ``multiple`` (a network's total stride), reflected,
    replicated where the image is too small to reflect."""
    h, w = image.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return image
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode)

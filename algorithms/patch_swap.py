"""The style swap of Chen & Schmidt, "Fast Patch-based Style Transfer of Arbitrary Style"
(2016), as a pure function on feature maps.

Every ``k`` x ``k`` patch of the content features (stride 1) is replaced by the style patch
with the highest normalised cross-correlation with it (section 3.1 of the paper): the
convolution of the content features with the unit-norm style patches scores every pair (the
content patch's own norm does not change which style patch wins), the arg-max picks one, and a
transposed convolution of the one-hot choice with the unnormalised style patches places the
chosen patches back, overlapping values averaged. Here the transposed convolution of a one-hot
is written as what it computes, ``F.fold`` of the chosen patches (no [N_style, H, W] one-hot
tensor), and the matching reuses the chunked search of ``mrf.py``, so that the scores held at
once stay bounded whatever the number of style patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .mrf import MATCH_CHUNK_ELEMENTS, extract_patches, nearest_patches, normalise_rows

PATCH_SIZE = 3  # the paper's patches: 3 x 3 at relu3_1


def style_patches(style: torch.Tensor, size: int = PATCH_SIZE, stride: int = 1) -> torch.Tensor:
    """The style features' patches [N, C*size*size] (``style`` [1, C, H, W]), every one of them
    at ``stride`` 1 as in the paper."""
    if min(style.shape[-2:]) < size:
        raise ValueError(
            f"the style features ({tuple(style.shape[-2:])}) are smaller than one {size}x{size} patch"
        )
    return extract_patches(style, size, stride)


def swap(
    content: torch.Tensor,
    bank: torch.Tensor,
    size: int = PATCH_SIZE,
    chunk_elements: int = MATCH_CHUNK_ELEMENTS,
) -> torch.Tensor:
    """``content`` [B, C, H, W] with every ``size`` x ``size`` patch replaced by its best
    normalised-cross-correlation match among ``bank``'s patches [N, C*size*size]
    (``style_patches``), overlaps averaged -> [B, C, H, W] in the content's dtype."""
    b, c, h, w = content.shape
    if min(h, w) < size:
        raise ValueError(f"the content features ({h}x{w}) are smaller than one {size}x{size} patch")
    if bank.shape[1] != c * size * size:
        raise ValueError(f"patches of {bank.shape[1]} values do not fit {c} channels of {size}x{size}")
    filters = normalise_rows(bank).reshape(-1, c, size, size).to(content.dtype)
    ones = torch.ones(1, c * size * size, (h - size + 1) * (w - size + 1), device=content.device)
    overlap = F.fold(ones, (h, w), size)  # how many patches cover each position
    out = []
    for i in range(b):
        index = nearest_patches(content[i : i + 1], filters, 1, chunk_elements)
        chosen = bank[index].t().unsqueeze(0).float()  # [1, C*size*size, L]
        out.append(F.fold(chosen, (h, w), size) / overlap)
    return torch.cat(out).to(content.dtype)


def check_weights(weights: Sequence[float]) -> None:
    """Style images are one patch bank: a weighted blend has no meaning for an arg-max."""
    if len(set(weights)) > 1:
        raise ValueError(
            "style swap takes every style image's patches as one bank: it cannot blend styles by "
            f"weight (got {list(weights)}); give equal weights or one style"
        )

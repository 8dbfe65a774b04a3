"""The style swap of Chen & Schmidt, "Fast Patch-based Style Transfer of Arbitrary Style"
(2016), as a pure function on feature maps.

Every ``k`` x ``k`` patch of the content features (stride 1) is replaced by the style patch
with the highest normalised cross-correlation with it (section 3.1 of the paper): the
convolution of the content features with the unit-norm style patches scores every pair (the
content patch's own norm does not change which style patch wins), the arg-max picks one, and a
transposed convolution of the one-hot choice with the unnormalised style patches places the
chosen patches back, overlapping values averaged. Here the transposed convolution of a one-hot
is written as what it computes, ``F.fold`` of the chosen patches (no [N_style, H, W] one-hot
tensor), and the matching reuses the chunked search that MRF's matching uses, so that the scores held at
once stay bounded whatever the number of style patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

PATCH_SIZE = 3  # the paper's patches: 3 x 3 at relu3_1
MATCH_CHUNK_ELEMENTS = 1 << 24  # scores held at once while matching: 64 MB in fp32


def extract_patches(features: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """[1, C, H, W] -> [N, C*size*size], N patches in row-major order of their top-left corner."""
    return F.unfold(features, size, stride=stride)[0].t()


def normalise_rows(patches: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return patches / (patches.float().norm(dim=1, keepdim=True) + eps).to(patches.dtype)


def nearest_patches(
    features: torch.Tensor, filters: torch.Tensor, stride: int, chunk_elements: int = MATCH_CHUNK_ELEMENTS
) -> torch.Tensor:
    """Index of the best-matching filter for every output patch, in ``extract_patches`` order.

    ``filters`` [N, C, k, k] are the unit-norm style patches: the convolution of ``features``
    [1, C, H, W] with them is each output patch's cross-correlation with each style patch, up to
    the output patch's own norm, which does not change which style patch is best. The filters
    run in chunks, keeping a running maximum, so that the scores held at once stay under
    ``chunk_elements`` whatever the size of the bank.
    """
    k = filters.shape[-1]
    h = (features.shape[-2] - k) // stride + 1
    w = (features.shape[-1] - k) // stride + 1
    chunk = max(1, chunk_elements // (h * w))
    best = torch.full((h * w,), -math.inf, device=features.device)
    index = torch.zeros(h * w, dtype=torch.long, device=features.device)
    for start in range(0, filters.shape[0], chunk):
        scores = F.conv2d(features, filters[start : start + chunk], stride=stride)[0].flatten(1).float()
        value, arg = scores.max(dim=0)
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + start, index)
    return index


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


def centre_index(mask: torch.Tensor, size: Sequence[int], k: int, stride: int) -> torch.Tensor:
    """The ``extract_patches`` indices of the k x k patches (at ``stride``) of an [h, w] map whose
    centres lie in ``mask`` [1, 1, H, W] (area-averaged to [h, w], at least one half); the patch
    with the most of the mask at its centre when none does (a small region at a coarse layer)."""
    h, w = size
    m = F.interpolate(mask.float(), size=(h, w), mode="area")[0, 0]
    rows = torch.arange(0, h - k + 1, stride, device=m.device) + k // 2
    cols = torch.arange(0, w - k + 1, stride, device=m.device) + k // 2
    at_centres = m[rows][:, cols].reshape(-1)
    index = torch.nonzero(at_centres >= 0.5).reshape(-1)
    return index if index.numel() else at_centres.argmax().reshape(1)

"""Spatial control for WCT (``wct.stylize(..., regions=)``): each region of the photo whitened
by its own statistics and coloured to its own style's (Gatys et al., CVPR 2017, section 4, with
WCT's statistics in place of Gram matrices), or left as it is where the photo is kept.

At every level, every position belongs to one region: the one whose mask, area-averaged to the
level's size, covers it most (``partition``), so the regions meet without gaps or overlaps even
at relu5_1; the style's moments come from the style mask's positions (``regions.positions``),
all of the painting without one. One pass (no tiles) and no blend of styles by weight: a region
has one style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from ...base import StylizeResult
from ...shared import color
from ...shared.device import autocast, resolve_precision
from ...shared.losses import relative_squared_error
from ...shared.memory import budget_bytes
from ...shared.regions import area_shares, check_regions, partition, regional_style_statistics, select
from ...shared.sizing import pad_to_multiple
from ...shared.vgg import encode_targets, get_encoder
from .decoders import get_decoders
from .transfer import BYTES_PER_PIXEL, MULTIPLE, WCTParams, coloured_target, result_features
from .whitening import moments


def regional_target(features: torch.Tensor, regions, style_moments_: Sequence[dict | None], level: str,
                    alpha: float) -> torch.Tensor:  # fmt: skip
    """One level's features [1, C, h, w] with each region's positions whitened by that region's
    own moments and coloured to its style's (Gatys et al. 2017's spatial control, with WCT's
    statistics); a region that keeps the photo keeps its features."""
    c = features.shape[1]
    flat = features.reshape(1, c, -1).clone()
    owner = partition(regions, features.shape[-2:]).to(features.device)
    for k, moments_k in enumerate(style_moments_):
        index = torch.nonzero(owner == k).reshape(-1)
        if moments_k is None or index.numel() < 2:  # kept, or too small at this level to have a covariance
            continue
        part = flat.index_select(2, index).unsqueeze(-1)  # [1, C, n, 1]
        flat[..., index] = coloured_target(part, [moments_k[level]], [1.0], alpha).squeeze(-1)
    return flat.reshape(features.shape)


def regional_losses(image, content, regions, per_region, params: WCTParams, device) -> dict[str, float]:
    """``report_losses`` with regions: each styled region's covariance distance to its own
    style's at every level, weighted by the region's share of the photo."""
    feats, losses = result_features(image, content, params, device)
    shares = area_shares(regions)
    for level in params.levels:
        owner = partition(regions, feats[level].shape[-2:]).to(device)
        total = 0.0
        for k, m in enumerate(per_region):
            index = torch.nonzero(owner == k).reshape(-1)
            if m is not None and index.numel() >= 2:
                have = moments(select(feats[level], index)).cov
                total += shares[k] * float(relative_squared_error(have, m[level].cov))
        losses[f"style.wct.{level}"] = total / len(params.levels)
    losses["total"] = sum(losses.values())
    return losses


def stylize_regions(
    content, styles, regions, params: WCTParams, style_weights, device, cache, start
) -> StylizeResult:
    check_regions(regions, content.shape[-2:], len(styles))
    if style_weights is not None:
        raise ValueError("with regions each region has one style: style weights do not apply")
    if content.shape[-2] * content.shape[-1] * BYTES_PER_PIXEL > budget_bytes(params.memory_budget, device):
        raise ValueError("spatial control runs in one pass: this image needs tiles under its memory_budget")
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder(params.levels, device=device)
    decoders = get_decoders(params.decoders, str(device))
    styles = [s.to(device).float() for s in styles]
    if params.preserve_color:
        styles = [color.coral(s, content.to(device).float()) for s in styles]
    per_region = regional_style_statistics(
        "wct", moments, encoder, styles, regions, params.levels, precision, cache
    )
    h, w = content.shape[-2:]
    pad = -h % MULTIPLE, -w % MULTIPLE
    padded = [replace(r, mask=F.pad(r.mask.float(), (0, pad[1], 0, pad[0]), mode="replicate"))
              for r in regions]  # fmt: skip
    image = pad_to_multiple(content.to(device).float(), MULTIPLE)
    with torch.no_grad():
        for level in params.levels:
            feats = encode_targets(encoder, image, [level], precision)[level]
            target = regional_target(feats, padded, per_region, level, params.alpha)
            with autocast(precision, device):
                image = decoders.decode(level, target).float().clamp(0, 1)
        image = image[..., :h, :w].contiguous()
        losses = regional_losses(image, content, regions, per_region, params, device)
    return StylizeResult.one_pass(image, losses, start, precision, device)

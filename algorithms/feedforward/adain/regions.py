"""Spatial control for AdaIN (``adain.stylize(..., regions=)``): each region of the photo
re-normalised at relu4_1 from its own mean and standard deviation to its own style's, before the
one pass of the decoder (Huang & Belongie 2017, section 7.3 "spatial control": AdaIN applied
separately to the regions of the content and style feature maps), or left as it is where the
photo is kept.

Every relu4_1 position belongs to one region, the one whose mask covers it most
(``regions.partition``), so the regions meet without gaps or overlaps; a style's statistics
come from its style mask's positions (all of the painting without one). One pass (no tiles) and
no blend of styles by weight: a region has one style.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from ...base import StylizeResult
from ...shared import color
from ...shared.device import autocast
from ...shared.instance_norm import CONTENT_LAYER, CONTENT_TERM, STYLE_LAYERS, adain_target
from ...shared.losses import mean_std, mean_std_loss, relative_squared_error
from ...shared.memory import budget_bytes
from ...shared.regions import area_shares, check_regions, partition, regional_style_statistics, select
from ...shared.sizing import pad_to_multiple
from ...shared.vgg import encode_targets
from .network import BYTES_PER_PIXEL, MULTIPLE, AdaINParams, networks


def regional_target(features: torch.Tensor, regions, stats, alpha: float) -> torch.Tensor:
    """relu4_1 features [1, C, h, w] with each styled region's positions re-normalised from their
    own statistics to their style's (blended with themselves by ``alpha``); a region that keeps
    the photo keeps its features."""
    c = features.shape[1]
    flat = features.reshape(1, c, -1).clone()
    owner = partition(regions, features.shape[-2:]).to(features.device)
    for k, st in enumerate(stats):
        index = torch.nonzero(owner == k).reshape(-1)
        if st is None or index.numel() < 2:  # kept, or too small at relu4_1 to have a spread
            continue
        part = flat.index_select(2, index).unsqueeze(-1)  # [1, C, n, 1]
        flat[..., index] = adain_target(part, [st[CONTENT_LAYER]], [1.0], alpha).squeeze(-1)
    return flat.reshape(features.shape)


def regional_losses(image, target, regions, stats, encoder, precision: str) -> dict[str, float]:
    """``adain``'s reported losses with regions: the content term against the regional target,
    and each styled region's mean / std distance to its own style's at every layer, weighted by
    the region's share of the photo (the padded ``image``, as the target was computed)."""
    feats = encode_targets(encoder, image, STYLE_LAYERS, precision)
    losses = {CONTENT_TERM: float(relative_squared_error(feats[CONTENT_LAYER], target))}
    shares = area_shares(regions)
    for layer in STYLE_LAYERS:
        owner = partition(regions, feats[layer].shape[-2:]).to(image.device)
        total = 0.0
        for k, st in enumerate(stats):
            index = torch.nonzero(owner == k).reshape(-1)
            if st is not None and index.numel() >= 2:
                total += shares[k] * float(mean_std_loss(select(feats[layer], index), *st[layer]))
        losses[f"style.adain.{layer}"] = total / len(STYLE_LAYERS)
    losses["total"] = sum(losses.values())
    return losses


def stylize_regions(
    content, styles, regions, params: AdaINParams, style_weights, device, cache
) -> StylizeResult:
    start = time.perf_counter()
    check_regions(regions, content.shape[-2:], len(styles))
    if style_weights is not None:
        raise ValueError("with regions each region has one style: style weights do not apply")
    if content.shape[-2] * content.shape[-1] * BYTES_PER_PIXEL > budget_bytes(params.memory_budget, device):
        raise ValueError("spatial control runs in one pass: this image needs tiles under its memory_budget")
    precision, encoder, decoder = networks(params, device)
    content = content.to(device).float()
    styles = [s.to(device).float() for s in styles]
    if params.preserve_color:
        styles = [color.coral(s, content) for s in styles]
    stats = regional_style_statistics(
        "adain-region", mean_std, encoder, styles, regions, STYLE_LAYERS, precision, cache
    )
    h, w = content.shape[-2:]
    pad = -h % MULTIPLE, -w % MULTIPLE
    padded = [replace(r, mask=F.pad(r.mask.float().to(device), (0, pad[1], 0, pad[0]), mode="replicate"))
              for r in regions]  # fmt: skip
    with torch.no_grad():
        fc = encode_targets(encoder, pad_to_multiple(content, MULTIPLE), [CONTENT_LAYER], precision)[
            CONTENT_LAYER
        ]
        target = regional_target(fc.float(), padded, stats, params.alpha)
        with autocast(precision, device):
            out = decoder(target.contiguous(memory_format=torch.channels_last)).float().clamp(0, 1)
        losses = regional_losses(out, target, padded, stats, encoder, precision)
    return StylizeResult.one_pass(out[..., :h, :w].contiguous(), losses, start, precision, device)

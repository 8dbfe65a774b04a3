"""Li et al., "Universal Style Transfer via Feature Transforms" (NeurIPS 2017): ``wct``.

Coarse to fine, at relu5_1, relu4_1, relu3_1, relu2_1 and relu1_1 in turn, the current image is
encoded (VGG-19 up to that layer), its features are whitened and coloured to the style's
covariance (``whitening.wct``, blended with the image's own by ``alpha``) and a decoder trained
only to invert that layer turns them back into an image, which the next, finer level starts
from. No training per style: the decoders (``decoders.py``) are trained once to reconstruct
photos and paintings (the Ray Train recipe is ``orchestrator/train_recipes.WCT``); the shipped
file (``algorithms/weights/wct_decoders.pth``) was trained with
``experiments/train_wct_default.yaml``. Large images go level by level in tiles
(``tiles.py``), regions of the photo each with its own style through ``regions.py``.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence

import torch

from ...base import Algorithm, Callback, StylizeResult
from ...shared.device import autocast, resolve_precision
from ...shared.losses import relative_squared_error
from ...shared.memory import budget_layout, return_freed_memory
from ...shared.parameters import weight_list
from ...shared.sizing import MEASURE_SIDE, pad_to_multiple, shrink
from ...shared.vgg import encode_targets, get_encoder
from .decoders import get_decoders
from .transfer import (
    BYTES_PER_PIXEL,
    MULTIPLE,
    WCTParams,
    coloured_target,
    content_style_moments,
    result_features,
)
from .whitening import moments

# --- the transform, level by level -------------------------------------------------------------------


def tile_layout(params: WCTParams, shape, device) -> str:
    """The tile layout ``stylize_batch`` uses for a batch of ``shape``; "" for one pass."""
    from .tiles import HALO, OVERLAP

    halo = max(HALO[level] for level in params.levels)
    return budget_layout(shape, BYTES_PER_PIXEL, halo, OVERLAP, params.memory_budget, device, MULTIPLE)[2]


def _transfer(contents, styles, params: WCTParams, style_weights, device: torch.device, cache):
    """(images [B, 3, H, W], style moments per content, the tile note or "") for a batch of
    same-size contents: one pass per level, or tiles when the budget asks for them."""
    from .tiles import HALO, OVERLAP, level_in_tiles

    if not styles:
        raise ValueError("at least one style image is needed")
    weights = weight_list(styles, style_weights)
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder(params.levels, device=device)
    decoders = get_decoders(params.decoders, str(device))
    per_content = content_style_moments(contents, styles, params, encoder, precision, device, cache)
    halo = max(HALO[level] for level in params.levels)  # the layout's: the coarsest level's context
    core, budget, note = budget_layout(
        contents.shape, BYTES_PER_PIXEL, halo, OVERLAP, params.memory_budget, device, MULTIPLE
    )
    h, w = contents.shape[-2:]
    with torch.no_grad():
        if core is not None:
            return_freed_memory()
            image = contents.float().cpu()
            for level in params.levels:
                image, layout = level_in_tiles(
                    image, level, [[m[level] for m in own] for own in per_content], weights, params.alpha,
                    encoder=encoder, decoders=decoders, core=core, precision=precision, device=device,
                )  # fmt: skip
            return image, per_content, note
        image = pad_to_multiple(contents.to(device).float(), MULTIPLE)
        for level in params.levels:
            feats = encode_targets(encoder, image, [level], precision)[level]
            target = torch.cat([
                coloured_target(feats[i : i + 1], [m[level] for m in per_content[i]], weights, params.alpha)
                for i in range(feats.shape[0])
            ])  # fmt: skip
            with autocast(precision, device):
                image = decoders.decode(level, target).float().clamp(0, 1)
    return image[..., :h, :w].contiguous(), per_content, ""


def stylize_batch(
    contents: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: WCTParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> torch.Tensor:
    """Stylize a batch of same-size contents [B, 3, H, W] (RGB in [0, 1]): one pass per level,
    in tiles when one pass would exceed ``params.memory_budget``."""
    params = params or WCTParams()
    return _transfer(contents, styles, params, style_weights, torch.device(device), cache)[0].cpu()


def report_losses(image, content, style_moments_, weights, params: WCTParams, device) -> dict[str, float]:
    """What the transform aims at, measured on the result: per level, the relative distance of
    its covariance to the (blended) style covariance (``style.wct.<level>``, averaged over the
    levels), and the distance of its relu4_1 to the photo's (``content.wct.relu4_1``)."""
    feats, losses = result_features(image, content, params, device)
    total = float(sum(weights))
    for level in params.levels:
        want = sum(m[level].cov * (w / total) for m, w in zip(style_moments_, weights, strict=True))
        have = moments(feats[level]).cov
        losses[f"style.wct.{level}"] = float(relative_squared_error(have, want)) / len(params.levels)
    losses["total"] = sum(losses.values())
    return losses


def stylize(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: WCTParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
    regions: Sequence | None = None,
) -> StylizeResult:
    """The ``stylize`` interface: one pass per level (``init_image``, ``seed`` and ``callback``
    have nothing to act on). ``regions`` (``regions.Region``): spatial control, each region
    whitened and coloured with its own statistics and its own style's."""
    params = params or WCTParams()
    start = time.perf_counter()
    device = torch.device(device)
    if regions:
        from .regions import stylize_regions

        return stylize_regions(content, styles, regions, params, style_weights, device, cache, start)
    image, per_content, tiles = _transfer(content, styles, params, style_weights, device, cache)
    measured, photo = (
        (image, content) if not tiles else (shrink(image, MEASURE_SIDE), shrink(content, MEASURE_SIDE))
    )
    with torch.no_grad():
        losses = report_losses(
            measured, photo, per_content[0], weight_list(styles, style_weights), params, device
        )
    return StylizeResult.one_pass(
        image, losses, start, resolve_precision(params.precision, device), device, tiles
    )


stylize.spatial_control = True  # type: ignore[attr-defined]

CITATION = "Li, Fang, Yang, Wang, Lu & Yang, Universal Style Transfer via Feature Transforms, NeurIPS 2017"
ALGORITHM = Algorithm(
    name="wct",
    params_type=WCTParams,
    stylize=stylize,
    summary="whitening and colouring of VGG features, coarse to fine, one trained decoder per level",
    citation=CITATION,
    kind="feedforward",
    stylize_batch=stylize_batch,
    tile_layout=tile_layout,
)

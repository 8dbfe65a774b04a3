"""Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization"
(ICCV 2017): one forward pass per image, the ``adain`` algorithm.

The content and style images go through VGG-19 up to relu4_1; AdaIN (``shared/instance_norm.py``)
gives the content's features the style's per-channel mean and standard deviation; a decoder
mirroring the encoder (reflection padding, nearest-neighbour upsampling) turns them back into an
image (``network.py``). A batch too large for the memory budget is done in tiles (``tiles.py``),
regions of the photo each with their own style by ``regions.py``.

``optimization/adain_optimize.py`` is the same objective optimised on the image, with no decoder.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import replace

import torch

from ...base import Algorithm, Callback, StylizeResult
from ...shared.device import resolve_precision
from ...shared.instance_norm import CONTENT_LAYER, CONTENT_TERM, STYLE_LAYERS, blend_stats
from ...shared.losses import mean_std_loss, relative_squared_error
from ...shared.memory import budget_layout, budget_note, return_freed_memory
from ...shared.parameters import weight_list
from ...shared.sizing import MEASURE_SIDE, pad_to_multiple, shrink
from ...shared.vgg import encode_targets
from .network import BYTES_PER_PIXEL, MULTIPLE, AdaINParams, decode, get_adain_encoder, resolve_pair

# --- inference -------------------------------------------------------------------------------------------


def stylize_batch(
    contents: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: AdaINParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> torch.Tensor:
    """Stylize a batch of same-size contents [B, 3, H, W] (RGB in [0, 1]) in one forward pass, or
    in tiles when one pass would exceed ``params.memory_budget``."""
    params = params or AdaINParams()
    device = torch.device(device)
    tiled = _tiled(contents, styles, params, style_weights, device, cache)
    if tiled is not None:
        return tiled[0]
    return decode(contents, styles, params, style_weights, device, cache)[0]


def _tiled(contents, styles, params: AdaINParams, style_weights, device: torch.device, cache):
    """(image, layout) in tiles when the budget asks for them, else None."""
    from .tiles import HALO, OVERLAP, stylize_tiled

    core, budget, _ = budget_layout(
        contents.shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device
    )
    if core is None:
        return None
    return_freed_memory()
    image, layout = stylize_tiled(contents, styles, params, core=core, style_weights=style_weights,
                                  device=device, cache=cache)  # fmt: skip
    return image, budget_note(layout.describe(), budget)


def tile_layout(params: AdaINParams, shape, device) -> str:
    """The tile layout ``stylize_batch`` uses for a batch of ``shape``; "" for one pass."""
    from .tiles import HALO, OVERLAP

    return budget_layout(shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device)[2]


def stylize(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: AdaINParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
    regions: Sequence | None = None,
) -> StylizeResult:
    """The ``stylize`` interface: one pass of the decoder (``init_image``, ``seed`` and
    ``callback`` have nothing to act on). ``regions`` (``regions.Region``): spatial control,
    each region re-normalised with its own statistics to its own style's (``regions.py``)."""
    params = params or AdaINParams()
    if not styles:
        raise ValueError("at least one style image is needed")
    start = time.perf_counter()
    device = torch.device(device)
    if regions:
        from .regions import stylize_regions

        return stylize_regions(content, styles, regions, params, style_weights, device, cache)
    tiled = _tiled(content, styles, params, style_weights, device, cache)
    if tiled is None:
        image, target, stats = decode(content, styles, params, style_weights, device, cache)
        measured = image
    else:  # the losses of a copy at MEASURE_SIDE px: the encoder at full size is what tiling avoids
        image, tiles = tiled
        measured = shrink(image, MEASURE_SIDE)
        small = replace(params, memory_budget="auto")
        _, target, stats = decode(shrink(content, MEASURE_SIDE), styles, small, style_weights, device, cache)
    weights = weight_list(styles, style_weights)
    losses = _report_losses(measured.to(device), target, stats[0], weights, params, device)
    precision = resolve_precision(params.precision, device)
    return StylizeResult.one_pass(image, losses, start, precision, device, "" if tiled is None else tiles)


stylize.spatial_control = True  # type: ignore[attr-defined]


def _report_losses(image, target, stats, weights, params: AdaINParams, device) -> dict[str, float]:
    """The training objective of the result: the content term (relu4_1 to the AdaIN target) and
    the mean / std terms, each layer weighted 1/4 so that the style terms sum to the average
    the decoder was trained on; the decoder's training ``style_weight`` is not applied, so
    rows of different decoders compare on the same scale."""
    precision = resolve_precision(params.precision, device)
    encoder = get_adain_encoder(resolve_pair(params)[1], device)
    with torch.no_grad():
        # the target was computed on the padded content: compare like with like
        feats = encode_targets(encoder, pad_to_multiple(image.to(device), MULTIPLE), STYLE_LAYERS, precision)
        losses = {CONTENT_TERM: float(relative_squared_error(feats[CONTENT_LAYER], target))}
        for name in STYLE_LAYERS:
            mean, std = blend_stats([st[name] for st in stats], weights)
            losses[f"style.adain.{name}"] = float(mean_std_loss(feats[name], mean, std)) / len(STYLE_LAYERS)
    losses["total"] = sum(losses.values())
    return losses


CITATION = (
    "Huang & Belongie, Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization, ICCV 2017"
)
ALGORITHM = Algorithm(
    name="adain",
    params_type=AdaINParams,
    stylize=stylize,
    summary="adaptive instance normalisation: encoder, AdaIN, decoder; one forward pass",
    citation=CITATION,
    kind="feedforward",
    stylize_batch=stylize_batch,
    tile_layout=tile_layout,
)

"""Li et al., "Universal Style Transfer via Feature Transforms" (NeurIPS 2017): ``wct``.

Coarse to fine, at relu5_1, relu4_1, relu3_1, relu2_1 and relu1_1 in turn, the current image is
encoded (VGG-19 up to that layer), its features are whitened and coloured to the style's
covariance (``whitening.wct``, blended with the image's own by ``alpha``) and a decoder trained
only to invert that layer turns them back into an image, which the next, finer level starts
from. No training per style: the decoders (``wct_decoders.py``) are trained once to reconstruct
photos and paintings (the Ray Train recipe is ``orchestrator/train_recipes.WCT``); the shipped
file (``algorithms/weights/wct_decoders.pth``) was trained with
``experiments/train_wct_default.yaml``. Large images go level by level in tiles
(``wct_tiles.py``), regions of the photo each with its own style through ``wct_regions.py``.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from . import color
from .base import Algorithm, Callback, Params, StylizeResult
from .device import autocast, resolve_precision
from .losses import relative_squared_error
from .memo import memo, style_key
from .memory import AUTO, BUDGET_HELP, budget_layout, check_budget, return_freed_memory
from .parameters import param
from .vgg import encode_targets, get_encoder
from .wct_decoders import LEVELS, check_levels, get_decoders
from .whitening import Moments, apply, chunked_moments, moments, transform

# the paper's three finer levels: after the hour of training the shipped relu5_1 decoder returns
# only a blur of the photo's colours and relu4_1's a soft, tinted photo, and every finer level
# starts from what the coarser one returns (docs/training.md); levels=[relu5_1, ...] asks for more
DEFAULT_LEVELS = LEVELS[2:]
MULTIPLE = 16  # relu5_1 is after four poolings: sizes are padded to a multiple of 16
CONTENT_LAYER = "relu4_1"  # where the reported content term compares the result with the photo
BYTES_PER_PIXEL = (
    1600  # one pass's peak above the loaded models, per pixel (measured: 1375 at 768 px, 1735 at 512)
)
LOSS_SIDE = 1024  # a tiled result's losses are measured on a copy at most this long side


# --- the transform, level by level -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WCTParams(Params):
    """Whitening and colouring, coarse to fine, each level decoded by its own decoder (``wct``)."""

    alpha: float = param(0.6, "blend of the coloured features with the image's own at every level (0: none)")
    levels: tuple[str, ...] = param(
        DEFAULT_LEVELS,
        "the levels transformed, applied coarse to fine (of relu5_1 ... relu1_1; the shipped "
        "relu5_1 and relu4_1 decoders are not trained enough to be defaults)",
    )
    decoders: str = param("default", "the decoders file: default (shipped) or one from train-wct", file=True)
    preserve_color: bool = param(False, "recolour the style to the content first (CORAL): keeps its colours")
    precision: Literal["auto", "fp32", "bf16"] = param(
        "fp32", "encoder and decoder precision (the covariances are always float64)"
    )
    memory_budget: str = param(AUTO, BUDGET_HELP)

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        check_budget(self.memory_budget)
        object.__setattr__(self, "levels", check_levels(list(self.levels)))


def pad_to_multiple(image: torch.Tensor) -> torch.Tensor:
    from .adain import pad_to_multiple as pad

    return pad(image, MULTIPLE)


def style_moments(encoder, style: torch.Tensor, levels: Sequence[str], precision: str) -> dict[str, Moments]:
    feats = encode_targets(encoder, style, list(levels), precision)
    return {level: moments(f) for level, f in feats.items()}


def coloured_target(
    features: torch.Tensor,
    styles: Sequence[Moments],
    weights: Sequence[float],
    alpha: float,
    content: Moments | None = None,
) -> torch.Tensor:
    """The features of one level [B, C, H, W] whitened by their own moments per item (or by
    ``content``'s: a whole image's, for one of its tiles), coloured to each style and blended
    by ``weights`` (Li et al.'s interpolation of styles), then mixed with the features
    themselves by ``alpha``."""
    matrix, bias = transform(content if content is not None else chunked_moments(features), styles, weights)
    return apply(features, matrix, bias, alpha)


def weight_list(styles: Sequence, style_weights: Sequence[float] | None) -> list[float]:
    weights = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} style weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style weights must be non-negative with a positive sum, got {weights}")
    return weights


def _style_moments(contents, styles, params: WCTParams, encoder, precision, device, cache):
    """Per content, its styles' moments at every level (each style recoloured to the content
    first when preserving colour), memoised by the style's values."""
    per_content = []
    for i in range(contents.shape[0]):
        own = []
        for s in styles:
            s = s.to(device).float()
            if params.preserve_color:
                s = color.coral(s, contents[i : i + 1].to(device).float())
            key = style_key("wct", encoder, [s], precision, "max", params.levels)
            own.append(memo(cache, key, lambda s=s: style_moments(encoder, s, params.levels, precision)))
        per_content.append(own)
    return per_content


def tile_layout(params: WCTParams, shape, device) -> str:
    """The tile layout ``stylize_batch`` uses for a batch of ``shape``; "" for one pass."""
    from .wct_tiles import HALO, OVERLAP

    halo = max(HALO[level] for level in params.levels)
    return budget_layout(shape, BYTES_PER_PIXEL, halo, OVERLAP, params.memory_budget, device, MULTIPLE)[2]


def _transfer(contents, styles, params: WCTParams, style_weights, device: torch.device, cache):
    """(images [B, 3, H, W], style moments per content, the tile note or "") for a batch of
    same-size contents: one pass per level, or tiles when the budget asks for them."""
    from .wct_tiles import HALO, OVERLAP, level_in_tiles

    if not styles:
        raise ValueError("at least one style image is needed")
    weights = weight_list(styles, style_weights)
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder(params.levels, device=device)
    decoders = get_decoders(params.decoders, str(device))
    per_content = _style_moments(contents, styles, params, encoder, precision, device, cache)
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
        image = pad_to_multiple(contents.to(device).float())
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


def result_features(
    image, content, params: WCTParams, device
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The result's features at the transformed levels and relu4_1, and the content term: the
    distance of its relu4_1 to the photo's (``content.wct.relu4_1``)."""
    precision = resolve_precision(params.precision, device)
    layers = sorted({*params.levels, CONTENT_LAYER}, key=lambda n: int(n[4]))
    encoder = get_encoder(layers, device=device)
    feats = encode_targets(encoder, image.to(device), layers, precision)
    photo = encode_targets(encoder, content.to(device).float(), [CONTENT_LAYER], precision)[CONTENT_LAYER]
    return feats, {f"content.wct.{CONTENT_LAYER}": float(relative_squared_error(feats[CONTENT_LAYER], photo))}


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
        from .wct_regions import stylize_regions

        return stylize_regions(content, styles, regions, params, style_weights, device, cache, start)
    image, per_content, tiles = _transfer(content, styles, params, style_weights, device, cache)
    measured, photo = (
        (image, content) if not tiles else (shrink(image, LOSS_SIDE), shrink(content, LOSS_SIDE))
    )
    with torch.no_grad():
        losses = report_losses(
            measured, photo, per_content[0], weight_list(styles, style_weights), params, device
        )
    return StylizeResult.one_pass(
        image, losses, start, resolve_precision(params.precision, device), device, tiles
    )


def shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    from .adain import shrink as area_shrink

    return area_shrink(image, side)


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

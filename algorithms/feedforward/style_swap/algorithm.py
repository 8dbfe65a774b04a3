"""Chen & Schmidt, "Fast Patch-based Style Transfer of Arbitrary Style" (2016): ``style_swap``.

The photo is encoded to relu3_1, every 3 x 3 patch of its features is replaced by the style
patch with the highest normalised cross-correlation (``shared/patches.swap``), and the trained
inverse network (``inverse.py``) turns the swapped features into the image in one pass:
the paper's fast method, any style, no training per style. The inverse network is trained once
(``stylegrid train-style-swap``; the shipped ``algorithms/weights/style_swap_inverse.pth`` by
``experiments/train_style_swap_default.yaml``); ``style_swap_optimize`` recovers the image by
optimisation instead (the paper's equation 3).

Both the swap and the network are local, so a large image goes in tiles with ``HALO`` px of
context and the result is what one pass gives, up to the blend; the style's patch bank is the
same for every tile. Several style images share one bank (their patches together); a weighted
blend has no meaning for an arg-max and is refused.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ...base import Algorithm, Callback, Params, StylizeResult
from ...shared import color
from ...shared.device import autocast, resolve_precision
from ...shared.losses import relative_squared_error
from ...shared.memo import memo, style_key
from ...shared.memory import AUTO, BUDGET_HELP, budget_layout, check_budget, return_freed_memory
from ...shared.parameters import param
from ...shared.patches import PATCH_SIZE, check_weights, style_patches, swap
from ...shared.sizing import MEASURE_SIDE, pad_to_multiple, shrink
from ...shared.tiling import Canvas, crop, plan_tiles
from ...shared.vgg import encode_targets, get_encoder
from .inverse import LAYER, get_inverse

MULTIPLE = 4  # relu3_1 is after two poolings
HALO = (
    48  # px of context per side: relu3_1 (about 20 px), the 3 x 3 swap (4 px) and the network (about 20 px)
)
OVERLAP = 32  # px over which neighbouring tiles are blended
BYTES_PER_PIXEL = 1900  # one pass's peak above the loaded models and the bank, per pixel (measured: 1890 at 512 px, 1830 at 768)
CONTENT_LAYER = "relu4_1"  # where the reported content term compares the result with the photo


@dataclass(frozen=True, kw_only=True)
class StyleSwapParams(Params):
    """The style swap at relu3_1 inverted by the trained inverse network (``style_swap``)."""

    inverse: str = param(
        "default",
        "the inverse network: default (shipped), a train-style-swap file, or WCT decoders",
        file=True,
    )
    patch_size: int = param(PATCH_SIZE, "side of the swapped patches, in relu3_1 positions (the paper's 3)")
    preserve_color: bool = param(False, "recolour the style to the content first (CORAL): keeps its colours")
    precision: Literal["auto", "fp32", "bf16"] = param("fp32", "encoder and network precision")
    memory_budget: str = param(AUTO, BUDGET_HELP)

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be at least 1, got {self.patch_size}")
        check_budget(self.memory_budget)


def _banks(
    contents, styles, params: StyleSwapParams, encoder, precision, device, cache
) -> list[torch.Tensor]:
    """Per content, the patch bank of its styles (each recoloured to that content first when
    preserving colour; else one bank shared by the batch), memoised by the styles' values."""
    banks = []
    for i in range(contents.shape[0] if params.preserve_color else 1):
        own = [s.to(device).float() for s in styles]
        if params.preserve_color:
            own = [color.coral(s, contents[i : i + 1].to(device).float()) for s in own]

        def bank(own=own) -> torch.Tensor:
            feats = [encode_targets(encoder, s, [LAYER], precision)[LAYER].float() for s in own]
            return torch.cat([style_patches(f, params.patch_size) for f in feats])

        key = style_key("swap-bank", encoder, own, precision, "max", params.patch_size)
        banks.append(memo(cache, key, bank))
    return banks if params.preserve_color else banks * contents.shape[0]


def swap_and_invert(image, bank, params: StyleSwapParams, encoder, network, precision, device):
    """[B, 3, H, W] -> (the inverse network's image of its swapped relu3_1 [B, 3, H, W], the
    swapped features): one pass."""
    h, w = image.shape[-2:]
    part = pad_to_multiple(image.to(device).float(), MULTIPLE)
    feats = encode_targets(encoder, part, [LAYER], precision)[LAYER].float()
    target = swap(feats, bank, params.patch_size)
    with autocast(precision, device):
        out = network.decode(LAYER, target)
    return out.float()[..., :h, :w].clamp(0, 1), target


def tile_layout(params: StyleSwapParams, shape, device) -> str:
    """The tile layout ``stylize_batch`` uses for a batch of ``shape``; "" for one pass."""
    return budget_layout(shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device, MULTIPLE)[2]


def _transfer(contents, styles, params: StyleSwapParams, style_weights, device: torch.device, cache):
    """(images [B, 3, H, W] on the CPU, the patch bank per content, the tile note or "")."""
    if not styles:
        raise ValueError("at least one style image is needed")
    weights = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} style weights")
    check_weights(weights)
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder([LAYER], device=device)
    network = get_inverse(params.inverse, str(device))
    banks = _banks(contents, styles, params, encoder, precision, device, cache)
    core, _, note = budget_layout(
        contents.shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device, MULTIPLE
    )

    def invert(batch: torch.Tensor) -> torch.Tensor:
        """The batch swapped and inverted: at once with a shared bank, else item by item."""
        if not params.preserve_color:
            return swap_and_invert(batch, banks[0], params, encoder, network, precision, device)[0]
        return torch.cat([swap_and_invert(batch[i : i + 1], banks[i], params, encoder, network, precision, device)[0]
                          for i in range(batch.shape[0])])  # fmt: skip

    with torch.no_grad():
        if core is None:
            return invert(contents).cpu(), banks, ""
        return_freed_memory()
        layout = plan_tiles(contents.shape[-2], contents.shape[-1], core, HALO, OVERLAP, align=MULTIPLE)
        canvas = Canvas(layout, contents.shape[0])
        for tile in layout.tiles:
            canvas.add(tile, invert(crop(contents, tile.box)))
        return canvas.image().clamp(0, 1), banks, note


def stylize_batch(
    contents: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: StyleSwapParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> torch.Tensor:
    """Stylize a batch of same-size contents [B, 3, H, W] (RGB in [0, 1]): one pass, or tiles
    when one pass would exceed ``params.memory_budget``."""
    params = params or StyleSwapParams()
    return _transfer(contents, styles, params, style_weights, torch.device(device), cache)[0]


def report_losses(image, content, bank, params: StyleSwapParams, device) -> dict[str, float]:
    """What the method aims at, measured on the result: the relative distance of its relu3_1 to
    the photo's swapped relu3_1 (``style.swap.relu3_1``: how well the network inverted the swap)
    and of its relu4_1 to the photo's (``content.swap.relu4_1``)."""
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder([LAYER, CONTENT_LAYER], device=device)
    image, content = (
        pad_to_multiple(image.to(device), MULTIPLE),
        pad_to_multiple(content.to(device).float(), MULTIPLE),
    )
    have = encode_targets(encoder, image, [LAYER, CONTENT_LAYER], precision)
    photo = encode_targets(encoder, content, [LAYER, CONTENT_LAYER], precision)
    target = swap(photo[LAYER].float(), bank, params.patch_size)
    losses = {
        f"content.swap.{CONTENT_LAYER}": float(
            relative_squared_error(have[CONTENT_LAYER], photo[CONTENT_LAYER])
        ),
        f"style.swap.{LAYER}": float(relative_squared_error(have[LAYER], target)),
    }
    losses["total"] = sum(losses.values())
    return losses


def stylize(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: StyleSwapParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
) -> StylizeResult:
    """The ``stylize`` interface: one pass (``init_image``, ``seed`` and ``callback`` have
    nothing to act on)."""
    params = params or StyleSwapParams()
    start = time.perf_counter()
    device = torch.device(device)
    image, banks, tiles = _transfer(content, styles, params, style_weights, device, cache)
    measured, photo = (
        (image, content) if not tiles else (shrink(image, MEASURE_SIDE), shrink(content, MEASURE_SIDE))
    )
    with torch.no_grad():
        losses = report_losses(measured, photo, banks[0], params, device)
    return StylizeResult.one_pass(
        image, losses, start, resolve_precision(params.precision, device), device, tiles
    )


stylize.spatial_control = False  # type: ignore[attr-defined]  # a swap replaces every patch: no region keeps the photo

CITATION = "Chen & Schmidt, Fast Patch-based Style Transfer of Arbitrary Style, arXiv:1612.04337 (2016)"
ALGORITHM = Algorithm(
    name="style_swap",
    params_type=StyleSwapParams,
    stylize=stylize,
    summary="style swap: every relu3_1 content patch replaced by its best style patch, inverted by a trained network",
    citation=CITATION,
    kind="feedforward",
    stylize_batch=stylize_batch,
    tile_layout=tile_layout,
)

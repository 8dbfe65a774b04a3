"""Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization"
(ICCV 2017): one forward pass per image.

The content and style images go through VGG-19 up to relu4_1; ``adain`` gives the content's
features the style's per-channel mean and standard deviation; a decoder mirroring the encoder
(reflection padding, nearest-neighbour upsampling) turns them back into an image.

Two encoder / decoder pairs are understood, and a decoder is always used with the encoder it was
trained against:

* ``encoder="caffe"`` (default): stylegrid's VGG-19 (``vgg.py``, the original caffe weights, zero
  padding) with the decoder shipped in ``algorithms/weights/`` or one trained with
  ``stylegrid train-adain`` (a ``.json`` file beside it records its encoder).
* the published pytorch-AdaIN files: ``encoder=vgg_normalised.pth`` and ``decoder=decoder.pth``,
  plain state dicts of an ``nn.Sequential`` whose layouts ``published_vgg`` and ``decoder_layout``
  reproduce module for module, so the files load directly.

Training a decoder (section 6 of the paper) has its pure part here, ``training_losses``: the
content loss (the decoded image's relu4_1 against the AdaIN target it was decoded from) plus
``style_weight`` x the mean / std losses at relu1_1 .. relu4_1, relative squared errors like every
stylegrid loss (``losses.py``), so one ``style_weight`` works with the caffe encoder. The Ray Train driver that runs it (data,
workers, checkpoints, MLflow) is ``orchestrator/train.py``.

``adain_optimize.py`` is the same objective optimised on the image, with no decoder.

Why this module is long (about 450 lines): the operation, the two network layouts and their
files, inference and the training losses are one model that changes together (a new decoder
layout changes loading, inference and training at once); split, each part would import the others.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import color
from .base import Algorithm, Callback, Params, StylizeResult
from .device import autocast, resolve_precision
from .losses import mean_std, mean_std_loss, relative_squared_error
from .memo import memo, style_key
from .memory import AUTO, BUDGET_HELP, budget_layout, budget_note, check_budget, return_freed_memory
from .parameters import param
from .vgg import VGGEncoder, WeightsUnavailable, encode_targets, get_encoder

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_DECODER = WEIGHTS_DIR / "adain_decoder.pth"
CONTENT_TERM = f"content.adain.{CONTENT_LAYER}"  # distance to the AdaIN target
MULTIPLE = 8  # the decoder upsamples three times: sizes are padded to a multiple of 8


ALPHA_HELP = "content-style trade-off in [0, 1]: 0 = the content's own features"
BYTES_PER_PIXEL = 800  # one pass's peak above the loaded models, per pixel (measured: about 740)
LOSS_SIDE = 1024  # a tiled result's losses are measured on a copy at most this long side


def check_alpha(p) -> None:
    if not 0.0 <= p.alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {p.alpha}")


@dataclass(frozen=True, kw_only=True)
class AdaINParams(Params):
    """Feed-forward AdaIN: one pass of the encoder, AdaIN and the decoder (``adain``)."""

    alpha: float = param(1.0, ALPHA_HELP)
    decoder: str = param(
        "default", "decoder state dict: default (shipped) or a path (pytorch-AdaIN layout)", file=True
    )
    encoder: str = param(
        "caffe", "caffe (stylegrid's VGG-19) or a path to pytorch-AdaIN's vgg_normalised.pth", file=True
    )
    preserve_color: bool = param(False, "recolour the style to the content first (CORAL): keeps its colours")
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "encoder and decoder precision; auto = bf16 where the hardware computes it natively"
    )
    memory_budget: str = param(AUTO, BUDGET_HELP)

    def __post_init__(self) -> None:
        check_alpha(self)
        check_budget(self.memory_budget)


# --- pure functions --------------------------------------------------------------------------------


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Content features [B, C, H, W] with each channel's mean and standard deviation replaced by
    the style features' (AdaIN, equation 8 of the paper)."""
    s_mean, s_std = mean_std(style_feat, eps)
    return adain_to(content_feat, s_mean, s_std, eps)


def adain_to(content_feat: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-5,
             content_stats: tuple[torch.Tensor, torch.Tensor] | None = None):  # fmt: skip
    """``content_feat`` re-normalised to ``mean`` and ``std``; its own statistics are those of
    ``content_feat`` unless ``content_stats`` gives them (a tile of a larger image: the whole
    image's, so that the tiles agree)."""
    c_mean, c_std = content_stats if content_stats is not None else mean_std(content_feat, eps)
    return (content_feat - c_mean) / c_std * std + mean


def adain_target(
    content_feat: torch.Tensor,
    style_stats: Sequence[tuple[torch.Tensor, torch.Tensor]],
    weights: Sequence[float],
    alpha: float,
    content_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The decoder's input: the weighted mix of the content re-normalised to each style's
    statistics (style interpolation, section 7 of the paper), blended with the content's own
    features by ``alpha``."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"style weights must be non-negative with a positive sum, got {list(weights)}")
    mixed = sum(
        (w / total) * adain_to(content_feat, m, s, content_stats=content_stats)
        for (m, s), w in zip(style_stats, weights, strict=True)
    )
    return alpha * mixed + (1 - alpha) * content_feat


def pad_to_multiple(image: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pad right and bottom (reflected, replicated where the image is too small to reflect)."""
    h, w = image.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return image
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image, (0, pw, 0, ph), mode=mode)


# --- networks with the published module layouts ------------------------------------------------------


def decoder_layout() -> nn.Sequential:
    """pytorch-AdaIN's decoder, module for module: convs at 1, 5, 8, 11, 14, 18, 21, 25, 28, each
    after ReflectionPad2d(1) and followed by ReLU except the last; nearest x2 at 3, 16 and 23."""
    layers: list[nn.Module] = []

    def conv(cin: int, cout: int, relu: bool = True) -> None:
        layers.extend([nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)])
        if relu:
            layers.append(nn.ReLU())

    def up() -> None:
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))

    conv(512, 256), up()
    conv(256, 256), conv(256, 256), conv(256, 256), conv(256, 128), up()
    conv(128, 128), conv(128, 64), up()
    conv(64, 64), conv(64, 3, relu=False)
    return nn.Sequential(*layers)


# relu outputs of the published encoder, by index in its nn.Sequential
PUBLISHED_RELU_INDEX = {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}


def published_vgg() -> nn.Sequential:
    """pytorch-AdaIN's ``vgg_normalised`` layout: a 1x1 conv mapping RGB in [0, 1] to the caffe
    convention, then VGG-19's 3x3 convs (each after ReflectionPad2d(1), followed by ReLU) and
    MaxPool2d(2, 2, ceil_mode=True) between the blocks; 53 modules."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = [(3, 64), (64, 64), "pool", (64, 128), (128, 128), "pool"]
    channels += [(128, 256)] + [(256, 256)] * 3 + ["pool", (256, 512)] + [(512, 512)] * 3 + ["pool"]
    channels += [(512, 512)] * 4
    for item in channels:
        if item == "pool":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers.extend([nn.ReflectionPad2d(1), nn.Conv2d(*item, 3), nn.ReLU()])
    return nn.Sequential(*layers)


class PublishedEncoder(nn.Module):
    """The published encoder truncated after relu4_1 (index 30), with ``VGGEncoder``'s interface."""

    def __init__(self, net: nn.Sequential, source: str):
        super().__init__()
        self.net = net[: PUBLISHED_RELU_INDEX["relu4_1"] + 1]
        self.source = source
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(PUBLISHED_RELU_INDEX)
        if unknown:
            raise ValueError(
                f"the published encoder gives {sorted(PUBLISHED_RELU_INDEX)}, not {sorted(unknown)}"
            )
        out, x = {}, image
        last = max(PUBLISHED_RELU_INDEX[n] for n in wanted)
        for i, module in enumerate(self.net[: last + 1]):
            x = module(x)
            for name in wanted:
                if PUBLISHED_RELU_INDEX[name] == i:
                    out[name] = x
        return out


def load_state_into(net: nn.Sequential, path: str | Path, what: str) -> nn.Sequential:
    """Load a plain state dict into ``net``; errors name the file and the first mismatch."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailable(f"{path}: no such {what} file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise WeightsUnavailable(f"{path}: not a readable torch file ({type(e).__name__}: {e})") from None
    if not isinstance(state, Mapping):
        raise WeightsUnavailable(f"{path}: expected a state dict, found {type(state).__name__}")
    expected = net.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise WeightsUnavailable(f"{path}: not a {what} state dict (missing {key})")
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsUnavailable(
                f"{path}: {key} has shape {tuple(state[key].shape)}, a {what} needs {tuple(value.shape)}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise WeightsUnavailable(f"{path}: not a {what} state dict (unexpected {extra[0]})")
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net


def decoder_encoder(decoder: str) -> str | None:
    """The encoder a stylegrid decoder file was trained against (from the .json beside it)."""
    path = DEFAULT_DECODER if decoder == "default" else Path(decoder)
    meta = path.with_suffix(".json")
    if meta.is_file():
        return json.loads(meta.read_text()).get("encoder")
    return None


def resolve_pair(params: AdaINParams) -> tuple[str, str]:
    """(decoder path, encoder) with the rule that a decoder goes with the encoder it was trained
    against: a published decoder (no .json beside it) needs an explicit published encoder."""
    decoder = str(DEFAULT_DECODER) if params.decoder == "default" else params.decoder
    if params.decoder == "default" and not DEFAULT_DECODER.is_file():
        raise WeightsUnavailable(
            f"{DEFAULT_DECODER}: the default AdaIN decoder is missing; train one with "
            "`stylegrid train-adain` or pass decoder=PATH encoder=PATH (pytorch-AdaIN files)"
        )
    trained_with = decoder_encoder(decoder)
    if trained_with is None and params.encoder == "caffe":
        raise WeightsUnavailable(
            f"{decoder}: a decoder without a stylegrid .json beside it is taken to be a pytorch-AdaIN "
            "decoder; pass the vgg_normalised.pth it was trained against as encoder=PATH"
        )
    if trained_with is not None and trained_with != params.encoder:
        raise WeightsUnavailable(
            f"{decoder}: trained against encoder {trained_with!r}, not {params.encoder!r}"
        )
    return decoder, params.encoder


@functools.lru_cache(maxsize=4)
def get_decoder(path: str, device: str) -> nn.Sequential:
    net = load_state_into(decoder_layout(), path, "pytorch-AdaIN decoder")
    return net.requires_grad_(False).eval().to(device)


@functools.lru_cache(maxsize=4)
def _published_encoder(path: str, device: str) -> PublishedEncoder:
    net = load_state_into(published_vgg(), path, "pytorch-AdaIN vgg_normalised")
    return PublishedEncoder(net, path).to(device)


def get_adain_encoder(encoder: str, device: str | torch.device) -> VGGEncoder | PublishedEncoder:
    """The encoder up to relu4_1: stylegrid's caffe VGG-19 or the published vgg_normalised."""
    if encoder == "caffe":
        return get_encoder(STYLE_LAYERS, source="caffe", device=device)
    return _published_encoder(encoder, str(torch.device(device)))


# --- inference -------------------------------------------------------------------------------------------


def style_statistics(
    encoder, style: torch.Tensor, precision: str
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    feats = encode_targets(encoder, style, STYLE_LAYERS, precision)
    return {name: mean_std(f) for name, f in feats.items()}


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
    return _decode(contents, styles, params, style_weights, device, cache)[0]


def _tiled(contents, styles, params: AdaINParams, style_weights, device: torch.device, cache):
    """(image, layout) in tiles when the budget asks for them, else None."""
    from .adain_tiles import HALO, OVERLAP, stylize_tiled

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
    from .adain_tiles import HALO, OVERLAP

    return budget_layout(shape, BYTES_PER_PIXEL, HALO, OVERLAP, params.memory_budget, device)[2]


def networks(params: AdaINParams, device: torch.device):
    """(precision, encoder, decoder) for a call: the pair ``resolve_pair`` chooses, loaded once."""
    decoder_path, encoder_name = resolve_pair(params)
    precision = resolve_precision(params.precision, device)
    return precision, get_adain_encoder(encoder_name, device), get_decoder(decoder_path, str(device))


def weight_list(styles: Sequence, style_weights: Sequence[float] | None) -> list[float]:
    weights = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} style weights")
    return weights


def _decode(contents, styles, params: AdaINParams, style_weights, device: torch.device, cache):
    """(images [B, 3, H, W], AdaIN targets, style statistics per content) for a batch."""
    precision, encoder, decoder = networks(params, device)
    weights = weight_list(styles, style_weights)
    contents = contents.to(device).float()
    h, w = contents.shape[-2:]
    with torch.no_grad():
        fc = encode_targets(encoder, pad_to_multiple(contents), [CONTENT_LAYER], precision)[CONTENT_LAYER]
        stats, targets = [], []
        for i in range(contents.shape[0]):
            stats.append(
                [
                    _stats(encoder, s.to(device).float(), contents[i : i + 1], params, precision, cache)
                    for s in styles
                ]
            )
            targets.append(
                adain_target(fc[i : i + 1], [st[CONTENT_LAYER] for st in stats[-1]], weights, params.alpha)
            )
        target = torch.cat(targets)
        with autocast(precision, device):
            out = decoder(target.contiguous(memory_format=torch.channels_last))
    return out.float()[..., :h, :w].clamp(0, 1).contiguous(), target, stats


def _stats(encoder, style, content, params: AdaINParams, precision: str, cache):
    """Style statistics for one content (the style recoloured to it first when preserving colour)."""
    if params.preserve_color:
        style = color.coral(style, content)
    return cached_style_statistics(encoder, style, precision, cache)


def cached_style_statistics(encoder, style: torch.Tensor, precision: str, cache):
    """``style_statistics`` memoised by the style's values."""
    key = style_key("adain", encoder, [style], precision, "max")
    return memo(cache, key, lambda: style_statistics(encoder, style, precision))


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
    each region re-normalised with its own statistics to its own style's (``adain_regions.py``)."""
    params = params or AdaINParams()
    if not styles:
        raise ValueError("at least one style image is needed")
    start = time.perf_counter()
    device = torch.device(device)
    if regions:
        from .adain_regions import stylize_regions

        return stylize_regions(content, styles, regions, params, style_weights, device, cache)
    tiled = _tiled(content, styles, params, style_weights, device, cache)
    if tiled is None:
        image, target, stats = _decode(content, styles, params, style_weights, device, cache)
        measured = image
    else:  # the losses of a copy at LOSS_SIDE px: the encoder at full size is what tiling avoids
        image, tiles = tiled
        measured = shrink(image, LOSS_SIDE)
        small = replace(params, memory_budget="auto")
        _, target, stats = _decode(shrink(content, LOSS_SIDE), styles, small, style_weights, device, cache)
    weights = weight_list(styles, style_weights)
    losses = _report_losses(measured.to(device), target, stats[0], weights, params, device)
    precision = resolve_precision(params.precision, device)
    return StylizeResult.one_pass(image, losses, start, precision, device, "" if tiled is None else tiles)


stylize.spatial_control = True  # type: ignore[attr-defined]


def shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` with its long side at most ``side`` (area-averaged)."""
    h, w = image.shape[-2:]
    f = side / max(h, w)
    if f >= 1:
        return image
    size = (max(1, round(h * f)), max(1, round(w * f)))
    return F.interpolate(image.float(), size=size, mode="area")


def _report_losses(image, target, stats, weights, params: AdaINParams, device) -> dict[str, float]:
    """The training objective of the result: the content term (relu4_1 to the AdaIN target) and
    the mean / std terms, each layer weighted 1/4 so that the style terms sum to the average
    the decoder was trained on; the decoder's training ``style_weight`` is not applied, so
    rows of different decoders compare on the same scale."""
    precision = resolve_precision(params.precision, device)
    encoder = get_adain_encoder(resolve_pair(params)[1], device)
    with torch.no_grad():
        # the target was computed on the padded content: compare like with like
        feats = encode_targets(encoder, pad_to_multiple(image.to(device)), STYLE_LAYERS, precision)
        losses = {CONTENT_TERM: float(relative_squared_error(feats[CONTENT_LAYER], target))}
        for name in STYLE_LAYERS:
            mean, std = blend_stats([st[name] for st in stats], weights)
            losses[f"style.adain.{name}"] = float(mean_std_loss(feats[name], mean, std)) / len(STYLE_LAYERS)
    losses["total"] = sum(losses.values())
    return losses


def blend_stats(stats: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float]):
    total = float(sum(weights))
    mean = sum(m * (w / total) for (m, _), w in zip(stats, weights, strict=True))
    std = sum(s * (w / total) for (_, s), w in zip(stats, weights, strict=True))
    return mean, std


# --- training the decoder (Huang & Belongie 2017, section 6) --------------------------------------


@dataclass(frozen=True)
class TrainLosses:
    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    output: torch.Tensor  # the decoded batch (detached), for sample grids


def training_losses(
    encoder,
    decoder: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    style_weight: float,
    precision: str,
) -> TrainLosses:
    """One batch's losses; ``content`` and ``style`` are [B, 3, H, W] RGB in [0, 1]."""
    device = content.device
    with torch.no_grad(), autocast(precision, device):
        fc = encoder(content, [CONTENT_LAYER])[CONTENT_LAYER].float()
        fs = {k: v.float() for k, v in encoder(style, STYLE_LAYERS).items()}
        target = adain(fc, fs[CONTENT_LAYER])
    with autocast(precision, device):
        out = decoder(target)
        fo = encoder(out.float(), STYLE_LAYERS)
    content_loss = relative_squared_error(fo[CONTENT_LAYER], target)
    style_loss = sum(mean_std_loss(fo[n], *mean_std(fs[n])) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
    total = content_loss + style_weight * style_loss
    return TrainLosses(total, content_loss.detach(), style_loss.detach(), out.detach().float())


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

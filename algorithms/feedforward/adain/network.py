"""AdaIN's networks and one pass through them: the parameters, the decoder and the two encoder /
decoder pairs understood (stylegrid's caffe VGG-19 with the shipped decoder, and pytorch-AdaIN's
published files), decoding a batch, and the decoder's training losses (section 6 of the paper).

Two encoder / decoder pairs are understood, and a decoder is always used with the encoder it was
trained against:

* ``encoder="caffe"`` (default): stylegrid's VGG-19 (``shared/vgg.py``, the original caffe
  weights, zero padding) with the decoder shipped in ``algorithms/weights/`` or one trained with
  ``stylegrid train-adain`` (a ``.json`` file beside it records its encoder).
* the published pytorch-AdaIN files: ``encoder=vgg_normalised.pth`` and ``decoder=decoder.pth``,
  plain state dicts of an ``nn.Sequential`` whose layouts ``published_vgg`` and ``decoder_layout``
  reproduce module for module, so the files load directly.

Training a decoder has its pure part here, ``training_losses``: the content loss (the decoded
image's relu4_1 against the AdaIN target it was decoded from) plus ``style_weight`` x the mean /
std losses at relu1_1 .. relu4_1, relative squared errors like every stylegrid loss
(``shared/losses.py``), so one ``style_weight`` works with the caffe encoder. The Ray Train driver
that runs it (data, workers, checkpoints, MLflow) is ``orchestrator/train/driver.py``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ...base import Params
from ...names import BUDGET_HELP
from ...shared import color
from ...shared.device import autocast, resolve_precision
from ...shared.instance_norm import (
    ALPHA_HELP,
    CONTENT_LAYER,
    STYLE_LAYERS,
    adain,
    adain_target,
    cached_style_statistics,
    check_alpha,
)
from ...shared.losses import mean_std, mean_std_loss, relative_squared_error
from ...shared.memory import AUTO, check_budget
from ...shared.parameters import param, weight_list
from ...shared.sizing import pad_to_multiple
from ...shared.vgg import VGGEncoder, WeightsUnavailable, encode_targets, get_encoder, load_state_into
from ...weights import WEIGHTS_DIR

DEFAULT_DECODER = WEIGHTS_DIR / "adain_decoder.pth"


MULTIPLE = 8  # the decoder upsamples three times: sizes are padded to a multiple of 8


BYTES_PER_PIXEL = 800  # one pass's peak above the loaded models, per pixel (measured: about 740, ``benchmarks/fast_style.py``)


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


def networks(params: AdaINParams, device: torch.device):
    """(precision, encoder, decoder) for a call: the pair ``resolve_pair`` chooses, loaded once."""
    decoder_path, encoder_name = resolve_pair(params)
    precision = resolve_precision(params.precision, device)
    return precision, get_adain_encoder(encoder_name, device), get_decoder(decoder_path, str(device))


def decode(contents, styles, params: AdaINParams, style_weights, device: torch.device, cache):
    """(images [B, 3, H, W], AdaIN targets, style statistics per content) for a batch."""
    precision, encoder, decoder = networks(params, device)
    weights = weight_list(styles, style_weights)
    contents = contents.to(device).float()
    h, w = contents.shape[-2:]
    with torch.no_grad():
        fc = encode_targets(encoder, pad_to_multiple(contents, MULTIPLE), [CONTENT_LAYER], precision)[
            CONTENT_LAYER
        ]
        stats, targets = [], []
        for i in range(contents.shape[0]):
            stats.append(
                [
                    style_stats_for(
                        encoder, s.to(device).float(), contents[i : i + 1], params, precision, cache
                    )
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


def style_stats_for(encoder, style, content, params: AdaINParams, precision: str, cache):
    """Style statistics for one content (the style recoloured to it first when preserving colour)."""
    if params.preserve_color:
        style = color.coral(style, content)
    return cached_style_statistics(encoder, style, precision, cache)


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

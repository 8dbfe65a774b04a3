"""WCT's decoders (Li et al., NeurIPS 2017, section 3.1): one per level, each inverting VGG-19
from that layer, their files, and the objective ``stylegrid train-wct`` trains them on.

The decoders mirror VGG-19 from their layer down (reflection padding, nearest-neighbour
upsampling, as Li et al.'s and the AdaIN decoder, whose layout is relu4_1's here); each may be
narrower than VGG by a ``width`` factor, recorded in the ``.json`` beside the weights with the
levels the file holds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...shared.device import autocast
from ...shared.losses import relative_squared_error
from ...shared.vgg import WeightsUnavailable, encode_targets, load_state_into
from ...weights import WEIGHTS_DIR

LEVELS = ("relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1")  # coarse to fine: the paper's order
CHANNELS = (64, 128, 256, 512, 512)  # VGG-19's channels per block
CONVS = (2, 2, 4, 4, 4)  # ... and convolutions per block
DEFAULT_DECODERS = WEIGHTS_DIR / "wct_decoders.pth"

# the root mean square of the caffe encoder's features at each level (8 corpus photos and paintings
# at 128 px: 50, 250, 335, 1147, 168): a fresh decoder divides its input by it, so that its
# first layer starts at the scale default initialisations assume (unscaled, a one-layer relu1_1
# decoder starts with outputs of +-30 and Adam cannot settle it; relu5_1's units die)
FEATURE_SCALE = {"relu1_1": 50.0, "relu2_1": 250.0, "relu3_1": 350.0, "relu4_1": 1000.0, "relu5_1": 170.0}


def _block(level: str) -> int:
    if level not in LEVELS:
        raise ValueError(f"unknown WCT level {level!r}; the levels are {', '.join(LEVELS)}")
    return int(level[4])


def check_levels(levels: Sequence[str]) -> tuple[str, ...]:
    """``levels`` in the paper's coarse-to-fine order, each once; an unknown one is an error."""
    if not levels:
        raise ValueError(f"levels must name at least one of {', '.join(LEVELS)}")
    for level in levels:
        _block(level)
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels names a level twice: {list(levels)}")
    return tuple(sorted(levels, key=LEVELS.index))


# --- the decoders and their files --------------------------------------------------------------------------------------


def decoder_layout(level: str, width: float = 1.0) -> nn.Sequential:
    """The decoder inverting ``level``: VGG-19's convolutions from there back to the image,
    mirrored (the block's first convolution maps to the previous block's channels, then
    nearest x2, then that block's other convolutions), with ``width`` x VGG's channels inside.
    relu4_1's at width 1 is the AdaIN decoder's layout module for module."""
    block = _block(level)
    if not 0 < width <= 1:
        raise ValueError(f"a decoder's width must be in (0, 1], got {width}")
    layers: list[nn.Module] = []

    def conv(cin: int, cout: int, relu: bool = True) -> None:
        layers.extend([nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)])
        if relu:
            layers.append(nn.ReLU())

    cin = CHANNELS[block - 1]
    for k in range(block - 1, 0, -1):
        c = max(8, round(CHANNELS[k - 1] * width))
        conv(cin, c)
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        for _ in range(CONVS[k - 1] - 1):
            conv(c, c)
        cin = c
    conv(cin, 3, relu=False)
    return nn.Sequential(*layers)


class Decoders(nn.Module):
    """One decoder per level, each dividing its input by the level's ``scale_<level>`` (a buffer,
    saved with the weights: ``FEATURE_SCALE``, or 1 for a decoder started from the AdaIN
    decoder, which takes the features as they are); ``forward`` decodes each level's features
    given in a dict."""

    def __init__(self, widths: Mapping[str, float]):
        super().__init__()
        self.widths = {level: float(widths[level]) for level in check_levels(list(widths))}
        self.levels = nn.ModuleDict({lv: decoder_layout(lv, w) for lv, w in self.widths.items()})
        for level in self.widths:
            self.register_buffer(f"scale_{level}", torch.tensor(FEATURE_SCALE[level]))

    def scale(self, level: str) -> torch.Tensor:
        return getattr(self, f"scale_{level}")

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {level: self.levels[level](f / self.scale(level)) for level, f in features.items()}

    def decode(self, level: str, features: torch.Tensor) -> torch.Tensor:
        if level not in self.levels:
            raise ValueError(f"these decoders invert {', '.join(self.widths)}, not {level}")
        return self.levels[level](features / self.scale(level))


def decoders_record(path: str | Path) -> dict:
    """The ``.json`` beside a decoders file: its levels' widths and the encoder."""
    meta = Path(path).with_suffix(".json")
    if not meta.is_file():
        raise WeightsUnavailable(f"{path}: no {meta.name} beside it (the levels and widths of the decoders)")
    try:
        record = json.loads(meta.read_text())
        widths = {str(k): float(v) for k, v in record["widths"].items()}
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise WeightsUnavailable(f"{meta}: not a WCT decoders record ({type(e).__name__}: {e})") from None
    return {**record, "widths": widths}


def decoders_path(decoders: str) -> Path:
    path = DEFAULT_DECODERS if decoders == "default" else Path(decoders)
    if decoders == "default" and not path.is_file():
        raise WeightsUnavailable(
            f"{path}: the default WCT decoders are missing; train them with `stylegrid train-wct "
            "experiments/train_wct_default.yaml --export algorithms/weights/wct_decoders.pth`"
        )
    return path


@functools.lru_cache(maxsize=4)
def get_decoders(decoders: str, device: str) -> Decoders:
    """The decoders file (``default``: the shipped one), loaded once per process and device."""
    path = decoders_path(decoders)
    record = decoders_record(path)
    if record.get("encoder", "caffe") != "caffe":
        raise WeightsUnavailable(f"{path}: trained against encoder {record['encoder']!r}, not 'caffe'")
    net = load_state_into(Decoders(record["widths"]), path, "WCT decoders")
    return net.requires_grad_(False).eval().to(device)


# --- training the decoders (Li et al. 2017, section 3.1) -----------------------------------------------


@dataclass(frozen=True)
class ReconstructionLosses:
    total: torch.Tensor
    pixel: torch.Tensor  # summed over the levels
    feature: torch.Tensor  # summed over the levels
    outputs: dict[str, torch.Tensor]  # each level's reconstruction (detached), for sample grids


def reconstruction_losses(
    encoder, decoders: nn.Module, images: torch.Tensor, feature_weight: float, precision: str
) -> ReconstructionLosses:
    """The paper's decoder objective for every level at once: ``||I_o - I||^2 + lambda
    ||Phi(I_o) - Phi(I)||^2`` with ``Phi`` the level's VGG features, as relative squared errors
    (``losses.py``) so that the levels weigh alike; ``images`` [B, 3, H, W] in [0, 1]. ``decoders``
    is a ``Decoders`` (or its DDP wrapper: the call goes through its ``forward``)."""
    plain = decoders.module if hasattr(decoders, "module") else decoders
    levels = list(plain.widths)
    with torch.no_grad():
        feats = encode_targets(encoder, images, levels, precision)
    with autocast(precision, images.device):
        outputs = {k: v.float() for k, v in decoders(feats).items()}
    pixel = feature = images.new_zeros(())
    for level in levels:
        with autocast(precision, images.device):
            again = encoder(outputs[level], [level])[level].float()
        pixel = pixel + relative_squared_error(outputs[level], images)
        feature = feature + relative_squared_error(again, feats[level])
    total = pixel + feature_weight * feature
    return ReconstructionLosses(
        total, pixel.detach(), feature.detach(), {k: v.detach().clamp(0, 1) for k, v in outputs.items()}
    )

"""Chen & Schmidt's inverse network (2016, section 4): the decoder that turns style-swapped relu3_1
features back into an image in one pass, its file, and the objective ``stylegrid train-style-swap``
trains it on.

The network is WCT's relu3_1 decoder layout (``wct/decoders.decoder_layout``: VGG-19 mirrored
from relu3_1, reflection padding, nearest-neighbour upsampling), possibly narrower, held in a
one-level ``Decoders`` so that its file, its ``.json`` and its feature scale are WCT's. What
differs is the training: the paper's inverse network learns to invert features no image has,
the swapped ones, so each step inverts the photos' own relu3_1 *and* those features with every
patch swapped for a painting's (their "augmenting with style-swapped activations"), and the
objective is theirs, ``||Phi(f(Z)) - Z||^2 + lambda TV(f(Z))``: a swapped ``Z`` has no image to
compare pixels with. ``pixel_weight`` adds ``||f(Z) - I||^2`` for the photos' own features (not
in the paper; 0 is the paper's objective).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...shared.device import autocast
from ...shared.losses import relative_squared_error, total_variation
from ...shared.patches import PATCH_SIZE, style_patches, swap
from ...shared.vgg import WeightsUnavailable, encode_targets, load_state_into
from ..wct.decoders import WEIGHTS_DIR, Decoders, decoders_record

LAYER = "relu3_1"  # the paper's layer
DEFAULT_INVERSE = WEIGHTS_DIR / "style_swap_inverse.pth"
NETWORK = "style_swap_inverse"  # the record's "network": what tells this file from WCT decoders


def inverse_network(width: float) -> Decoders:
    """The untrained inverse network of ``width`` x VGG's channels."""
    return Decoders({LAYER: width})


def inverse_path(inverse: str) -> Path:
    path = DEFAULT_INVERSE if inverse == "default" else Path(inverse)
    if inverse == "default" and not path.is_file():
        raise WeightsUnavailable(
            f"{path}: the default style-swap inverse network is missing; train it with `stylegrid "
            "train-style-swap experiments/train_style_swap_default.yaml --export "
            "algorithms/weights/style_swap_inverse.pth`"
        )
    return path


@functools.lru_cache(maxsize=4)
def get_inverse(inverse: str, device: str) -> Decoders:
    """The inverse network file (``default``: the shipped one), loaded once per process and
    device. A WCT decoders file that holds a relu3_1 decoder is accepted too (a reconstruction
    decoder, not trained on swapped features: the comparison the paper's section 4 makes)."""
    path = inverse_path(inverse)
    record = decoders_record(path)
    if record.get("encoder", "caffe") != "caffe":
        raise WeightsUnavailable(f"{path}: trained against encoder {record['encoder']!r}, not 'caffe'")
    if LAYER not in record["widths"]:
        raise WeightsUnavailable(
            f"{path}: holds decoders for {', '.join(record['widths'])}, none for {LAYER}"
        )
    whole = load_state_into(Decoders(record["widths"]), path, "style-swap inverse network")
    net = inverse_network(record["widths"][LAYER])
    net.levels[LAYER].load_state_dict(whole.levels[LAYER].state_dict())
    net.scale(LAYER).copy_(whole.scale(LAYER))
    return net.requires_grad_(False).eval().to(device)


def swapped_features(
    content: torch.Tensor, styles: torch.Tensor, patch_size: int = PATCH_SIZE
) -> torch.Tensor:
    """Item i of ``content`` [B, C, H, W] (relu3_1 features) swapped with the patches of item
    ``i mod S`` of ``styles`` [S, C, H', W']."""
    out = []
    for i in range(content.shape[0]):
        bank = style_patches(styles[i % styles.shape[0]].unsqueeze(0).float(), patch_size)
        out.append(swap(content[i : i + 1].float(), bank, patch_size))
    return torch.cat(out)


@dataclass(frozen=True)
class InverseLosses:
    total: torch.Tensor
    feature: torch.Tensor  # ||Phi(f(Z)) - Z||^2 / ||Z||^2 over the photos' and the swapped features
    tv: torch.Tensor
    pixel: torch.Tensor  # the photos' reconstructions against the photos (0 weight in the paper)
    outputs: torch.Tensor  # [2B, 3, H, W]: the photos' inversions, then the swapped ones (detached)


def inverse_losses(
    encoder,
    network: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    tv_weight: float,
    pixel_weight: float,
    patch_size: int,
    precision: str,
) -> InverseLosses:
    """One step's objective: ``content`` [B, 3, H, W] and ``style`` [S, 3, H, W] crops in [0, 1];
    ``network`` a one-level ``Decoders`` (or its DDP wrapper: the call goes through ``forward``)."""
    with torch.no_grad():
        feats = encode_targets(encoder, torch.cat([content, style]), [LAYER], precision)[LAYER].float()
        own, painted = feats[: content.shape[0]], feats[content.shape[0] :]
        targets = torch.cat([own, swapped_features(own, painted, patch_size)])
    with autocast(precision, content.device):
        outputs = network({LAYER: targets})[LAYER].float()
        again = encoder(outputs, [LAYER])[LAYER].float()
    feature = relative_squared_error(again, targets)
    tv = total_variation(outputs)
    pixel = relative_squared_error(outputs[: content.shape[0]], content)
    total = feature + tv_weight * tv + pixel_weight * pixel
    return InverseLosses(total, feature.detach(), tv.detach(), pixel.detach(), outputs.detach().clamp(0, 1))

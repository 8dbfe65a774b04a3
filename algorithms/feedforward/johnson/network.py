"""The fast style network of ``algorithm.py`` and what trains and stores it, as pure parts.

* ``TransformNet``: Johnson, Alahi & Fei-Fei's image transformation network (ECCV 2016): a 9x9
  convolution, two stride-2 3x3 convolutions, five residual blocks at 128 channels, two
  up-sampling steps by nearest-neighbour resize then 3x3 convolution (Odena et al. 2016: no
  checkerboard of transposed convolutions), a 9x9 convolution to RGB and a sigmoid; reflection
  padding throughout; after every convolution but the last, instance normalisation (Ulyanov et al.
  2016) whose scale and shift are chosen per style: the conditional instance normalisation of
  Dumoulin, Shlens & Kudlur (ICLR 2017), ``ConditionalInstanceNorm``. A sample's style is a weight
  vector over the network's N styles: one-hot selects a style, fractions blend them.
* ``perceptual_losses``: the training objective, the content term at one VGG-19 layer against the
  content photo, Gram style terms at several layers against the style each sample was assigned,
  and total variation, every term relative like all of stylegrid's losses (``losses.py``).
* files: a state dict (``.pth``) with a ``.json`` beside it (``network_record``) that records the
  architecture and the styles, each with a 16 x 16 thumbnail by which a style image is recognised.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...shared.device import autocast
from ...shared.losses import gram_matrix, relative_squared_error, total_variation
from ...shared.vgg import WeightsUnavailable, encode_targets

THUMB = 16  # side of the thumbnails that recognise a style image
EPS = 1e-5  # instance normalisation's epsilon


# --- the network -----------------------------------------------------------------------------------------


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation with a scale and a shift per style (Dumoulin et al. 2017); a sample's
    parameters are its style weights [B, N] times the per-style tables, so weights that are one
    hot select a style and fractional weights blend styles."""

    def __init__(self, channels: int, num_styles: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_styles, channels))
        self.shift = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.affine(F.instance_norm(x, eps=EPS), weights)

    def affine(self, normalised: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The style's scale and shift applied to features already normalised."""
        w = weights.to(self.scale.dtype)
        gamma = (w @ self.scale)[:, :, None, None]
        beta = (w @ self.shift)[:, :, None, None]
        return normalised * gamma.to(normalised.dtype) + beta.to(normalised.dtype)


class ConvNorm(nn.Module):
    """Reflection padding, a convolution (after a nearest-neighbour resize when ``upsample``),
    conditional instance norm and ReLU (unless ``relu`` is False)."""

    def __init__(self, cin: int, cout: int, kernel: int, num_styles: int, stride: int = 1,
                 upsample: bool = False, relu: bool = True):  # fmt: skip
        super().__init__()
        self.upsample, self.relu = upsample, relu
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.norm = ConditionalInstanceNorm(cout, num_styles)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, norm=None) -> torch.Tensor:
        """``norm(module, features, weights)``, when given, normalises in place of ``self.norm``
        (a tile of a large image, normalised with the whole image's statistics)."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(self.pad(x))
        x = norm(self.norm, x, weights) if norm is not None else self.norm(x, weights)
        return F.relu(x) if self.relu else x


class Residual(nn.Module):
    def __init__(self, channels: int, num_styles: int):
        super().__init__()
        self.a = ConvNorm(channels, channels, 3, num_styles)
        self.b = ConvNorm(channels, channels, 3, num_styles, relu=False)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, norm=None) -> torch.Tensor:
        return x + self.b(self.a(x, weights, norm), weights, norm)


class TransformNet(nn.Module):
    """Johnson et al.'s image transformation network with conditional instance norm.
    ``forward(images [B, 3, H, W] in [0, 1], weights [B, N])`` (H and W multiples of 4)."""

    def __init__(self, num_styles: int, width: int = 32, blocks: int = 5):
        super().__init__()
        self.num_styles, self.width, self.blocks = num_styles, width, blocks
        w = width
        self.down = nn.ModuleList(
            [
                ConvNorm(3, w, 9, num_styles),
                ConvNorm(w, 2 * w, 3, num_styles, stride=2),
                ConvNorm(2 * w, 4 * w, 3, num_styles, stride=2),
            ]
        )
        self.res = nn.ModuleList([Residual(4 * w, num_styles) for _ in range(blocks)])
        self.up = nn.ModuleList(
            [
                ConvNorm(4 * w, 2 * w, 3, num_styles, upsample=True),
                ConvNorm(2 * w, w, 3, num_styles, upsample=True),
            ]
        )
        self.out_pad = nn.ReflectionPad2d(4)
        self.out = nn.Conv2d(w, 3, 9)

    def forward(self, images: torch.Tensor, weights: torch.Tensor, norm=None) -> torch.Tensor:
        """``norm``: see ``ConvNorm.forward``; it is called for the normalisations in order."""
        x = images
        for layer in (*self.down, *self.res, *self.up):
            x = layer(x, weights, norm)
        return torch.sigmoid(self.out(self.out_pad(x)))

    @property
    def norm_count(self) -> int:
        return sum(isinstance(m, ConditionalInstanceNorm) for m in self.modules())


def new_network(num_styles: int, seed: int, width: int = 32, blocks: int = 5) -> TransformNet:
    torch.manual_seed(seed)
    return TransformNet(num_styles, width, blocks)


# --- the perceptual loss (training) -----------------------------------------------------------------------


@dataclass(frozen=True)
class PerceptualLosses:
    total: torch.Tensor
    content: torch.Tensor  # detached, unweighted
    style: torch.Tensor
    tv: torch.Tensor
    output: torch.Tensor  # the stylized batch (detached), for sample grids


def style_grams(encoder, styles: Sequence[torch.Tensor], layers: Sequence[str], precision: str):
    """{layer: [N, C, C]}: the Gram targets of each style image (any sizes)."""
    per_style = [encode_targets(encoder, s, layers, precision) for s in styles]
    return {n: torch.cat([gram_matrix(f[n]) for f in per_style]) for n in layers}


def one_hot(indices: torch.Tensor, num_styles: int) -> torch.Tensor:
    return F.one_hot(indices.long(), num_styles).float()


def perceptual_losses(
    encoder,
    network: nn.Module,
    content: torch.Tensor,
    style_index: torch.Tensor,
    grams: Mapping[str, torch.Tensor],
    *,
    content_layer: str,
    style_layers: Sequence[str],
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    precision: str,
) -> PerceptualLosses:
    """One batch: ``content`` [B, 3, h, w] in [0, 1], ``style_index`` [B] (each sample's style),
    ``grams`` from ``style_grams``. The style term averages the layers' relative Gram errors."""
    device = content.device
    layers = sorted({content_layer, *style_layers})
    with torch.no_grad():
        target = encode_targets(encoder, content, [content_layer], precision)[content_layer]
    weights = one_hot(style_index, next(iter(grams.values())).shape[0]).to(device)
    with autocast(precision, device):
        out = network(content, weights)
        feats = encoder(out.float().contiguous(memory_format=torch.channels_last), layers)
    c = relative_squared_error(feats[content_layer], target)
    idx = style_index.to(device).long()
    s = sum(relative_squared_error(gram_matrix(feats[n]), grams[n][idx]) for n in style_layers) / len(
        style_layers
    )
    tv = total_variation(out.float())
    total = content_weight * c + style_weight * s + tv_weight * tv
    return PerceptualLosses(total, c.detach(), s.detach(), tv.detach(), out.detach().float())


# --- files -----------------------------------------------------------------------------------------------


def thumbnail(image: torch.Tensor) -> torch.Tensor:
    """[3, THUMB, THUMB]: the image [1, 3, H, W] averaged down (aspect ignored), to recognise it."""
    return F.interpolate(image.float()[:1], size=(THUMB, THUMB), mode="area")[0]


def thumbnail_list(image: torch.Tensor) -> list[int]:
    return [round(v) for v in (thumbnail(image).clamp(0, 1) * 255).flatten().tolist()]


@dataclass(frozen=True)
class NetworkFile:
    path: str
    styles: tuple[str, ...]
    thumbs: torch.Tensor  # [N, 3, THUMB, THUMB]
    width: int
    blocks: int


def read_record(path: Path) -> NetworkFile:
    """The ``.json`` beside a network file, checked; errors name the file and the reason."""
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise WeightsUnavailable(f"{path}: no such fast style network file")
    if not meta_path.is_file():
        raise WeightsUnavailable(
            f"{meta_path}: missing; a fast style network needs the .json written beside it by "
            "stylegrid train-johnson (its styles and architecture)"
        )
    try:
        meta = json.loads(meta_path.read_text())
        styles = [s["name"] for s in meta["styles"]]
        thumbs = torch.tensor([s["thumbnail"] for s in meta["styles"]], dtype=torch.float32) / 255
        arch = meta["architecture"]
        width, blocks = int(arch["width"]), int(arch["blocks"])
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsUnavailable(
            f"{meta_path}: not a stylegrid network record ({type(e).__name__}: {e})"
        ) from None
    if not styles or thumbs.shape[1:] != (3 * THUMB * THUMB,):
        raise WeightsUnavailable(f"{meta_path}: no styles, or thumbnails of the wrong size")
    return NetworkFile(str(path), tuple(styles), thumbs.reshape(-1, 3, THUMB, THUMB), width, blocks)


def network_record(styles: Sequence[tuple[str, str, torch.Tensor]], width: int, blocks: int) -> dict:
    """The ``.json`` fields describing a network: ``styles`` as (name, source, image [1,3,H,W])."""
    return {
        "algorithm": "johnson",
        "architecture": {"width": width, "blocks": blocks, "num_styles": len(styles)},
        "styles": [{"name": n, "source": src, "thumbnail": thumbnail_list(img)} for n, src, img in styles],
    }


@functools.lru_cache(maxsize=4)
def load_network(path: str, device: str) -> tuple[TransformNet, NetworkFile]:
    record = read_record(Path(path))
    net = TransformNet(len(record.styles), record.width, record.blocks)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise WeightsUnavailable(f"{path}: not a readable torch file ({type(e).__name__}: {e})") from None
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0:2]
        raise WeightsUnavailable(
            f"{path}: does not match the network its .json describes ({' '.join(first)})"
        ) from None
    return net.requires_grad_(False).eval().to(device), record

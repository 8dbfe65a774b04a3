"""WCT's parameters and its transform level by level: the style's moments per level, the
coloured target of a content's features, and the features a result is measured at. The one-pass
algorithm (``algorithm.py``), the tiles (``tiles.py``) and the regions (``regions.py``) build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ...base import Params
from ...names import BUDGET_HELP
from ...shared import color
from ...shared.device import resolve_precision
from ...shared.losses import relative_squared_error
from ...shared.memo import memo, style_key
from ...shared.memory import AUTO, check_budget
from ...shared.parameters import param
from ...shared.vgg import encode_targets, get_encoder
from .decoders import LEVELS, check_levels
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


def content_style_moments(contents, styles, params: WCTParams, encoder, precision, device, cache):
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

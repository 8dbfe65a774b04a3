"""Adaptive instance normalisation, the operation (Huang & Belongie, ICCV 2017, equation 8), and
the style statistics it takes: the content's per-channel mean and standard deviation replaced by
the style's. Shared by the AdaIN decoder (``feedforward.adain``) and AdaIN's objective optimised on
the image (``optimization.adain_optimize``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .losses import mean_std
from .memo import memo, style_key
from .vgg import encode_targets

CITATION = (
    "Huang & Belongie, Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization, ICCV 2017"
)


STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


CONTENT_LAYER = "relu4_1"


CONTENT_TERM = f"content.adain.{CONTENT_LAYER}"  # distance to the AdaIN target


ALPHA_HELP = "content-style trade-off in [0, 1]: 0 = the content's own features"


def check_alpha(p) -> None:
    if not 0.0 <= p.alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {p.alpha}")


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


def style_statistics(
    encoder, style: torch.Tensor, precision: str
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    feats = encode_targets(encoder, style, STYLE_LAYERS, precision)
    return {name: mean_std(f) for name, f in feats.items()}


def cached_style_statistics(encoder, style: torch.Tensor, precision: str, cache):
    """``style_statistics`` memoised by the style's values."""
    key = style_key("adain", encoder, [style], precision, "max")
    return memo(cache, key, lambda: style_statistics(encoder, style, precision))


def blend_stats(stats: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float]):
    total = float(sum(weights))
    mean = sum(m * (w / total) for (m, _), w in zip(stats, weights, strict=True))
    std = sum(s * (w / total) for (_, s), w in zip(stats, weights, strict=True))
    return mean, std

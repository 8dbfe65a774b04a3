"""Risser, Wilmot & Barnes, "Stable and Controllable Neural Texture Synthesis and Style Transfer
Using Histogram Losses" (2017): Gatys's Gram loss plus a histogram loss.

For each histogram layer, every channel of the output's activations is remapped to the style's
distribution by exact histogram matching (sort, assign in rank order, interpolate when the counts
differ), and the loss is the distance to the remapped activations, with no gradient through the
remap. Gram matrices alone match second-order statistics and let the mean and the spread of the
activations drift (the washed-out colours of plain Gatys); the histogram term pins them.

Loss balance: the paper normalises the gradients of the terms; reference implementations use fixed
weights. Here every term is already a *relative* squared error (see ``losses.py``), so the
histogram term is on the same scale as the Gram terms and a fixed ``histogram_weight`` (default 1,
i.e. as strong as the style loss per layer) balances them; multi-scale as in the paper comes from
the shared coarse-to-fine loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .base import Algorithm
from .gatys import GatysParams, GramStyleTerm, gram_term_factory
from .losses import histogram_loss, target_quantiles
from .optimize import (
    check_layers,
    check_non_negative,
    encode_targets,
    image_optimization_stylize,
    memo,
    param,
    style_key,
)
from .vgg import VGGEncoder


@dataclass(frozen=True, kw_only=True)
class HistogramParams(GatysParams):
    histogram_layers: tuple[str, ...] = param(("relu1_1", "relu4_1"), "layers whose histograms are matched")
    histogram_weight: float = param(1.0, "weight of the histogram loss, relative to style_weight")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers(self, "histogram_layers")
        check_non_negative(self, "histogram_weight")


def sorted_style_activations(
    encoder: VGGEncoder,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    layers: Sequence[str],
    precision: str,
) -> dict[str, torch.Tensor]:
    """Per layer, each channel's style activations sorted ascending ([C, M]). Several styles are
    pooled with as many samples as their weight asks for, so the target histogram is their blend."""
    total = float(sum(weights))
    out = {}
    for name in layers:
        parts = []
        for style, w in zip(styles, weights, strict=True):
            if w <= 0:
                continue
            f = encode_targets(encoder, style, [name], precision)[name]
            flat = f.reshape(f.shape[1], -1)
            keep = max(1, round(flat.shape[1] * w / total))
            idx = torch.linspace(0, flat.shape[1] - 1, keep, device=flat.device).round().long()
            parts.append(flat.sort(dim=1).values[:, idx])
        out[name] = torch.cat(parts, dim=1).sort(dim=1).values
    return out


@dataclass
class HistogramStyleTerm:
    gram: GramStyleTerm
    targets: Mapping[str, torch.Tensor]  # sorted activations per histogram layer
    weight: float  # style_weight x histogram_weight / number of layers
    # the targets resampled to the output's number of positions, per (layer, count): computed
    # once per scale instead of at every evaluation
    _quantiles: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)
    # the CPU sort's int64 workspace per (layer, count), reused from one evaluation to the next
    _workspaces: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.gram.layers, *self.targets)))

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = self.gram(features)
        for name, target in self.targets.items():
            f = features[name]
            key = (name, f.shape[-2] * f.shape[-1])
            if key not in self._quantiles:
                self._quantiles[key] = target_quantiles(target, key[1])
            if f.device.type == "cpu" and key not in self._workspaces:
                self._workspaces[key] = torch.empty(f.shape[1], key[1], dtype=torch.int64)
            loss = histogram_loss(f, self._quantiles[key], self._workspaces.get(key))
            terms[f"style.hist.{name}"] = self.weight * loss
        return terms


def histogram_term_factory(params: HistogramParams):
    """Gram term + histogram term for ``params``; both targets memoised by the style images."""
    gram_factory = gram_term_factory(params)
    hist_weight = params.style_weight * params.histogram_weight / len(params.histogram_layers)

    def factory(encoder: VGGEncoder, content, scaled_styles, weights, precision: str, memo_cache):
        key = style_key(
            "histogram",
            encoder,
            scaled_styles,
            precision,
            params.pooling,
            tuple(weights),
            params.histogram_layers,
        )
        sorted_acts = memo(
            memo_cache,
            key,
            lambda: sorted_style_activations(
                encoder, scaled_styles, weights, params.histogram_layers, precision
            ),
        )
        gram = gram_factory(encoder, content, scaled_styles, weights, precision, memo_cache)
        return HistogramStyleTerm(gram, sorted_acts, hist_weight)

    return factory


stylize = image_optimization_stylize(
    HistogramParams,
    histogram_term_factory,
    lambda p: tuple(dict.fromkeys((*p.style_layers, *p.histogram_layers))),
)


ALGORITHM = Algorithm(
    name="histogram",
    params_type=HistogramParams,
    stylize=stylize,
    summary="Gram + feature-histogram loss, image optimisation",
    citation="Risser, Wilmot & Barnes, Stable and Controllable Neural Texture Synthesis and Style Transfer "
    "Using Histogram Losses, 2017",
)

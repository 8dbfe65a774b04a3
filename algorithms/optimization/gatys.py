"""Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style" (2015) and "Image Style Transfer
Using Convolutional Neural Networks" (CVPR 2016): match the Gram matrices of VGG-19 activations
of the style image while keeping the activations of the content image, by optimising the pixels.

Departures from the paper, all documented in ``losses.py`` and README.md: Gram matrices divided
by H*W, each layer's loss relative to its target's norm, max pooling (as the reference
implementations), L-BFGS on a coarse-to-fine pyramid, and bf16 activations where the hardware
computes them natively (Gram matrices and losses stay fp32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..base import Algorithm
from ..shared.losses import blend_grams, gram_matrix, style_loss
from ..shared.memo import memo, style_key
from ..shared.parameters import (
    STYLE_LAYERS_GATYS,
    ImageOptimParams,
    check_layer_weights,
    check_layers,
    layer_weights,
    param,
)
from ..shared.vgg import VGGEncoder, encode_targets
from .loop import image_optimization_stylize
from .objective import TermInputs


@dataclass(frozen=True, kw_only=True)
class GatysParams(ImageOptimParams):
    style_weight: float = param(1.0, "weight of the style loss (chosen by experiments/tune_gatys.yaml)")
    style_layers: tuple[str, ...] = param(STYLE_LAYERS_GATYS, "VGG-19 layers whose Gram matrices are matched")
    style_layer_weights: tuple[float, ...] | None = param(None, "one per style layer; default equal")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers(self, "style_layers")
        check_layer_weights(self, "style_layers", "style_layer_weights")


@dataclass
class GramStyleTerm:
    """Sum over layers of weight x relative squared distance to the (blended) target Gram."""

    layers: tuple[str, ...]
    targets: Mapping[str, torch.Tensor]
    weights: Mapping[str, float]
    style_weight: float

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            f"style.gram.{name}": self.style_weight
            * self.weights[name]
            * style_loss(features[name], self.targets[name])
            for name in self.layers
        }


def gram_targets(
    encoder: VGGEncoder,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    layers: Sequence[str],
    precision: str,
) -> dict[str, torch.Tensor]:
    """Blended target Gram matrices, one per layer."""
    per_style = [encode_targets(encoder, s, layers, precision) for s in styles]
    return {name: blend_grams([gram_matrix(f[name]) for f in per_style], list(weights)) for name in layers}


def gram_term_factory(params: GatysParams):
    """The Gram style term for ``params``, its targets memoised by the style images' values."""
    lw = layer_weights(params.style_layers, params.style_layer_weights)

    def factory(t: TermInputs):
        key = style_key(
            "gram", t.encoder, t.styles, t.precision, params.pooling, tuple(t.weights), params.style_layers
        )
        targets = memo(
            t.memo,
            key,
            lambda: gram_targets(t.encoder, t.styles, t.weights, params.style_layers, t.precision),
        )
        return GramStyleTerm(params.style_layers, targets, lw, params.style_weight)

    return factory


stylize = image_optimization_stylize(GatysParams, gram_term_factory, lambda p: p.style_layers)


ALGORITHM = Algorithm(
    name="gatys",
    params_type=GatysParams,
    stylize=stylize,
    summary="Gram-matrix style loss, image optimisation",
    citation="Gatys, Ecker & Bethge, Image Style Transfer Using Convolutional Neural Networks, CVPR 2016",
)

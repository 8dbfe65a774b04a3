"""Gatys, Ecker & Bethge, "A Neural Algorithm of Artistic Style" (2015) and "Image Style Transfer
Using Convolutional Neural Networks" (CVPR 2016): match the Gram matrices of VGG-19 activations
of the style image while keeping the activations of the content image, by optimising the pixels.

Departures from the paper, all documented in ``losses.py`` and README.md: Gram matrices divided
by H*W, each layer's loss relative to its target's norm, max pooling (as the reference
implementations), L-BFGS on a coarse-to-fine pyramid, and bf16 activations where the hardware
computes them natively (Gram matrices and losses stay fp32).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

import torch

from .base import Algorithm, Callback, StylizeResult
from .losses import blend_grams, gram_matrix, style_loss
from .optimize import (
    STYLE_LAYERS_GATYS,
    ImageOptimParams,
    check_layer_weights,
    check_layers,
    encode_targets,
    fingerprint,
    layer_weights,
    memo,
    param,
    run_image_optimization,
)
from .vgg import VGGEncoder


@dataclass(frozen=True, kw_only=True)
class GatysParams(ImageOptimParams):
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
            f"style.{name}": self.style_weight
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


def stylize(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: GatysParams | None = None,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
) -> StylizeResult:
    """Stylize ``content`` [1, 3, H, W] with ``styles`` (RGB in [0, 1]); see the module docstring."""
    params = params or GatysParams()
    lw = layer_weights(params.style_layers, params.style_layer_weights)

    def factory(encoder: VGGEncoder, scaled_styles, weights, precision: str, memo_cache):
        key = (
            "gram",
            tuple(fingerprint(s) for s in scaled_styles),
            tuple(weights),
            params.style_layers,
            precision,
            encoder.source,
            params.pooling,
            str(scaled_styles[0].device),
        )
        targets = memo(
            memo_cache,
            key,
            lambda: gram_targets(encoder, scaled_styles, weights, params.style_layers, precision),
        )
        return GramStyleTerm(params.style_layers, targets, lw, params.style_weight)

    return run_image_optimization(
        content,
        styles,
        params,
        factory,
        params.style_layers,
        style_weights=style_weights,
        init_image=init_image,
        seed=seed,
        device=device,
        callback=callback,
        cache=cache,
    )


ALGORITHM = Algorithm(
    name="gatys",
    params_type=GatysParams,
    stylize=stylize,
    summary="Gram-matrix style loss, image optimisation",
    citation="Gatys, Ecker & Bethge, Image Style Transfer Using Convolutional Neural Networks, CVPR 2016",
)

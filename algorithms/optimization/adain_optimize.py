"""``adain_optimize``: AdaIN's objective (Huang & Belongie 2017) optimised on the image, with no
decoder. The image is optimised on the shared loop (``loop.py``) toward the AdaIN target at
relu4_1 with the mean / std style loss of the paper; the content loss to the AdaIN target replaces
the loop's own content layers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..base import Algorithm
from ..shared.instance_norm import (
    ALPHA_HELP,
    CITATION,
    CONTENT_LAYER,
    CONTENT_TERM,
    STYLE_LAYERS,
    adain_target,
    blend_stats,
    cached_style_statistics,
    check_alpha,
)
from ..shared.losses import mean_std_loss, relative_squared_error
from ..shared.parameters import ImageOptimParams, layer_weights, param
from ..shared.vgg import encode_targets
from .loop import image_optimization_stylize
from .objective import TermInputs


@dataclass(frozen=True, kw_only=True)
class AdaINOptimParams(ImageOptimParams):
    """AdaIN's objective optimised on the image, no decoder (``adain_optimize``): the content
    loss to the AdaIN target at relu4_1 replaces the loop's content layers."""

    # chosen by experiments/tune_adain_optimize.yaml (docs/defaults.md); the paper's 1 and 10
    alpha: float = param(0.8, ALPHA_HELP)
    style_weight: float = param(3.0, "weight of the mean/std style loss (the paper's lambda)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_alpha(self)

    def inactive(self) -> frozenset[str]:
        return super().inactive() | {"content_layers", "content_layer_weights"}


@dataclass
class AdaINOptimTerm:
    """Content loss to the AdaIN target at relu4_1 + mean/std style losses (relative, like every
    term of the optimisation loop)."""

    target: torch.Tensor
    stats: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    content_weight: float
    style_weight: float
    layer_weights: Mapping[str, float]

    @property
    def layers(self) -> tuple[str, ...]:
        return STYLE_LAYERS

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {
            CONTENT_TERM: self.content_weight * relative_squared_error(features[CONTENT_LAYER], self.target)
        }
        for name in STYLE_LAYERS:
            mean, std = self.stats[name]
            terms[f"style.adain.{name}"] = (
                self.style_weight * self.layer_weights[name] * mean_std_loss(features[name], mean, std)
            )
        return terms


def adain_term_factory(params: AdaINOptimParams):
    lw = layer_weights(STYLE_LAYERS, None)

    def factory(t: TermInputs):
        stats = [cached_style_statistics(t.encoder, s, t.precision, t.memo) for s in t.styles]
        fc = encode_targets(t.encoder, t.content, [CONTENT_LAYER], t.precision)[CONTENT_LAYER]
        target = adain_target(fc, [st[CONTENT_LAYER] for st in stats], t.weights, params.alpha)
        blended = {name: blend_stats([st[name] for st in stats], t.weights) for name in STYLE_LAYERS}
        return AdaINOptimTerm(target, blended, params.content_weight, params.style_weight, lw)

    return factory


# The content loss is the term's (to the AdaIN target), not the loop's (to the content's own
# relu4_2): the loop's is switched off.
stylize = image_optimization_stylize(
    AdaINOptimParams,
    adain_term_factory,
    lambda p: STYLE_LAYERS,
    loop_params_of=lambda p: dataclasses.replace(p, content_weight=0.0),
)

ALGORITHM = Algorithm(
    name="adain_optimize",
    params_type=AdaINOptimParams,
    stylize=stylize,
    summary="AdaIN's objective (content to the AdaIN target, mean/std style) optimised on the image; no decoder",
    citation=CITATION,
)

"""``style_swap_optimize``: Chen & Schmidt, "Fast Patch-based Style Transfer of Arbitrary Style"
(2016), with the image recovered by optimisation (their section 3.2, equation 3).

The content's relu3_1 features have every 3 x 3 patch replaced by the best-matching style patch
(``shared/patches.swap``: normalised cross-correlation, arg-max, the chosen patches put back and
averaged); the image is then optimised on the shared loop (``loop.py``) so that its own
relu3_1 features reach that target, ``||Phi(I) - SS(C, S)||^2 + lambda TV(I)``, starting from the
content. No training, any style. The swap is local, so tiles of a large image swap exactly as
the whole would; on the loop's coarser scales the target is swapped again at that scale.

The paper's fast path inverts the swapped features with a trained inverse network instead of
optimising: that is ``style_swap`` (``feedforward/style_swap/``). Several style images share one patch
bank (their patches together); a weighted blend has no meaning for an arg-max and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..base import Algorithm
from ..shared.losses import relative_squared_error
from ..shared.memo import memo, style_key
from ..shared.parameters import ImageOptimParams, param
from ..shared.patches import PATCH_SIZE, check_weights, style_patches, swap
from ..shared.vgg import encode_targets
from .loop import image_optimization_stylize
from .objective import TermInputs

LAYER = "relu3_1"  # the paper's layer
TERM = f"style.swap.{LAYER}"


@dataclass(frozen=True, kw_only=True)
class StyleSwapOptimizeParams(ImageOptimParams):
    """Style swap at relu3_1 inverted by optimisation (``style_swap_optimize``): the loss is the distance
    of the image's relu3_1 to the swapped features; the loop's own content loss is off unless
    ``content_weight`` asks for it (not in the paper)."""

    content_weight: float = param(
        0.0, "weight of the loop's content loss at content_layers (0: the paper's objective)"
    )
    style_weight: float = param(1.0, "weight of the distance to the style-swapped relu3_1 features")
    tv_weight: float = param(1e-4, "weight of the total-variation smoothness loss (the paper's lambda)")
    patch_size: int = param(PATCH_SIZE, "side of the swapped patches, in relu3_1 positions")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be at least 1, got {self.patch_size}")
        if self.style_weight <= 0:
            raise ValueError(f"style_weight must be positive, got {self.style_weight}")

    def inactive(self) -> frozenset[str]:
        unused = (
            frozenset() if self.content_weight else frozenset({"content_layers", "content_layer_weights"})
        )
        return super().inactive() | unused


@dataclass
class SwapTerm:
    """The relative squared distance of the image's relu3_1 to the swapped target."""

    target: torch.Tensor
    weight: float

    @property
    def layers(self) -> tuple[str, ...]:
        return (LAYER,)

    def __call__(self, features) -> dict[str, torch.Tensor]:
        return {TERM: self.weight * relative_squared_error(features[LAYER], self.target)}


def swap_term_factory(params: StyleSwapOptimizeParams):
    def factory(t: TermInputs) -> SwapTerm:
        check_weights(t.weights)

        def bank() -> torch.Tensor:
            feats = [encode_targets(t.encoder, s, [LAYER], t.precision)[LAYER] for s in t.styles]
            return torch.cat([style_patches(f.float(), params.patch_size) for f in feats])

        patches = memo(t.memo, style_key("swap", t.encoder, t.styles, t.precision, params.pooling,
                                         params.patch_size), bank)  # fmt: skip
        content = encode_targets(t.encoder, t.content, [LAYER], t.precision)[LAYER].float()
        with torch.no_grad():
            target = swap(content, patches, params.patch_size)
        return SwapTerm(target, params.style_weight)

    return factory


# a swap replaces every patch by a style patch: a region that keeps the photo has no place in it
stylize = image_optimization_stylize(
    StyleSwapOptimizeParams, swap_term_factory, lambda p: (LAYER,), spatial_control=False
)

CITATION = "Chen & Schmidt, Fast Patch-based Style Transfer of Arbitrary Style, arXiv:1612.04337 (2016)"
ALGORITHM = Algorithm(
    name="style_swap_optimize",
    params_type=StyleSwapOptimizeParams,
    stylize=stylize,
    summary="style swap, the image optimised to the swapped relu3_1 features (Chen & Schmidt's eq. 3)",
    citation=CITATION,
)

"""Declaring and checking algorithm parameters: ``param`` (a dataclass field with its help
text), the validators every parameter dataclass calls in ``__post_init__``, and
``ImageOptimParams``, the parameters every image-optimisation algorithm shares.

The dataclasses are the one place each default is defined; ``stylegrid algorithms``, the CLI's
``--set``, the YAML validation and the Parquet columns all read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..base import Params
from ..names import MAX_STEPS
from .memory import AUTO, check_budget
from .vgg import LAYER_INDEX


def param(default, help: str, *, file: bool = False):  # noqa: A002 - mirrors argparse's name
    """A dataclass field with its help text (read by `stylegrid algorithms` and the docs).
    ``file``: the value may name a file, which a spec gives relative to its own folder."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults: parameters are immutable")
    return field(default=default, metadata={"help": help, "file": file})


def file_fields(params_type: type) -> frozenset[str]:
    """The parameters whose values may name files (``param(..., file=True)``)."""
    import dataclasses

    return frozenset(f.name for f in dataclasses.fields(params_type) if f.metadata.get("file"))


OPTIM_BUDGET_HELP = (
    "memory one evaluation may take: auto (60% of a GPU, half the RAM) or a size such as 2GB; a "
    "pyramid level too large for it is optimised in overlapping tiles on a shifting grid"
)
STYLE_LAYERS_GATYS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True, kw_only=True)
class ImageOptimParams(Params):
    """Parameters every image-optimisation algorithm shares (defaults chosen in README.md)."""

    steps: int = param(160, "optimisation steps in total, split equally over the scales")
    scales: int | None = param(
        None, "coarse-to-fine pyramid levels, each halving the long side; default: down to >= 128 px"
    )
    optimizer: Literal["lbfgs", "adam"] = param("lbfgs", "lbfgs (one evaluation per step) or adam")
    learning_rate: float = param(0.02, "Adam step size in [0, 1] pixel units (L-BFGS ignores it)")
    init: str = param("content", "initial image: content, noise, or an image file path", file=True)
    content_layers: tuple[str, ...] = param(("relu4_2",), "VGG-19 layers for the content loss")
    content_layer_weights: tuple[float, ...] | None = param(None, "one per content layer; default equal")
    content_weight: float = param(1.0, "weight of the content loss")
    style_weight: float = param(2.5, "weight of the style loss")
    tv_weight: float = param(0.0, "weight of the total-variation smoothness loss")
    laplacian_weight: float = param(
        0.0, "weight of the Laplacian loss (Li et al. 2017): keeps the content's edges; 0 = off"
    )
    style_scale: float | None = param(
        None, "style long side relative to the output's; default: the style image as loaded"
    )
    preserve_color: bool = param(False, "transfer on luminance only and keep the content's colours")
    vgg_weights: str = param("caffe", "VGG-19 weights: caffe, torchvision, or a state-dict path", file=True)
    pooling: Literal["max", "avg"] = param("max", "VGG-19 pooling")
    precision: Literal["auto", "fp32", "bf16"] = param(
        "auto", "encoder precision; auto = bf16 where the hardware computes it natively"
    )
    memory_budget: str = param(AUTO, OPTIM_BUDGET_HELP)

    def __post_init__(self) -> None:
        check_positive(self, "steps")
        if self.steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS:,}, got {self.steps:,}")
        check_budget(self.memory_budget)
        if self.scales is not None and self.scales <= 0:
            raise ValueError(f"scales must be positive, got {self.scales}")
        check_non_negative(
            self, "content_weight", "style_weight", "tv_weight", "laplacian_weight", "learning_rate"
        )
        check_layers(self, "content_layers")
        check_layer_weights(self, "content_layers", "content_layer_weights")
        if self.style_scale is not None and self.style_scale <= 0:
            raise ValueError(f"style_scale must be positive, got {self.style_scale}")
        if self.scales is not None and self.steps < self.scales:
            raise ValueError(f"steps ({self.steps}) must be at least scales ({self.scales})")

    def default_scales(self, long_side: int) -> int:
        """Pyramid levels when ``scales`` is None (an algorithm may choose its own)."""
        return auto_scales(long_side)

    def inactive(self) -> frozenset[str]:
        return frozenset({"learning_rate"}) if self.optimizer == "lbfgs" else frozenset()

    def uses_seed(self) -> bool:
        """Only the noise initialisation draws random numbers (everything else is deterministic
        on the CPU; on a GPU some kernels are not, whatever the seed)."""
        return self.init == "noise"


# --- validation helpers (used by every parameter dataclass) --------------------------------------


def check_positive(p: object, *names: str) -> None:
    for n in names:
        if getattr(p, n) <= 0:
            raise ValueError(f"{n} must be positive, got {getattr(p, n)}")


def check_non_negative(p: object, *names: str) -> None:
    for n in names:
        if getattr(p, n) < 0:
            raise ValueError(f"{n} must be >= 0, got {getattr(p, n)}")


def check_layers(p: object, name: str) -> None:
    layers = getattr(p, name)
    if not layers:
        raise ValueError(f"{name} must name at least one layer")
    bad = [x for x in layers if x not in LAYER_INDEX or x.startswith("pool")]
    if bad:
        raise ValueError(f"{name}: unknown VGG-19 layer(s) {bad}; use conv1_1 ... relu5_4")


def check_layer_weights(p: object, layers_name: str, weights_name: str) -> None:
    weights = getattr(p, weights_name)
    if weights is None:
        return
    layers = getattr(p, layers_name)
    if len(weights) != len(layers):
        raise ValueError(f"{weights_name} has {len(weights)} values for {len(layers)} {layers_name}")
    if any(w < 0 for w in weights):
        raise ValueError(f"{weights_name} must be >= 0, got {weights}")


def layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    """Per-layer weights; equal weights summing to 1 when none are given."""
    if weights is None:
        return {name: 1.0 / len(layers) for name in layers}
    return dict(zip(layers, weights, strict=True))


AUTO_COARSEST = 128  # the automatic pyramid starts at the smallest level with a long side >= this


def auto_scales(long_side: int) -> int:
    """Pyramid levels for ``scales=None``: halve while the long side stays >= AUTO_COARSEST px.

    Looking at results: the large structures of a style (Van Gogh's swirls) form at about 128 px
    and are refined at the finer levels; 64 px levels cost little but lost content detail
    (content distance 0.295 against 0.272 at 256 px).
    """
    levels = 1
    while long_side / 2**levels >= AUTO_COARSEST:
        levels += 1
    return levels


def weight_list(styles: Sequence, style_weights: Sequence[float] | None) -> list[float]:
    weights = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} style weights")
    return weights

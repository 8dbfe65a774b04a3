"""The interface every algorithm shares.

An algorithm is a pure function ``stylize(content, styles, params, *, style_weights, init_image,
seed, device, callback) -> StylizeResult``: tensors and one typed parameter dataclass in, an
image and its loss history out. It prints nothing and touches no file; the caller's callback
receives a ``StepInfo`` after every optimisation step and owns progress bars and files.

Images are float tensors [1, 3, H, W], RGB in [0, 1].

Loss names, one rule for every algorithm (they become MLflow metric names and the results
table's ``loss_content`` / ``loss_style`` sums, so a term outside the rule is a bug):

* ``content.<layer>`` or ``content.<kind>.<layer>``: a content term (``content.relu4_2``,
  ``content.adain.relu4_1`` for AdaIN's distance to its target);
* ``style.<kind>.<layer>``: a style term, ``kind`` naming the statistic matched: ``gram``
  (Gatys), ``mrf`` (Li & Wand patches), ``hist`` (Risser et al. histograms), ``adain``
  (Huang & Belongie mean / std), ``swap`` (Chen & Schmidt's swapped patches) —
  ``style.gram.relu3_1``, ``style.mrf.relu4_1``;
* ``tv``, ``laplacian``, ``range``: the regularisers; ``temporal``: a video frame's distance to the
  previous stylized frame warped onto it (Ruder et al.); ``total``: the sum of all the others.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .names import DEFAULT_SIZE, DEFAULT_STYLE_SIZE  # noqa: F401  (re-exported: the sizes every entry point starts from)

STYLE_KINDS = ("gram", "mrf", "hist", "adain", "swap", "wct")
OTHER_TERMS = ("tv", "laplacian", "range", "temporal", "total")
_LAYER = r"(?:conv|relu)[1-5]_[1-4]"
_LOSS_NAME = re.compile(
    rf"^(?:content\.(?:[a-z]+\.)?{_LAYER}|style\.(?:{'|'.join(STYLE_KINDS)})\.{_LAYER}|{'|'.join(OTHER_TERMS)})$"
)


def check_loss_names(names: Iterable[str]) -> None:
    """``ValueError`` naming the first loss name outside the rule of the module docstring."""
    for name in names:
        if not _LOSS_NAME.match(name):
            raise ValueError(
                f"loss term {name!r} breaks the naming rule (content.<layer>, style.<kind>.<layer> "
                f"with kind in {STYLE_KINDS}, or one of {OTHER_TERMS}): see algorithms/base.py"
            )


class NonFiniteLoss(FloatingPointError):
    """A loss term became NaN or infinite: the job fails instead of returning a meaningless image."""


def check_finite(losses: dict[str, float], evaluations: int) -> None:
    bad = [f"{k}={v}" for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLoss(
            f"the loss is not finite after {evaluations} evaluation(s) ({', '.join(bad[:4])}): "
            "check the weights and the input images"
        )


def group_sums(losses: Mapping[str, float]) -> tuple[float | None, float | None]:
    """(sum of the ``content.*`` terms, sum of the ``style.*`` terms); None for a group the
    losses have no term of (an algorithm without a content term has no content loss, not 0)."""
    sums: dict[str, float] = {}
    for name, value in losses.items():
        group = name.partition(".")[0]
        if group in ("content", "style") and "." in name:
            sums[group] = sums.get(group, 0.0) + value
    return sums.get("content"), sums.get("style")


class Params:
    """Base of every algorithm's frozen parameter dataclass: which values a set of parameters
    leaves unused. Sweeps read it to fold jobs that cannot differ and to leave the results
    table's ``param.*`` cells null where a parameter does not apply."""

    def inactive(self) -> frozenset[str]:
        """Fields whose values cannot change the output, given the other fields' values."""
        return frozenset()

    def uses_seed(self) -> bool:
        """Whether the output depends on the seed (a sweep runs one job per seed only then)."""
        return False


@dataclass(frozen=True)
class StepLoss:
    """Losses after one step, named by the rule of the module docstring (``content.relu4_2``,
    ``style.gram.relu3_1``, ``tv``, ``total``): they map one-to-one onto MLflow metric names."""

    step: int  # 1-based, counted over all scales
    scale: int  # 0 = coarsest
    losses: Mapping[str, float]


@dataclass(frozen=True)
class StepInfo(StepLoss):
    """What the per-step callback receives."""

    total_steps: int
    num_scales: int
    size: tuple[int, int]  # (H, W) at this scale
    evaluations: int  # loss evaluations so far (a line search may take more than one per step)
    elapsed: float  # seconds since stylize started
    # The current image (a detached reference to the live optimisation variable, RGB, possibly a
    # little outside [0, 1] and grey when preserving colour): copy it if you keep it.
    image: torch.Tensor = field(repr=False, compare=False)


@dataclass(frozen=True)
class StylizeResult:
    image: torch.Tensor  # [1, 3, H, W] in [0, 1], on the CPU
    history: list[StepLoss]
    evaluations: int  # loss evaluations actually performed
    elapsed: float
    precision: str  # "fp32" or "bf16": what the encoder actually ran in
    device: str
    stopped_early: str = ""  # empty when every step ran; else which scale stopped and why
    tiles: str = ""  # empty for one pass; else the tile layout a memory budget asked for
    # the whole result's losses measured after the run, where the last step's are a tile's (an
    # optimisation in tiles); None: the last step's losses are the result's
    measured: Mapping[str, float] | None = None

    @classmethod
    def one_pass(cls, image: torch.Tensor, losses: Mapping[str, float], start: float, precision: str,
                 device, tiles: str = "") -> StylizeResult:  # fmt: skip
        """The result of a feed-forward pass: one "step" whose losses are measured on the image,
        ``start`` the ``time.perf_counter()`` of the call."""
        return cls(image=image.cpu(), history=[StepLoss(1, 0, losses)], evaluations=1,
                   elapsed=time.perf_counter() - start, precision=precision, device=str(device),
                   tiles=tiles)  # fmt: skip

    @property
    def final_losses(self) -> Mapping[str, float]:
        if self.measured is not None:
            return self.measured
        return self.history[-1].losses if self.history else {}


Callback = Callable[[StepInfo], None]


class StylizeFn(Protocol):
    def __call__(
        self,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        params: Any,
        *,
        style_weights: Sequence[float] | None = None,
        init_image: torch.Tensor | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        callback: Callback | None = None,
        cache: MutableMapping | None = None,
    ) -> StylizeResult: ...


class BatchStylizeFn(Protocol):
    """The feed-forward contract (what ``stylegrid stylize-catalog`` calls): same-size contents
    [B, 3, H, W] in [0, 1] -> stylized images [B, 3, H, W] in [0, 1], on the CPU, in one pass.
    ``cache`` memoises per-style work (statistics, loaded models) between calls."""

    def __call__(
        self,
        contents: torch.Tensor,
        styles: Sequence[torch.Tensor],
        params: Any,
        *,
        style_weights: Sequence[float] | None = None,
        device: str | torch.device = "cpu",
        cache: MutableMapping | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Algorithm:
    name: str
    params_type: type  # a dataclass: the single source of the algorithm's defaults
    stylize: StylizeFn
    summary: str
    citation: str
    kind: str = "optimization"  # or "feedforward"
    stylize_batch: BatchStylizeFn | None = None  # feed-forward algorithms only: the batched call
    # feed-forward algorithms with a memory budget: (params, batch shape, device) -> the tile
    # layout ``stylize_batch`` uses for such a batch, "" for one pass (the catalog's manifest)
    tile_layout: Callable[[Any, Sequence[int], Any], str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("optimization", "feedforward"):
            raise ValueError(f"algorithm {self.name}: kind must be optimization or feedforward")
        if self.kind == "feedforward" and self.stylize_batch is None:
            raise ValueError(f"algorithm {self.name}: a feed-forward algorithm needs stylize_batch")

    @property
    def spatial_control(self) -> bool:
        """Whether ``stylize`` takes ``regions`` (a style, or none, per region of the photo:
        ``regions.py``); the algorithm's module says so on its ``stylize``."""
        return bool(getattr(self.stylize, "spatial_control", False))

    def default_params(self) -> Any:
        return self.params_type()

    def parameter_table(self) -> list[tuple[str, str, Any, str]]:
        """(name, type, default, help) for every parameter, from the dataclass."""
        rows = []
        for f in dataclasses.fields(self.params_type):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            rows.append((f.name, type_name, default, f.metadata.get("help", "")))
        return rows

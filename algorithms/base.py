"""The interface every algorithm shares.

An algorithm is a pure function ``stylize(content, styles, params, *, style_weights, init_image,
seed, device, callback) -> StylizeResult``: tensors and one typed parameter dataclass in, an
image and its loss history out. It prints nothing and touches no file; the caller's callback
receives a ``StepInfo`` after every optimisation step and owns progress bars and files.

Images are float tensors [1, 3, H, W], RGB in [0, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class StepLoss:
    """Losses after one step. ``losses`` has dotted names (``style.relu3_1``, ``content.relu4_2``,
    ``tv``, ``total``) that map one-to-one onto MLflow metric names."""

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

    @property
    def final_losses(self) -> Mapping[str, float]:
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
    # feed-forward algorithms only: the batched call, and which parameter values make the
    # algorithm optimise each image instead (None: it never does)
    stylize_batch: BatchStylizeFn | None = None
    optimizes: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("optimization", "feedforward"):
            raise ValueError(f"algorithm {self.name}: kind must be optimization or feedforward")
        if self.kind == "feedforward" and self.stylize_batch is None:
            raise ValueError(f"algorithm {self.name}: a feed-forward algorithm needs stylize_batch")

    def runs_feedforward(self, params: Any) -> bool:
        """Whether ``params`` make this algorithm a feed-forward pass (usable on catalogs)."""
        return self.kind == "feedforward" and not (self.optimizes and self.optimizes(params))

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

"""Stylizing a run of video frames with temporal consistency (the unit ``stylegrid stylize-video``
schedules: one segment of a clip).

* Feed-forward algorithms stylize every frame in one pass, then the outputs are blended in order
  with the previous steadied output warped onto them where the flow is reliable
  (``temporal.blend_clip``): ``temporal_weight`` is the share of the warped previous output,
  0..1 (0 = frame by frame).
* Optimisation algorithms follow Ruder, Dosovitskiy & Brox (GCPR 2016): the first frame is
  stylized as a still; every later frame starts from the previous stylized frame warped onto it
  (single scale: coarse levels would undo the start) and adds the short-term temporal loss
  ``optimize.Temporal`` on the reliable pixels. ``temporal_weight`` scales that loss relative to
  the content and style weights (``temporal_loss_weight``); 0 = frame by frame (each frame from
  the content, no temporal term).

Frames are tensors [1, 3, H, W] in [0, 1], one size for the whole run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..base import Algorithm
from ..optimization.objective import Temporal
from .temporal import blend_clip, clip_flows, warp

# The default temporal_weight of each kind (chosen on pans and zooms over sample photos, not on
# the held-out corpus: benchmarks/video_flicker.py).
DEFAULT_TEMPORAL_WEIGHT = {"feedforward": 0.5, "optimization": 0.5}
# The temporal loss's weight is temporal_weight x (content_weight + style_weight) x this: our
# losses scale with those two weights, so one temporal_weight means the same pull whatever they are.
TEMPORAL_LOSS_SCALE = 100.0


def temporal_loss_weight(params: Any, temporal_weight: float) -> float:
    """The weight of Ruder et al.'s temporal loss for an optimisation algorithm's parameters."""
    return temporal_weight * (params.content_weight + params.style_weight) * TEMPORAL_LOSS_SCALE


@dataclass
class FramesResult:
    frames: list[torch.Tensor]  # the output frames, steadied
    raw: list[torch.Tensor] | None  # feed-forward: the frame-by-frame outputs before blending
    flows: list[torch.Tensor]  # backward flow of each consecutive input pair
    masks: list[torch.Tensor]  # its reliable pixels
    evaluations: int


def check_temporal_weight(algorithm: Algorithm, weight: float) -> None:
    """A weight the algorithm's kind takes, and a temporal term where the weight asks for one."""
    kind = algorithm.kind
    if weight < 0 or (kind == "feedforward" and weight >= 1):
        allowed = "0 <= temporal_weight < 1" if kind == "feedforward" else "temporal_weight >= 0"
        raise ValueError(f"temporal_weight {weight:g}: a {kind} algorithm takes {allowed}")
    if weight > 0 and kind == "optimization" and not getattr(algorithm.stylize, "temporal", False):
        raise ValueError(f"{algorithm.name} has no temporal term: give temporal_weight 0")


def check_frame_fits(algorithm: Algorithm, params: Any, size: tuple[int, int], temporal_weight: float,
                     device: str | torch.device = "cpu") -> None:  # fmt: skip
    """Refuse, before any work, frames of ``size`` (width, height) that an optimisation with a
    temporal term would have to tile within its memory budget (the temporal term is not tiled)."""
    if algorithm.kind != "optimization" or temporal_weight <= 0:
        return
    from ..optimization.tiles import level_core
    from ..shared.memory import budget_bytes

    if level_core(size[1], size[0], budget_bytes(params.memory_budget, torch.device(device))) is not None:
        raise ValueError(
            f"frames of {size[0]}x{size[1]} px need tiles within memory_budget={params.memory_budget}, and "
            "the temporal term is not tiled: lower --size or raise memory_budget (--set memory_budget=...)"
        )


def stylize_frames(
    algorithm: Algorithm,
    frames: Sequence[torch.Tensor],
    styles: Sequence[torch.Tensor],
    params: Any,
    *,
    temporal_weight: float,
    style_weights: Sequence[float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> FramesResult:
    """The stylized ``frames`` (see the module docstring); ``on_frame(i)`` after each frame."""
    check_temporal_weight(algorithm, temporal_weight)
    if not frames:
        raise ValueError("no frames to stylize")
    cache = {} if cache is None else cache
    flows, masks = clip_flows(list(frames))
    if algorithm.kind == "feedforward":
        raw = []
        for i, frame in enumerate(frames):
            raw.append(algorithm.stylize_batch(frame, styles, params, style_weights=style_weights,
                                               device=device, cache=cache).cpu())  # fmt: skip
            if on_frame:
                on_frame(i)
        return FramesResult(blend_clip(raw, flows, masks, temporal_weight), raw, flows, masks, 0)
    return _optimize_frames(algorithm, frames, styles, params, temporal_weight, style_weights, seed,
                            device, cache, flows, masks, on_frame)  # fmt: skip


def _optimize_frames(algorithm, frames, styles, params, temporal_weight, style_weights, seed, device,
                     cache, flows, masks, on_frame) -> FramesResult:  # fmt: skip
    outputs: list[torch.Tensor] = []
    evaluations = 0
    later = dataclasses.replace(params, init="previous frame", scales=1) if temporal_weight > 0 else params
    weight = temporal_loss_weight(params, temporal_weight) if temporal_weight > 0 else 0.0
    for i, frame in enumerate(frames):
        extra: dict[str, Any] = {}
        if i > 0 and temporal_weight > 0:
            warped = warp(outputs[-1], flows[i - 1])
            extra = {"init_image": warped, "temporal": Temporal(warped, masks[i - 1], weight)}
        result = algorithm.stylize(frame, styles, later if extra else params, style_weights=style_weights,
                                   seed=seed, device=device, cache=cache, **extra)  # fmt: skip
        outputs.append(result.image.cpu())
        evaluations += result.evaluations
        if on_frame:
            on_frame(i)
    return FramesResult(outputs, None, flows, masks, evaluations)

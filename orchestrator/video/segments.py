"""The segments of ``stylegrid stylize-video`` (``video/driver.py`` is the driver): how a clip is cut
into overlapping segments and joined again, the task that stylizes one segment (a Ray task or a
call in the driver), where a finished segment is saved, and the measures of the joined clip.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images import decode_image, fitted_size, to_tensor
from ..storage.files import write_atomic
from .clips import Clip

MEASURED_FRAMES = 8  # style_distance is measured on this many frames spread over the clip
PREVIEW_SECONDS = 3.0  # the MLflow run's animated preview: the clip's first seconds
PREVIEW_SIDE = 256


@dataclass(frozen=True)
class Segment:
    index: int
    first: int  # its first own frame
    end: int  # one past its last own frame
    warm: int  # the first frame it stylizes (overlap frames before ``first``, shared with the previous)


def plan_segments(frames: int, length: int, overlap: int) -> list[Segment]:
    """Segments of ``length`` own frames (the last may be shorter), each starting ``overlap``
    frames early."""
    if length < 1 or overlap < 0:
        raise ValueError(f"segment_frames must be >= 1 and overlap >= 0 (got {length}, {overlap})")
    return [
        Segment(i, first, min(first + length, frames), max(0, first - overlap))
        for i, first in enumerate(range(0, frames, length))
    ]


def crossfade_weights(n: int) -> np.ndarray:
    """The later segment's share over an overlap of ``n`` frames: rising, never 0 or 1."""
    return np.arange(1, n + 1, dtype=np.float32) / (n + 1)


def join_segments(segments: Sequence[Segment], outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The clip's frames from each segment's output (frames ``warm`` .. ``end``): its own frames,
    and over the overlap with the segment before, a cross-fade from that one's to its own."""
    frames: list[np.ndarray] = []
    for seg, out in zip(segments, outputs, strict=True):
        if len(out) != seg.end - seg.warm:
            raise ValueError(f"segment {seg.index}: {len(out)} frames, expected {seg.end - seg.warm}")
        shared = seg.first - seg.warm
        for j, a in enumerate(crossfade_weights(shared)):
            k = seg.warm + j
            mixed = (1 - a) * frames[k].astype(np.float32) + a * out[j].astype(np.float32)
            frames[k] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        frames.extend(out[shared:])
    return frames


# --- the segment task (a Ray task, or a call in this process) ----------------------------------


@dataclass(frozen=True)
class SegmentTask:
    algorithm: str
    params: dict
    styles: tuple[bytes, ...]
    style_names: tuple[str, ...]
    style_size: int
    temporal_weight: float
    seed: int
    device: str = "auto"
    baseline: bool = False  # an optimisation also stylizes every frame on its own (frame by frame)


def stylize_segment(task: SegmentTask, frames: np.ndarray) -> dict[str, np.ndarray]:
    """One segment's frames [n, H, W, 3] uint8 stylized in order: {"frames": ..., "raw": ...}
    (``raw``: frame by frame's: a network's frames before blending; an optimisation's each from
    the content when ``task.baseline``, else absent)."""

    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.shared.device import pick_device
    from stylegrid.algorithms.video.stylize import stylize_frames

    from ..params import build_params

    algorithm = get_algorithm(task.algorithm)
    params = build_params(algorithm.params_type, task.params, "")
    styles = [
        to_tensor(decode_image(d, n, task.style_size))
        for d, n in zip(task.styles, task.style_names, strict=True)
    ]
    inputs = [frame_tensor(f) for f in frames]
    device = pick_device(task.device)
    result = stylize_frames(algorithm, inputs, styles, params, temporal_weight=task.temporal_weight, seed=task.seed,
                            device=device)  # fmt: skip
    out = {
        "frames": _uint8(result.frames),
        "evaluations": np.array(result.evaluations),
        "node": np.array(_node()),
    }
    raw = result.raw
    if raw is None and task.baseline and task.temporal_weight > 0:
        alone = stylize_frames(algorithm, inputs, styles, params, temporal_weight=0, seed=task.seed,
                               device=device)  # fmt: skip
        raw = alone.frames
        out["evaluations"] = out["evaluations"] + alone.evaluations
    if raw is not None:
        out["raw"] = _uint8(raw)
    return out


def _node() -> str:
    """The Ray node this runs on ("local" outside Ray): the manifest says where each segment ran."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def frame_tensor(frame: np.ndarray):
    """A uint8 frame [H, W, 3] as a tensor [1, 3, H, W] in [0, 1] (a copy: Ray hands a task
    read-only arrays)."""
    import torch

    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255


def _uint8(frames) -> np.ndarray:
    import torch

    stacked = torch.cat([f.clamp(0, 1) for f in frames]).permute(0, 2, 3, 1)
    return (stacked * 255).round().to(torch.uint8).numpy()


def segment_file(seg: Segment) -> str:
    return f"segment_{seg.index:05d}.npz"


def save_segment(folder: Path, seg: Segment, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(folder / segment_file(seg), buf.getvalue())  # whole, or not there


def measure(clip: Clip, frames: Sequence[np.ndarray], raw: Sequence[np.ndarray] | None,
            styles: Sequence[tuple[str, bytes]], style_size: int) -> dict[str, float]:  # fmt: skip
    """The temporal measure (warping error on the input's reliable pixels) of the output, of the
    input itself and, when there, of the frame-by-frame output; and the mean style_distance /
    content_distance on up to ``MEASURED_FRAMES`` frames against the first style."""

    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.algorithms.video.temporal import clip_flows, warping_error

    inputs = [frame_tensor(f) for f in clip.frames]
    outputs = [frame_tensor(f) for f in frames]
    flows, masks = clip_flows(inputs)
    result = {
        "warping_error": warping_error(outputs, flows, masks),
        "input_warping_error": warping_error(inputs, flows, masks),
    }
    style = to_tensor(decode_image(styles[0][1], styles[0][0], style_size))
    picks = sorted(
        set(np.linspace(0, len(frames) - 1, min(MEASURED_FRAMES, len(frames))).round().astype(int))
    )
    scores = [quality(outputs[i], inputs[i], style) for i in picks]
    result["style_distance"] = float(np.mean([q.style_distance for q in scores]))
    result["content_distance"] = float(np.mean([q.content_distance for q in scores]))
    if raw is not None:
        raws = [frame_tensor(f) for f in raw]
        result["frame_by_frame_warping_error"] = warping_error(raws, flows, masks)
        result["frame_by_frame_style_distance"] = float(
            np.mean([quality(raws[i], inputs[i], style).style_distance for i in picks])
        )
    return result


def preview_gif(frames: Sequence[np.ndarray], clip: Clip, seconds: float = PREVIEW_SECONDS) -> bytes:
    """The first ``seconds`` of the output as an animated GIF at most ``PREVIEW_SIDE`` px."""
    from PIL import Image

    count = max(1, min(len(frames), round(seconds * clip.fps) if clip.fps else len(frames)))
    images = [Image.fromarray(f) for f in frames[:count]]
    side = min(PREVIEW_SIDE, max(images[0].size))  # never enlarged
    images = [im.resize(fitted_size(*im.size, side), resample=Image.Resampling.LANCZOS) for im in images]
    buf = io.BytesIO()
    duration = round(1000 / clip.fps) if clip.fps else 40
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buf.getvalue()

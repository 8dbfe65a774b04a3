"""``stylegrid stylize-video``: a clip stylized without flicker, in segments, resumable.

    stylegrid stylize-video clip.mp4 --style starry.jpg -o styled/              # adain, the fast path
    stylegrid stylize-video frames/ --fps 24 --style scream.jpg --algorithm gatys -o styled/
    python -m stylegrid stylize-video ...                                    # the `ray job submit` entrypoint

The driver reads the clip (``video_io.read_clip``: a file, a folder of frames or a URI; each
frame's own timestamp kept), splits it into segments of ``segment_frames`` frames, each
stylized from ``overlap`` frames before its own so that its temporal chain has settled when its
own frames begin (``algorithms/video/stylize.py``: flow-guided blending for feed-forward networks,
Ruder et al.'s warped start and temporal loss for optimisation). Segments run as Ray tasks across
the cluster (``engine: ray``, where a cluster is named) or one after another in this process;
each finished segment is saved under ``OUT/segments/<key>/`` at once, so a killed run re-does only
the unfinished ones (``key``: a digest of everything that decides the pictures). The driver
joins them, cross-fading each overlap from the earlier segment's frames to the later one's (no
jump where segments meet), encodes ``OUT/<name>.mp4`` with the source's timestamps and audio,
measures the flicker (the warping error on the input's reliable pixels, beside the input's own
and, for feed-forward networks, beside the frame-by-frame output's), writes
``OUT/manifest.json`` and a preview, and logs one MLflow run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..images import read_checked_images
from ..runtime import Console, Summary, cluster_named, start_ray
from ..services import ClusterLost, ClusterWatch, cluster_watch
from ..storage.files import WriteError, check_writable, write_atomic
from ..storage.lock import folder_lock, sigterm_as_interrupt
from ..tracking.tracker import Tracker, tracking_store
from ..tracking.ui import ui_command
from .clips import VIDEO_FORMATS, Clip, VideoError, local_copy, read_clip, write_clip
from .segments import (
    Segment,
    SegmentTask,
    join_segments,
    measure,
    plan_segments,
    preview_gif,
    save_segment,
    segment_file,
    stylize_segment,
)


@dataclass(frozen=True)
class VideoJob:
    """What ``stylize-video`` was asked (the CLI's options, checked)."""

    input: str
    styles: tuple[str, ...]
    out: Path
    algorithm: str = "adain"
    params: dict = dataclasses.field(default_factory=dict)
    size: int = 512
    style_size: int = 512
    start: float = 0.0
    duration: float | None = None
    fps: float | None = None
    temporal_weight: float | None = None  # None: the algorithm kind's default
    segment_frames: int = 48
    overlap: int = 4
    engine: str = "auto"
    baseline: bool = False  # an optimisation also stylized frame by frame, for the measure beside it
    seed: int = 0
    name: str | None = None  # the output video's file name (default: the input's stem + .mp4)
    tracking_uri: str | None = None
    experiment: str = "stylize-video"


# --- the driver -----------------------------------------------------------------------------------


@dataclass
class VideoSummary:
    out: Path
    video: Path | None
    segments: int
    resumed: int  # segments found done
    frames: int
    seconds: float
    interrupted: bool
    measures: dict
    tracking_uri: str
    run_id: str
    experiment_id: str | None
    notes: list[str]

    def summary(self) -> Summary:
        m = self.measures
        steadier = (
            f"; warping error {m['warping_error']:.2e} (frame by frame {m['frame_by_frame_warping_error']:.2e}, "
            f"the input's own {m['input_warping_error']:.2e})"
            if "frame_by_frame_warping_error" in m
            else (
                f"; warping error {m['warping_error']:.2e} (the input's own {m['input_warping_error']:.2e})"
                if m
                else ""
            )
        )
        headline = (
            f"{'interrupted' if self.interrupted else 'done'}: {self.frames} frames in {self.segments} segment(s), "
            f"{self.resumed} already done, in {self.seconds:.1f}s{steadier}"
        )
        places = [("video", str(self.video))] if self.video else []
        places += [("manifest", str(self.out / "manifest.json"))]
        places += [("MLflow", f"run {self.run_id}: {ui_command(self.tracking_uri, self.experiment_id)}")]
        return Summary(headline, places, self.notes, self.interrupted)


def check_job(job: VideoJob):
    """The algorithm, its parameters and the temporal weight, or a clear refusal."""
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.video.stylize import DEFAULT_TEMPORAL_WEIGHT, check_temporal_weight

    from ..params import build_params

    algorithm = get_algorithm(job.algorithm)
    params = build_params(algorithm.params_type, job.params, "--set ")
    weight = DEFAULT_TEMPORAL_WEIGHT[algorithm.kind] if job.temporal_weight is None else job.temporal_weight
    check_temporal_weight(algorithm, weight)
    if job.overlap >= job.segment_frames:
        raise ValueError(
            f"--overlap {job.overlap} must be smaller than --segment-frames {job.segment_frames}"
        )
    return algorithm, params, weight


def frames_digest(clip: Clip) -> str:
    """The SHA-256 of the clip's frames as stylized (the same for a file and its frames)."""
    h = hashlib.sha256()
    for frame in clip.frames:
        h.update(hashlib.sha256(frame.tobytes()).digest())
    return h.hexdigest()


def job_key(job: VideoJob, clip: Clip, styles: Sequence[tuple[str, bytes]], weight: float) -> str:
    """A digest of everything that decides the segments' pictures: a run with the same key
    re-uses the segments already saved."""
    h = hashlib.sha256(frames_digest(clip).encode())
    decided = {
        "algorithm": job.algorithm, "params": job.params, "style_size": job.style_size, "weight": weight,
        "segment_frames": job.segment_frames, "overlap": job.overlap, "seed": job.seed, "baseline": job.baseline,
        "styles": [hashlib.sha256(d).hexdigest() for _, d in styles], "size": clip.size,
    }  # fmt: skip
    h.update(json.dumps(decided, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def choose_engine(engine: str, ray_init_kwargs: dict | None) -> str:
    """``engine``, with ``auto`` resolved: Ray tasks where a cluster is named, else this process."""
    return engine if engine != "auto" else ("ray" if cluster_named(ray_init_kwargs) else "local")


def stylize_video(job: VideoJob, *, quiet: bool = False, ray_init_kwargs: dict | None = None) -> VideoSummary:
    """Run (or resume) a video job; see the module docstring."""
    algorithm, params, weight = check_job(job)
    styles = read_checked_images(job.styles, job.style_size)  # a bad style fails here, naming it
    out = job.out
    if out.exists() and not out.is_dir():
        raise VideoError(f"--output {out}: exists and is not a folder")
    name = job.name or f"{Path(job.input.rstrip('/')).stem or 'video'}.mp4"
    video_path = out / name
    if video_path.suffix.lower() not in VIDEO_FORMATS:
        raise VideoError(
            f"--name {name}: the extension names the container: one of {', '.join(VIDEO_FORMATS)}"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(out, exc) from None
    check_writable(video_path)
    with local_copy(job.input) as source:
        clip = read_clip(source, job.size, start=job.start, duration=job.duration, fps=job.fps)
        clip.source = job.input
        return _stylize(
            job, algorithm, params, weight, styles, clip, source, video_path, quiet, ray_init_kwargs
        )


def _stylize(
    job, algorithm, params, weight, styles, clip, source, video_path, quiet, ray_init_kwargs
) -> VideoSummary:
    from stylegrid.algorithms.video.stylize import check_frame_fits

    out, name, console = job.out, video_path.name, Console(quiet)
    notes = list(clip.notes)
    if clip.variable_rate:
        notes.append(f"{job.input}: variable frame rate: each frame keeps its own timestamp")
    check_frame_fits(algorithm, params, clip.size, weight)
    store = tracking_store(job.tracking_uri, out)
    with folder_lock(out, "stylegrid stylize-video"), sigterm_as_interrupt():
        key = job_key(job, clip, styles, weight)
        folder = out / "segments" / key
        folder.mkdir(parents=True, exist_ok=True)
        segments = plan_segments(len(clip.frames), job.segment_frames, job.overlap)
        done = {s.index for s in segments if (folder / segment_file(s)).exists()}
        console.say(
            f"stylize-video: {len(clip.frames)} frames of {clip.size[0]}x{clip.size[1]} px "
            f"({clip.fps:.2f} fps{', audio' if clip.audio else ', no audio'}), {algorithm.name}, "
            f"temporal_weight {weight:g}; {len(segments)} segment(s) of {job.segment_frames} frames "
            f"(+{job.overlap} overlap), {len(done)} already done in {folder}"
        )
        tracker = store.tracker(job.experiment)
        run_id = tracker.start_run(f"video {name}", {"stylegrid.kind": "video", "stylegrid.out": str(out)})
        tracker.log_params(run_id, _run_params(job, clip, algorithm.name, weight, len(segments)), limit=500)
        # the inputs as MLflow datasets, as a sweep's runs have them (the runs table's Dataset column)
        tracker.log_images_as_datasets(
            run_id, "content", {Path(job.input.rstrip("/")).name: frames_digest(clip)}
        )
        tracker.log_images_as_datasets(
            run_id, "style", {Path(p).name: hashlib.sha256(d).hexdigest() for p, d in styles}
        )
        start = time.perf_counter()
        task = SegmentTask(algorithm.name, dict(job.params), tuple(d for _, d in styles),
                           tuple(p for p, _ in styles), job.style_size, weight, job.seed,
                           baseline=job.baseline)  # fmt: skip
        todo = [s for s in segments if s.index not in done]
        try:
            run_segments(
                task,
                clip,
                todo,
                folder,
                choose_engine(job.engine, ray_init_kwargs),
                console,
                ray_init_kwargs,
                quiet,
            )
            saved = [dict(np.load(folder / segment_file(s))) for s in segments]
            frames = join_segments(segments, [s["frames"] for s in saved])
            write_clip(video_path, frames, clip, audio_from=Path(source) if clip.audio else None)
            raw = (
                join_segments(segments, [s["raw"] for s in saved]) if all("raw" in s for s in saved) else None
            )
            measures = measure(clip, frames, raw, styles, job.style_size)
        except KeyboardInterrupt:
            tracker.end_run(run_id, "KILLED")
            left = sum(1 for s in segments if not (folder / segment_file(s)).exists())
            return VideoSummary(out, None, len(segments), len(done), len(clip.frames), time.perf_counter() - start,
                                True, {}, store.uri, run_id, tracker.experiment_id,
                                notes + [f"{left} segment(s) left: run the same command again to finish"])  # fmt: skip
        except ClusterLost:  # the segments saved are kept; the line says to run it again
            tracker.end_run(run_id, "KILLED")
            raise
        except BaseException:
            tracker.end_run(run_id, "FAILED")
            raise
        measures["evaluations"] = int(sum(int(s["evaluations"]) for s in saved))
        seconds = time.perf_counter() - start
        nodes = [str(s.get("node", "local")) for s in saved]
        manifest = _manifest(job, clip, algorithm.name, weight, segments, nodes, key, video_path, measures,
                             notes, run_id, seconds)  # fmt: skip
        write_atomic(out / "manifest.json", json.dumps(manifest, indent=2).encode())
        _log_run(tracker, run_id, measures, seconds, frames, clip, manifest)
        return VideoSummary(out, video_path, len(segments), len(done), len(clip.frames), seconds, False, measures,
                            store.uri, run_id, tracker.experiment_id, notes)  # fmt: skip


def run_segments(task: SegmentTask, clip: Clip, todo: Sequence[Segment], folder: Path, engine: str,
                 console: Console, ray_init_kwargs: dict | None, quiet: bool) -> None:  # fmt: skip
    """Stylize ``todo``, saving each segment as it finishes (Ray tasks, or in order here)."""
    if not todo:
        return
    frames_of = lambda s: np.stack(clip.frames[s.warm : s.end])  # noqa: E731
    size = lambda s: s.end - s.first  # noqa: E731
    if engine == "local":
        for seg in console.track(todo, sum(map(size, todo)), "frame", size):
            save_segment(folder, seg, stylize_segment(task, frames_of(seg)))
        return
    import ray

    start_ray(ray_init_kwargs, quiet=quiet)
    # A GPU per segment where the cluster has GPUs (the model on it), else one CPU. SPREAD:
    # segments are heavy and few; one per node first, rather than packed onto one.
    resources = ray.cluster_resources()
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    task = dataclasses.replace(task, device="cuda" if gpus else "cpu")
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2, scheduling_strategy="SPREAD")(
        stylize_segment
    )
    shared = ray.put(task)
    pending = {remote.remote(shared, frames_of(seg)): seg for seg in todo}
    where = f"{resources.get('GPU', 0):g} GPU(s)" if gpus else f"{resources.get('CPU', 0):g} CPU(s)"
    console.say(f"{len(todo)} segment(s) as Ray tasks over the cluster's {where}")
    watch = cluster_watch(ray_init_kwargs)
    try:
        for ref in console.track(
            _as_completed(pending, watch), sum(map(size, todo)), "frame", lambda r: size(pending[r])
        ):
            save_segment(folder, pending[ref], ray.get(ref))
    except ClusterLost:  # nothing to cancel: ray.cancel would wait for the lost cluster
        raise
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _as_completed(pending: dict, watch: ClusterWatch):
    """The references of ``pending`` as their tasks finish; ``ClusterLost`` within seconds of
    the cluster's loss (a wait with no timeout would last until Ray's core gives up, ~60 s)."""
    import ray

    waiting = list(pending)
    while waiting:
        if line := watch.lost():
            raise ClusterLost(line)
        ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
        yield from ready


def _run_params(job: VideoJob, clip: Clip, algorithm: str, weight: float, segments: int) -> dict[str, Any]:
    values = {
        "input": job.input, "styles": " ".join(job.styles), "algorithm": algorithm, "temporal_weight": weight,
        "size": f"{clip.size[0]}x{clip.size[1]}", "frames": len(clip.frames), "fps": round(clip.fps, 3),
        "start": job.start, "duration": job.duration, "segment_frames": job.segment_frames,
        "overlap": job.overlap, "segments": segments, "audio": clip.audio, "seed": job.seed,
    }  # fmt: skip
    values.update({f"param.{k}": v for k, v in job.params.items()})
    return values


def _manifest(
    job, clip, algorithm, weight, segments, nodes, key, video, measures, notes, run_id, seconds
) -> dict:
    return {
        "input": job.input, "output": str(video), "styles": list(job.styles), "algorithm": algorithm,
        "params": job.params, "temporal_weight": weight, "start": clip.start, "frames": len(clip.frames),
        "fps": clip.fps, "variable_frame_rate": clip.variable_rate, "source_size": list(clip.source_size),
        "size": list(clip.size), "audio": clip.audio, "segment_key": key,
        "segments": [{**dataclasses.asdict(s), "node": node} for s, node in zip(segments, nodes, strict=True)],
        "measures": measures, "notes": notes,
        "mlflow_run_id": run_id, "seconds": round(seconds, 2),
    }  # fmt: skip


def _log_run(tracker: Tracker, run_id: str, measures: dict, seconds: float, frames: Sequence[np.ndarray],
             clip: Clip, manifest: dict) -> None:  # fmt: skip
    tracker.log_metrics(
        run_id,
        {**measures, "seconds": seconds, "frames_per_second": len(frames) / seconds if seconds else 0.0},
    )
    tracker.log_bytes(run_id, "manifest.json", json.dumps(manifest, indent=2).encode())
    tracker.log_bytes(run_id, "preview.gif", preview_gif(frames, clip))
    tracker.end_run(run_id, "FINISHED")

"""Running one Job in a worker process: plain Python, wrapped as a Ray actor by the scheduler.

A ``JobRunner`` lives as long as its worker process and keeps things warm between jobs: the
VGG-19 encoder (cached per process in ``algorithms.shared.vgg``), the decoded images, and the style
targets (the ``cache`` memo each algorithm may fill). Any exception inside a job becomes a failed
``JobOutcome`` carrying the error, so one bad image never takes other jobs down. The runner
writes no file: the image comes back as PNG bytes and the driver is the only writer.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from stylegrid.algorithms import StepInfo, StepLoss, get_algorithm
from stylegrid.algorithms.base import check_loss_names
from stylegrid.algorithms.shared.device import pick_device
from stylegrid.algorithms.shared.metrics import quality, regional_quality

from ..images import ImageError, decode_image, load_image, png_bytes, resize_to, to_tensor
from ..params import build_params
from ..report.pictures import loss_curve_png
from ..runtime import share_memory_with_other_workers
from ..tracking.model_uris import localize
from .halving import Rungs, StopAtRung, group_of
from .jobs import Job

IMAGE_CACHE = 32  # decoded images kept per worker


@dataclass
class JobOutcome:
    job_id: str
    status: str  # "ok", "failed" or "stopped" (early stopping: its image and measures at a rung)
    error: str = ""
    png: bytes | None = None
    plot_png: bytes | None = None  # the loss curve, rendered here so the driver only writes
    snapshots: list[tuple[int, bytes]] = field(default_factory=list)  # (step, PNG) every snapshot_every
    history: list[StepLoss] = field(default_factory=list)
    final_losses: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0
    quality: dict[str, float] = field(default_factory=dict)  # algorithms.shared.metrics.MEASURES by name
    wall_seconds: float = 0.0
    started_at: float = 0.0  # wall-clock time.time() of the job's start and end in the worker
    finished_at: float = 0.0
    host: str = ""
    device: str = ""
    precision: str = ""
    tiles: str = ""  # the tile layout a memory budget asked for (algorithms' StylizeResult.tiles)
    note: str = ""  # e.g. why the optimiser stopped early
    pid: int = 0
    rungs: list[dict] = field(default_factory=list)  # early stopping: the measures at each rung reached


def job_device(job: Job) -> torch.device:
    """A GPU when the job asks for one and this worker has one; the CPU otherwise."""
    return pick_device(job.num_gpus > 0)


class JobRunner:
    def __init__(self, num_threads: int | None = None, model_locations: dict[str, str] | None = None):
        self.model_locations = model_locations or {}  # MLflow model URI -> its files (models.py)
        share_memory_with_other_workers()
        if num_threads:
            torch.set_num_threads(max(1, num_threads))
        self.images: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.targets: dict[Any, Any] = {}

    def _image(self, data: bytes, path: str, sha: str, kind: str, size: int) -> torch.Tensor:
        key = (sha, kind, size)
        if key not in self.images:
            if kind == "content":
                self.images[key] = to_tensor(resize_to(decode_image(data, path), size, path))
            else:
                self.images[key] = to_tensor(decode_image(data, path, max_side=size))
            while len(self.images) > IMAGE_CACHE:
                self.images.popitem(last=False)
        self.images.move_to_end(key)
        return self.images[key]

    def run(
        self, job: Job, content: bytes, style: bytes, *extra: bytes, rungs: Rungs | None = None
    ) -> JobOutcome:
        """Run ``job`` on the given image files' bytes (shipped by the driver: on a cluster the
        worker's node need not have the files); ``extra``: those of ``job.extra_files()``;
        ``rungs``: early stopping (the job measures itself at each rung and asks the board)."""
        started = time.time()
        start = time.perf_counter()
        try:
            outcome = self._run(job, content, style, extra, rungs)
        except ImageError as exc:
            outcome = JobOutcome(job.job_id, "failed", error=str(exc))
        except Exception as exc:  # the job fails, the worker and the sweep go on
            last = traceback.extract_tb(exc.__traceback__)[-1]
            error = f"{type(exc).__name__}: {exc} (at {os.path.basename(last.filename)}:{last.lineno})"
            outcome = JobOutcome(job.job_id, "failed", error=error)
        outcome.wall_seconds = time.perf_counter() - start
        outcome.started_at, outcome.finished_at = started, time.time()
        outcome.host, outcome.pid = socket.gethostname(), os.getpid()
        return outcome

    def _run(
        self,
        job: Job,
        content_bytes: bytes,
        style_bytes: bytes,
        extra: tuple[bytes, ...] = (),
        rungs: Rungs | None = None,
    ) -> JobOutcome:
        algorithm = get_algorithm(job.algorithm)
        params = localize(build_params(algorithm.params_type, job.params), self.model_locations)
        device = job_device(job)
        content = self._image(content_bytes, job.content, job.content_sha256, "content", job.size)
        style = self._image(style_bytes, job.style, job.style_sha256, "style", job.style_size)
        init = getattr(params, "init", "content")
        init_image = None if init in ("content", "noise") else load_image(init)
        snapshots: list[tuple[int, bytes]] = []
        history: list[StepLoss] = []  # kept for a job stopped at a rung (the result has its own)
        reached: list[dict] = []  # the rungs reached: step, measures, decision

        styles, regions = [style], None
        if job.regions:  # spatial control: the regions from the shipped label image and styles
            from .regions import job_regions

            by_sha = {job.style_sha256: style_bytes}
            by_sha.update((sha, b) for (_, sha), b in zip(job.extra_files(), extra, strict=True))
            data = {path: by_sha[sha] for path, sha in job.region_files().items()}
            styles, regions = job_regions(job, data, content.shape[-2:])

        def measure(image: torch.Tensor) -> dict[str, float]:
            if regions:  # each region's style measures against its own painting
                found = regional_quality(image, content, styles, regions, device=device, cache=self.targets)
            else:
                found = quality(image, content, style, device=device, cache=self.targets)
            return found.as_dict()

        group = group_of(job.content_sha256, job.style_sha256, job.size, job.mask_sha256)

        def on_step(info: StepInfo) -> None:
            if job.snapshot_every and info.step % job.snapshot_every == 0 and info.step < info.total_steps:
                snapshots.append((info.step, png_bytes(info.image.clamp(0, 1))))
            if rungs is None:
                return
            history.append(StepLoss(info.step, info.scale, info.losses))
            steps = rungs.steps(info.total_steps)
            if info.step not in steps:
                return
            rung = steps.index(info.step)
            image = as_output(info.image, content, getattr(params, "preserve_color", False))
            values = measure(image)
            go_on, reason = rungs.ask(group, rung, job.job_id, values)
            reached.append({"rung": rung, "step": info.step, "evaluations": info.evaluations,
                            "values": values, "go_on": go_on, "reason": reason})  # fmt: skip
            if not go_on:
                raise StopAtRung(
                    f"stopped at step {info.step} of {info.total_steps} by early stopping ({reason})",
                    image,
                    info.evaluations,
                    values,
                )

        try:
            result = algorithm.stylize(
                content, styles, params, init_image=init_image, seed=job.seed or 0, device=device,
                callback=on_step, cache=self.targets, **({"regions": regions} if regions else {}),
            )  # fmt: skip
        except StopAtRung as stop:
            return JobOutcome(
                job_id=job.job_id,
                status="stopped",
                png=png_bytes(stop.image),
                plot_png=loss_curve_png(history, job.label),
                snapshots=snapshots,
                history=history,
                final_losses=dict(history[-1].losses),
                evaluations=stop.evaluations,
                quality=stop.values,
                device=str(device),
                note=stop.reason,
                rungs=reached,
            )
        check_loss_names(result.final_losses)
        measures = measure(result.image)
        return JobOutcome(
            job_id=job.job_id,
            status="ok",
            png=png_bytes(result.image),
            plot_png=loss_curve_png(result.history, job.label),
            snapshots=snapshots,
            history=result.history,
            final_losses=dict(result.final_losses),
            evaluations=result.evaluations,
            quality=measures,
            device=result.device,
            precision=result.precision,
            tiles=result.tiles,
            note=result.stopped_early,
            rungs=reached,
        )


def as_output(image: torch.Tensor, content: torch.Tensor, preserve_color: bool) -> torch.Tensor:
    """An image as it stands mid-optimisation made what the job would return: at the content's
    size (a coarse pyramid level is smaller), in [0, 1], in the content's colours when the
    optimisation runs on luminance only (``preserve_color``)."""
    from stylegrid.algorithms.shared.sizing import resize

    out = image.detach().float().cpu()
    if out.shape[-2:] != content.shape[-2:]:
        out = resize(out, tuple(content.shape[-2:]))
    out = out.clamp(0, 1)
    if preserve_color:
        from stylegrid.algorithms.shared.color import recombine_luminance

        out = recombine_luminance(out, content.cpu()).clamp(0, 1)
    return out

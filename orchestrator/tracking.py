"""MLflow: one experiment per spec, one parent run per sweep invocation, one child run per job.

Everything is logged from the driver through one ``MlflowWriter`` (used by the single writer
thread of ``sink.py``), with ``MlflowClient.log_batch``: concurrent jobs never write to the store
themselves, so a SQLite store is never hit by two writers ("database is locked").

The embedded default is ``sqlite:///<output>/mlflow.db`` with artifacts in ``<output>/mlartifacts``;
``mlflow ui --backend-store-uri sqlite:///<output>/mlflow.db`` opens it. On a cluster the spec's
``tracking_uri`` points at the MLflow server that cluster.yaml starts on the head node.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from algorithms import StepLoss

from .images import png_bytes
from .jobs import Job

MAX_BATCH_METRICS = 1000  # MLflow's log_batch limit
MAX_BATCH_PARAMS = 100


def default_tracking_uri(output: Path) -> str:
    return f"sqlite:///{output / 'mlflow.db'}"


def ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith(("sqlite:", "postgresql:", "mysql:", "file:")) or "://" not in tracking_uri:
        return f"mlflow ui --backend-store-uri {tracking_uri}"
    return f"open {tracking_uri} (the MLflow server)"


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


PLOT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip


def loss_curve_png(history: list[StepLoss], title: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """Every loss term against the step on a log scale, drawn with Pillow, as PNG bytes.

    Rendered by the worker, not by the driver's single writer (matplotlib took 0.15 s per plot
    here, which the driver then spent on every job; this takes a few milliseconds).
    """
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 60, 150, 24, 30
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 6), title[:80], fill="black")
    names = [
        n for n in (history[0].losses if history else {}) if any(s.losses.get(n, 0) > 0 for s in history)
    ]
    values = [v for s in history for n in names if (v := s.losses.get(n, 0)) > 0 and math.isfinite(v)]
    if not values:
        draw.text((left, h // 2), "no positive losses to plot", fill="black")
        return png_bytes(img)
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    last = max(s.step for s in history)
    first = min(s.step for s in history)

    def xy(step: int, value: float) -> tuple[float, float]:
        fx = (step - first) / max(1, last - first)
        fy = (math.log10(value) - lo) / (hi - lo)
        return left + fx * (w - left - right), h - bottom - fy * (h - top - bottom)

    draw.rectangle((left, top, w - right, h - bottom), outline="black")
    for decade in range(lo, hi + 1):
        _, y = xy(first, 10.0**decade)
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((4, y - 6), f"1e{decade}", fill="black")
    draw.text((left, h - bottom + 4), f"step {first}", fill="black")
    draw.text((w - right - 60, h - bottom + 4), f"step {last}", fill="black")
    for i, name in enumerate(names):
        colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
        points = [xy(s.step, v) for s in history if (v := s.losses.get(name, 0)) > 0 and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3 if name == "total" else 1)
        draw.text((w - right + 8, top + 14 * i), name, fill=colour)
    return png_bytes(img)


def experiment_id(client, name: str, artifact_root: Path | None) -> str:
    """The id of experiment ``name``, created (artifacts under ``artifact_root``) if missing."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = artifact_root.as_uri() if artifact_root is not None else None
    return client.create_experiment(name, artifact_location=location)


class MlflowWriter:
    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None):
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()  # after the import: mlflow sets its own logger's level when imported

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id(self.client, experiment, artifact_root)
        self.parent_run_id: str | None = None

    def start_sweep(
        self, sweep_id: str, spec_path: str, spec: dict[str, Any], n_jobs: int, n_todo: int
    ) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"sweep {sweep_id}",
            tags={"stylegrid.sweep_id": sweep_id, "stylegrid.spec": spec_path, "stylegrid.kind": "sweep"},
        )
        self.parent_run_id = run.info.run_id
        params = [
            Param("spec_path", spec_path),
            Param("jobs_total", str(n_jobs)),
            Param("jobs_to_run", str(n_todo)),
            Param("spec", json.dumps(spec)[:6000]),
        ]
        self.client.log_batch(self.parent_run_id, params=params)
        return self.parent_run_id

    def end_sweep(self, status: str, counts: dict[str, int]) -> None:
        from mlflow.entities import Metric

        if self.parent_run_id is None:
            return
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_run_id, metrics=[Metric(f"jobs_{k}", v, now, 0) for k, v in counts.items()]
        )
        self.client.set_terminated(self.parent_run_id, status=status)

    def log_job(self, job: Job, outcome: Any, image: Path | None, attempts: int) -> str:
        """One child run with the job's parameters, step metrics, image and loss curve."""
        from mlflow.entities import Metric, Param

        tags = {
            "stylegrid.job_id": job.job_id,
            "algorithm": job.algorithm,
            "content": Path(job.content).name,
            "style": Path(job.style).name,
            "status": outcome.status,
        }
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=job.label, tags=tags)
        run_id = run.info.run_id
        params = {
            **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in job.params.items()},
            "algorithm": job.algorithm,
            "seed": str(job.seed),
            "size": str(job.size),
            "style_size": str(job.style_size),
            "content": job.content,
            "style": job.style,
        }
        param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
        now = int(time.time() * 1000)
        metrics = [
            Metric(name, value, now, h.step) for h in outcome.history for name, value in h.losses.items()
        ]
        finals = {
            "content_distance": outcome.content_distance,
            "style_distance": outcome.style_distance,
            "wall_seconds": outcome.wall_seconds,
            "evaluations": float(outcome.evaluations),
            "attempts": float(attempts),
        }
        metrics += [Metric(k, float(v), now, 0) for k, v in finals.items() if v is not None]
        for i in range(0, len(param_list), MAX_BATCH_PARAMS):
            self.client.log_batch(run_id, params=param_list[i : i + MAX_BATCH_PARAMS])
        for i in range(0, len(metrics), MAX_BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i : i + MAX_BATCH_METRICS])
        if outcome.error:
            self.client.set_tag(run_id, "error", outcome.error[:5000])
        if image is not None:
            self.client.log_artifact(run_id, str(image))
        if outcome.plot_png:
            with tempfile.TemporaryDirectory() as tmp:
                plot = Path(tmp) / "loss_curve.png"
                plot.write_bytes(outcome.plot_png)
                self.client.log_artifact(run_id, str(plot))
        self.client.set_terminated(run_id, status="FINISHED" if outcome.status == "ok" else "FAILED")
        return run_id

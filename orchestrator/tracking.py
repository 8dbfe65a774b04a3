"""MLflow: one experiment per spec, one parent run per sweep invocation, one child run per job.

Everything is logged from the driver through one ``MlflowWriter`` (used by the single writer
thread of ``sweep.Sink``), with ``MlflowClient.log_batch``: concurrent jobs never write to the
store themselves, so a SQLite store is never hit by two writers ("database is locked").

Each child run carries the job's real start and end (measured in the worker), its parameters
(those that apply), step metrics, every quality measure, the output image through ``log_image``
(with the ``snapshot_every`` snapshots under the same key, by step) and a loss-curve plot; every
run is tagged with stylegrid's version and git commit (``provenance.py``), the host and the
device. The parent run carries the results table (``log_table``) and the HTML report.

The store: the spec's ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the embedded
``sqlite:///<output>/mlflow.db`` with artifacts in ``<output>/mlartifacts`` (``mlflow ui
--backend-store-uri sqlite:///<output>/mlflow.db`` opens it). Passwords in a URI are never
printed or logged (``redact_uri``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from algorithms import StepLoss

from .images import png_bytes
from .jobs import Job
from .provenance import provenance

MAX_BATCH_METRICS = 1000  # MLflow's log_batch limit
MAX_BATCH_PARAMS = 100


def default_tracking_uri(output: Path) -> str:
    return f"sqlite:///{output / 'mlflow.db'}"


def resolve_tracking_uri(spec_uri: str | None, output: Path) -> tuple[str, bool]:
    """(tracking URI, embedded): the spec's ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else
    the embedded SQLite store in the output folder (``embedded`` True: artifacts go beside it)."""
    if spec_uri:
        return spec_uri, False
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env, False
    return default_tracking_uri(output), True


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (``postgresql://user:***@host/db``): what
    stylegrid prints or logs of a tracking URI."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if not password:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def ui_command(tracking_uri: str) -> str:
    shown = redact_uri(tracking_uri)
    if tracking_uri.startswith(("sqlite:", "postgresql:", "mysql:", "file:")) or "://" not in tracking_uri:
        return f"mlflow ui --backend-store-uri {shown}"
    return f"open {shown} (the MLflow server)"


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
        fx = (step - first) / (last - first) if last > first else 0.5
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
        else:  # one step (a feed-forward pass): a marker per term, spread so that none hides another
            x, y = points[0]
            x += (i + 1) * (w - left - right) / (len(names) + 1) - (w - left - right) / 2
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
        draw.text((w - right + 8, top + 14 * i), name, fill=colour)
    return png_bytes(img)


EXPERIMENT_KIND = "custom_model_development"  # the MLflow UI's model-training view, not GenAI's


def experiment_id(client, name: str, artifact_root: Path | None) -> str:
    """The id of experiment ``name``, created (artifacts under ``artifact_root``) if missing, and
    tagged so that the MLflow 3 UI opens it as model development (an untagged experiment is
    shown as a GenAI one)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        location = artifact_root.as_uri() if artifact_root is not None else None
        return client.create_experiment(
            name, artifact_location=location, tags={"mlflow.experimentKind": EXPERIMENT_KIND}
        )
    if found.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND:
        client.set_experiment_tag(found.experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND)
    return found.experiment_id


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class MlflowWriter:
    """Parent and child runs of one sweep, written from the driver's single writer thread."""

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_root: Path | None, output: Path | None = None
    ):
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()  # after the import: mlflow sets its own logger's level when imported
        # MLflow prints "View run ... at: <URI>" per run to a server: two lines per job across the
        # progress bar, and the URI's password with them. The summary says where the runs are.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id(self.client, experiment, artifact_root)
        self.parent_run_id: str | None = None
        self.base_tags = provenance().tags()
        if output is not None:  # which results folder a run belongs to (see close_stale_runs)
            self.base_tags[OUTPUT_TAG] = str(output)
        self.output = output

    def close_stale_runs(self, recorded_jobs: set[str]) -> int:
        """Tidy what a killed sweep of this output folder left (call it holding the folder's
        lock, so no live sweep writes there): its RUNNING runs are closed as KILLED, and a job's
        finished child run whose row was never written is deleted (its job runs again and logs a
        new one), so each recorded job has exactly one finished run. Returns the runs changed."""
        if self.output is None:
            return 0
        from mlflow.entities import ViewType

        changed = 0
        page_token = None
        while True:
            runs = self.client.search_runs(
                [self.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                page_token=page_token,
            )  # fmt: skip
            for run in runs:
                tags = run.data.tags
                if tags.get(OUTPUT_TAG) != str(self.output):
                    continue
                if run.info.status == "RUNNING":
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                    changed += 1
                elif (
                    tags.get("stylegrid.kind") == "job"
                    and run.info.status == "FINISHED"
                    and tags.get("stylegrid.job_id") not in recorded_jobs
                ):
                    self.client.delete_run(run.info.run_id)
                    changed += 1
            page_token = runs.token
            if not page_token:
                return changed

    def start_sweep(self, sweep_id: str, spec_path: str, spec: dict[str, Any], counts: dict[str, int]) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"sweep {sweep_id}",
            tags={
                **self.base_tags,
                "stylegrid.sweep_id": sweep_id,
                "stylegrid.spec": spec_path,
                "stylegrid.kind": "sweep",
                "stylegrid.host": provenance().host,
                "mlflow.source.name": spec_path,
            },
        )
        self.parent_run_id = run.info.run_id
        shown = {
            **spec,
            "tracking_uri": redact_uri(spec["tracking_uri"]) if spec.get("tracking_uri") else None,
        }
        params = [Param("spec_path", spec_path), Param("spec", json.dumps(shown)[:6000])]
        params += [Param(k, str(v)) for k, v in counts.items()]
        self.client.log_batch(self.parent_run_id, params=params)
        return self.parent_run_id

    def end_sweep(
        self, status: str, counts: dict[str, int], table: Any = None, report: Path | None = None
    ) -> None:
        """Closes the parent run with the job counts, the results table (shown as a table by the
        MLflow UI) and the report folder."""
        from mlflow.entities import Metric

        if self.parent_run_id is None:
            return
        now = _ms(time.time())
        self.client.log_batch(
            self.parent_run_id, metrics=[Metric(f"jobs_{k}", v, now, 0) for k, v in counts.items()]
        )
        if table is not None and len(table):
            self.client.log_table(self.parent_run_id, data=table, artifact_file="results_table.json")
        if report is not None and report.is_dir():
            self.client.log_artifacts(self.parent_run_id, str(report), "report")
        self.client.set_terminated(self.parent_run_id, status=status)

    def log_job(self, job: Job, outcome: Any, image: Path | None, attempts: int) -> str:
        """One child run: the job's parameters, step metrics, quality measures, the image (and
        its snapshots) through ``log_image``, the loss curve, with the job's real start and end."""
        from mlflow.entities import Metric, Param

        started = outcome.started_at or time.time()
        finished = outcome.finished_at or time.time()
        tags = {
            **self.base_tags,
            "stylegrid.job_id": job.job_id,
            "stylegrid.kind": "job",
            "algorithm": job.algorithm,
            "variant": job.variant,
            "content": Path(job.content).name,
            "style": Path(job.style).name,
            "status": outcome.status,
            "stylegrid.host": outcome.host,
            "stylegrid.device": outcome.device,
        }
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(
            self.experiment_id, start_time=_ms(started), run_name=job.label, tags=tags
        )
        run_id = run.info.run_id
        params = {
            **{k: json.dumps(v) if not isinstance(v, str) else v for k, v in job.params.items()},
            "algorithm": job.algorithm,
            "size": str(job.size),
            "style_size": str(job.style_size),
            "content": job.content,
            "style": job.style,
        }
        if job.seed is not None:
            params["seed"] = str(job.seed)
        param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
        last = max((h.step for h in outcome.history), default=1)

        def at(step: int) -> int:  # steps spread over the job's duration
            return _ms(started + (finished - started) * step / last)

        metrics = [
            Metric(name, value, at(h.step), h.step)
            for h in outcome.history
            for name, value in h.losses.items()
        ]
        finals = {
            **outcome.quality,
            "wall_seconds": outcome.wall_seconds,
            "evaluations": float(outcome.evaluations),
            "attempts": float(attempts),
        }
        end = _ms(finished)
        metrics += [Metric(k, float(v), end, last) for k, v in finals.items() if v is not None]
        for i in range(0, len(param_list), MAX_BATCH_PARAMS):
            self.client.log_batch(run_id, params=param_list[i : i + MAX_BATCH_PARAMS])
        for i in range(0, len(metrics), MAX_BATCH_METRICS):
            self.client.log_batch(run_id, metrics=metrics[i : i + MAX_BATCH_METRICS])
        if outcome.error:
            self.client.set_tag(run_id, "error", outcome.error[:5000])
        self._log_images(run_id, outcome, image, last, at)
        if outcome.plot_png:
            with tempfile.TemporaryDirectory() as tmp:
                plot = Path(tmp) / "loss_curve.png"
                plot.write_bytes(outcome.plot_png)
                self.client.log_artifact(run_id, str(plot), "plots")
        self.client.set_terminated(
            run_id, status="FINISHED" if outcome.status == "ok" else "FAILED", end_time=end
        )
        return run_id

    def _log_images(self, run_id: str, outcome: Any, image: Path | None, last: int, at) -> None:
        """The snapshots and the output under one key, by step: the UI shows them with a slider."""
        from PIL import Image

        for step, png in outcome.snapshots:
            with Image.open(io.BytesIO(png)) as snap:
                self.client.log_image(
                    run_id, snap.convert("RGB"), key=IMAGE_KEY, step=step, timestamp=at(step)
                )
        if image is not None:
            with Image.open(image) as out:
                self.client.log_image(
                    run_id, out.convert("RGB"), key=IMAGE_KEY, step=last, timestamp=at(last)
                )


IMAGE_KEY = "stylized"
OUTPUT_TAG = "stylegrid.output"

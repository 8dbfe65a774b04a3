"""A sweep's MLflow runs: the parent run of each sweep, one child run per job (parameters, losses by
step, measures, images, tags), stale runs of an interrupted sweep closed, and the saved view the
runs page opens with (``SWEEP_VIEW``). Written by the sink's one thread (``sweep/sink.py``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stylegrid.algorithms.shared.metrics import MEASURES

from ..report.page import STANDALONE
from ..services import redact_uri
from ..tracking.tracker import Tracker, ms
from ..tracking.ui import RunsCharts, RunsView
from .jobs import Job
from .worker import JobOutcome

IMAGE_KEY = "stylized"  # the MLflow image key of a job's snapshots, by step, the output last
OUTPUT_KEY = "output"  # ... and of its output alone, at step 0: the image grid's one step for all jobs
OUTPUT_TAG = "stylegrid.output"  # the results folder a run belongs to


# The runs table a sweep's experiment opens on (the summary prints its URL): the jobs grouped by
# algorithm and variant (the "series" tag: "gatys style_weight=5"), each group a row of mean
# measures, the measures and seconds in view.
SWEEP_VIEW = RunsView(
    key="stylegrid-jobs",
    name="stylegrid: jobs by algorithm and variant",
    columns=(
        "attributes.`Dataset`", "tags.`status`",
        *(f"metrics.`{m.name}`" for m in MEASURES), "metrics.`wall_seconds`", "metrics.`evaluations`",
    ),
    group_by=(("tag", "series"),),
    search="tags.`stylegrid.kind` = 'job'",
    charts=RunsCharts(
        scatter=("content_distance", "style_distance"),
        parallel=(*(m.name for m in MEASURES), "wall_seconds"),
        once=(*(m.name for m in MEASURES), "wall_seconds", "evaluations", "attempts"),
        images=(OUTPUT_KEY,),
    ),
)  # fmt: skip


class SweepRuns:
    """A sweep's MLflow runs: one parent run per invocation, one child run per job, written from
    the single writer thread (concurrent jobs never write to the store themselves, so a SQLite
    store is never hit by two writers).

    Each child run carries the job's real start and end (measured in the worker), its parameters,
    step metrics, every quality measure, the output image through ``log_image`` (with the
    ``snapshot_every`` snapshots under the same key, by step) and the loss-curve plot; the parent
    run carries the job counts, the results table (``log_table``) and the HTML report. Every run is
    tagged with its output folder, which ``close_stale_runs`` uses after a killed sweep.
    """

    def __init__(self, tracker: Tracker, output: Path):
        self.tracker = tracker
        self.output = output
        self.tags = {OUTPUT_TAG: str(output)}
        self.parent_run_id: str | None = None

    def close_stale_runs(self, recorded_jobs: set[str]) -> tuple[int, int]:
        """Tidy what a killed sweep of this output folder left (call it holding the folder's
        lock, so no live sweep writes there): its RUNNING runs are closed as KILLED, and a job's
        finished child run whose row was never written is deleted (its job runs again and logs a
        new one), so each recorded job has exactly one finished run. Returns (runs closed, runs
        deleted)."""
        closed = deleted = 0
        for run in list(self.tracker.runs()):
            tags = run.data.tags
            if tags.get(OUTPUT_TAG) != str(self.output):
                continue
            if run.info.status == "RUNNING":
                self.tracker.end_run(run.info.run_id, "KILLED")
                closed += 1
            elif (
                tags.get("stylegrid.kind") == "job"
                and run.info.status == "FINISHED"
                and tags.get("stylegrid.job_id") not in recorded_jobs
            ):
                self.tracker.delete_run(run.info.run_id)
                deleted += 1
        return closed, deleted

    def start_sweep(
        self,
        sweep_id: str,
        spec_path: str,
        spec: dict[str, Any],
        counts: dict[str, int],
        jobs: Sequence[Job] = (),
    ) -> str:
        tags = {
            **self.tags,
            "stylegrid.sweep_id": sweep_id,
            "stylegrid.spec": spec_path,
            "stylegrid.kind": "sweep",
            "mlflow.source.name": spec_path,
        }
        self.parent_run_id = self.tracker.start_run(f"sweep {sweep_id}", tags)
        shown = {
            **spec,
            "tracking_uri": redact_uri(spec["tracking_uri"]) if spec.get("tracking_uri") else None,
        }
        self.tracker.log_params(
            self.parent_run_id, {"spec_path": spec_path, "spec": json.dumps(shown), **counts}
        )
        for context in ("content", "style"):  # the sweep's image sets, with their digests
            images = {Path(getattr(j, context)).name: getattr(j, f"{context}_sha256") for j in jobs}
            if images:
                self.tracker.log_images_as_datasets(self.parent_run_id, context, images)
        return self.parent_run_id

    def end_sweep(
        self, status: str, counts: dict[str, int], table: Any = None, report: Path | None = None
    ) -> None:
        """Closes the parent run with the job counts, the results table (shown as a table by the
        MLflow UI), the report folder and, at the top of the run's artifacts, the report in one
        self-contained file (``standalone.html``: the viewer shows a single file)."""
        run_id = self.parent_run_id
        if run_id is None:
            return
        self.tracker.log_metrics(run_id, {f"jobs_{k}": v for k, v in counts.items()})
        if table is not None and len(table):
            self.tracker.log_table(run_id, table, "results_table.json")
        if report is not None and report.is_dir():
            self.tracker.log_folder(run_id, report, "report")
            if (report / STANDALONE).is_file():  # MLflow's artifact viewer shows one file: this one
                self.tracker.log_file(run_id, report / STANDALONE)
        self.tracker.end_run(run_id, status)

    def log_job(self, job: Job, outcome: JobOutcome, image: Path | None, attempts: int) -> str:
        """One child run: the job's parameters, step metrics, quality measures, the image (and
        its snapshots), the loss curve, with the job's real start and end."""
        from mlflow.entities import Metric

        started = outcome.started_at or time.time()
        finished = outcome.finished_at or time.time()
        tags = {
            **self.tags,
            "stylegrid.job_id": job.job_id,
            "stylegrid.kind": "job",
            "algorithm": job.algorithm,
            "variant": job.variant,
            "series": f"{job.algorithm} {job.variant}".rstrip(),  # what the saved view groups by
            "content": Path(job.content).name,
            "style": Path(job.style).name,
            "status": outcome.status,
            "stylegrid.host": outcome.host,
            "stylegrid.device": outcome.device,
            **({"stylegrid.tiles": outcome.tiles} if outcome.tiles else {}),
            **({"regions": job.regions_name} if job.regions else {}),
        }
        run_id = self.tracker.start_run(job.label, tags, parent=self.parent_run_id, start_time=started)
        params = {
            **{
                k: json.dumps(v) if not isinstance(v, str) else v
                for k, v in job.params.items()
                if v is not None
            },
            "algorithm": job.algorithm,
            "size": job.size,
            "style_size": job.style_size,
            "content": job.content_ref,
            "style": job.style_ref,
            **({"regions": job.regions_record()} if job.regions else {}),
        }
        if job.seed is not None:
            params["seed"] = job.seed
        self.tracker.log_params(run_id, params)
        self.tracker.log_images_as_datasets(run_id, "content", {Path(job.content).name: job.content_sha256})
        self.tracker.log_images_as_datasets(run_id, "style", {Path(job.style).name: job.style_sha256})
        last = max((h.step for h in outcome.history), default=1)

        def at(step: int) -> float:  # steps spread over the job's duration
            return started + (finished - started) * step / last

        # a one-shot algorithm's losses (a network's single pass) at step 0: the UI compares
        # values logged at step 0 across runs as bars, not as one-point line charts
        one_shot = len(outcome.history) == 1
        metrics = [Metric(n, v, ms(at(h.step)), 0 if one_shot else h.step) for h in outcome.history
                   for n, v in h.losses.items()]  # fmt: skip
        self.tracker.log_history(run_id, metrics)
        finals = {
            **outcome.quality,
            "wall_seconds": outcome.wall_seconds,
            "evaluations": float(outcome.evaluations),
            "attempts": float(attempts),
        }
        # the measures at each rung reached (early stopping), then the final ones: one curve each
        for rung in (r for r in outcome.rungs if r["step"] < last):  # (a stopped job's last: below)
            self.tracker.log_metrics(run_id, rung["values"], step=rung["step"], timestamp=at(rung["step"]))
        self.tracker.log_metrics(run_id, finals, step=last, timestamp=finished)
        if outcome.error:
            self.tracker.set_tag(run_id, "error", outcome.error[:5000])
        self._log_images(run_id, outcome, image, last, at)
        if outcome.plot_png:
            self.tracker.log_bytes(run_id, "loss_curve.png", outcome.plot_png, "plots")
        if outcome.status == "stopped":
            self.tracker.set_tag(run_id, "stylegrid.stopped_at_step", str(last))
        status = "FAILED" if outcome.status == "failed" else "FINISHED"  # stopped: finished early, on purpose
        self.tracker.end_run(run_id, status, end_time=finished)
        return run_id

    def _log_images(self, run_id: str, outcome: JobOutcome, image: Path | None, last: int, at) -> None:
        """The output at step 0 under ``OUTPUT_KEY`` (the UI's image grid shows one step for every
        run, and jobs end at different steps); the snapshots, if any, under ``IMAGE_KEY`` by step,
        ending with the output: the UI shows them with a slider."""
        from PIL import Image

        for step, png in outcome.snapshots:
            with Image.open(io.BytesIO(png)) as snap:
                self.tracker.log_image(run_id, snap.convert("RGB"), IMAGE_KEY, step, at(step))
        if image is not None:
            with Image.open(image) as out:
                picture = out.convert("RGB")
            self.tracker.log_image(run_id, picture, OUTPUT_KEY, 0, at(last))
            if outcome.snapshots:
                self.tracker.log_image(run_id, picture, IMAGE_KEY, last, at(last))

"""Where a finished sweep job goes: one writer thread (``Sink``) turns each ``JobOutcome`` into
its image file, its MLflow child run (``SweepRuns``) and its Parquet row, in that order, so that a
row exists only for a job whose image and run were written. A failure to write one job is
counted as failed and that job runs again next time; it never stops the other jobs.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stylegrid.algorithms.base import group_sums
from stylegrid.algorithms.shared.metrics import MEASURES

from ..provenance import provenance
from ..results.rows import COMPACT_EVERY, compact, curve_path, write_row
from ..results.schema import param_cells, result_schema, rungs_record
from ..services import lost_server, server_problem
from ..storage.files import safe_name, write_atomic
from .jobs import Job
from .mirror import Mirror
from .runs import SweepRuns
from .worker import JobOutcome


def image_path(output: Path, job: Job) -> Path:
    """Where a job's image goes, named for what it is:
    ``images/<algorithm>/<content>__<style>__<param>-<value>...__<id8>.png`` (the parameters
    that vary between the spec's jobs of that algorithm), always inside ``output``."""
    parts = [
        safe_name(Path(job.content).stem),
        safe_name(Path(job.style).stem),
        *(safe_name(f"{k}-{v}", keep_dots=True) for k, v in job.variant_items()),
        job.job_id[:8],
    ]
    return output / "images" / safe_name(job.algorithm) / ("__".join(parts) + ".png")


def result_row(
    job: Job, outcome: JobOutcome, sweep_id: str, spec_name: str, image: str, run_id: str, attempts: int,
    experiment_id: str = "",
):  # fmt: skip
    losses = outcome.final_losses
    loss_content, loss_style = group_sums(losses)
    row = {
        "job_id": job.job_id,
        "sweep_id": sweep_id,
        "spec_name": spec_name,
        "status": outcome.status,
        "error": outcome.error or outcome.note,
        "algorithm": job.algorithm,
        "variant": job.variant,
        "content": job.content_ref,
        "style": job.style_ref,
        "content_name": Path(job.content).name,
        "style_name": Path(job.style).name,
        "content_sha256": job.content_sha256,
        "style_sha256": job.style_sha256,
        "regions": job.regions_record(),
        "seed": job.seed,
        "size": job.size,
        "steps": job.params.get("steps"),
        "evaluations": outcome.evaluations,
        "rungs": rungs_record(outcome.rungs),
        "loss_total": losses.get("total"),
        "loss_content": loss_content,
        "loss_style": loss_style,
        "losses_json": json.dumps(losses),
        **{m.name: outcome.quality.get(m.name) for m in MEASURES},
        "wall_seconds": outcome.wall_seconds,
        "started_at": datetime.fromtimestamp(outcome.started_at, UTC) if outcome.started_at else None,
        "host": outcome.host,
        "device": outcome.device,
        "precision": outcome.precision,
        "tiles": outcome.tiles,
        "output_image": image,
        "mlflow_run_id": run_id,
        "mlflow_experiment_id": experiment_id,
        "attempts": attempts,
        "finished_at": datetime.now(UTC),
        "code_version": provenance().code_version,
        "params_json": json.dumps(job.params, sort_keys=True),
    }
    row.update(param_cells(job.params, result_schema()))
    return row


@dataclass
class Sink:
    """The single writer: a thread that turns finished outcomes into files, runs and rows."""

    output: Path
    sweep_id: str
    spec_name: str
    mlflow: SweepRuns | None
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "stopped": 0})
    warnings: list[str] = field(default_factory=list)
    mirror: Mirror | None = None  # an object store the output folder is kept in (mirror.py)

    def __post_init__(self) -> None:
        self.loose = 0  # rows written since the last compact
        self.lost: str | None = None  # set when the tracking server went away mid-sweep
        self.reasons: set[str] = set()  # why jobs were not recorded (each said once)
        self.repeats: dict[str, int] = {}  # and how many more jobs each reason failed
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="stylegrid-writer", daemon=True)
        self.thread.start()

    def put(self, job: Job, outcome: JobOutcome, attempts: int) -> None:
        self.queue.put((job, outcome, attempts))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            job, outcome, attempts = item
            try:
                self.write(job, outcome, attempts)
            except Exception as exc:  # a writer failure must not lose the other jobs
                self.counts["failed"] += 1  # not recorded: it runs again next time
                self._not_recorded(job, exc)
        for reason, count in self.repeats.items():
            self.warnings.append(
                f"{count} more jobs not recorded for the same reason ({reason}); they run again"
            )

    def _not_recorded(self, job: Job, exc: Exception) -> None:
        """One warning per reason: a full disk fails every job the same way, which is one line,
        not one per job (the first job's names the file)."""
        reason = str(exc).rsplit(": ", 1)[-1]
        if reason in self.reasons:
            self.repeats[reason] = self.repeats.get(reason, 0) + 1
            return
        self.reasons.add(reason)
        self.warnings.append(f"{job.label}: not recorded ({exc}); it runs again next time")

    def write(self, job: Job, outcome: JobOutcome, attempts: int) -> None:
        image_rel = ""
        image = None
        if outcome.png is not None:
            image = write_atomic(image_path(self.output, job), outcome.png)
            image_rel = str(image.relative_to(self.output))
        curve = None
        if outcome.plot_png and len(outcome.history) > 1:  # a one-step (feed-forward) job has no curve
            curve = write_atomic(curve_path(self.output, job.job_id), outcome.plot_png)
        run_id = experiment = ""
        if self.mlflow is not None:  # a job whose run was not logged is not recorded: it runs again
            if self.lost:
                raise RuntimeError("the MLflow tracking server is lost")
            try:
                run_id = self.mlflow.log_job(job, outcome, image, attempts)
                experiment = self.mlflow.tracker.experiment_id
            except Exception as exc:
                problem = server_problem(self.mlflow.tracker.tracking_uri)
                if problem:  # the server itself is gone: the sweep stops (the scheduler checks `lost`)
                    self.lost = lost_server(self.mlflow.tracker.tracking_uri, problem)
                raise RuntimeError(f"MLflow logging failed ({type(exc).__name__}: {exc})") from exc
        row = write_row(
            self.output,
            result_row(job, outcome, self.sweep_id, self.spec_name, image_rel, run_id, attempts, experiment),
        )
        if self.mirror is not None:  # (a sink of tests and benchmarks may have none)
            self._upload(job, [p for p in (image, curve, row) if p is not None])
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        self.loose += 1
        if self.loose >= COMPACT_EVERY:
            self.loose = 0
            try:
                compact(self.output)
                if self.mirror is not None:
                    self.mirror.sync_rows()
            except OSError as exc:  # the loose rows stay where they are; the next compact gathers them
                self.warnings.append(f"{self.output}: rows not gathered into a part yet ({exc})")

    def _upload(self, job: Job, files: list[Path]) -> None:
        """The job's image and row to the store; a failure is a warning (the row is recorded in
        the local copy, and the end of the sweep, or the next run, uploads it)."""
        try:
            for f in files:
                self.mirror.push(f)
        except OSError as exc:
            self.warnings.append(f"{job.label}: not uploaded to {self.mirror.uri} yet ({exc})")

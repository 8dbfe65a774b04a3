"""Running a sweep: spec -> jobs -> Ray actors -> (one writer) images, MLflow runs, Parquet rows.

Ray Core actors, not Ray Tune: measured here, Tune's MLflow callback cost 1.1 s per trivial trial,
logged flat runs without images (from the driver only), and a restored Tune run cannot grow its
search space, while a stylegrid spec that gains an image must run just the new jobs.

* ``ray.init()`` starts an embedded Ray locally, and joins the cluster under ``ray job submit``.
* One actor per concurrent job slot, each a ``JobRunner`` that keeps the encoder, images and style
  targets warm across its jobs, with the spec's ``num_cpus`` / ``num_gpus``.
* An exception inside a job comes back as a failed outcome (recorded with its error); a worker
  process that dies is replaced and its job retried up to ``retries`` times.
* Results flow to one writer thread (``Sink``): image file, MLflow child run, then the job's
  Parquet row, in that order, as each job finishes. Ctrl-C stops the workers, lets the writer
  finish what had finished, and leaves every written row in place.
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from algorithms.base import group_sums
from algorithms.metrics import MEASURES

from .files import WriteError, remove_partial_files, safe_name, write_atomic
from .jobs import Expansion, Job, plan_jobs
from .lock import arm_sigterm, folder_lock, sigterm_as_interrupt
from .provenance import provenance
from .report import write_report
from .results import (
    collect,
    finished_status,
    load_rows,
    param_cells,
    read_results,
    result_schema,
    rows_dir,
    status_by_job,
    write_row,
)  # fmt: skip
from .spec import SweepSpec, load_spec, output_dir
from .tracking import MlflowWriter, resolve_tracking_uri, ui_command
from .worker import JobOutcome, JobRunner


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
    job: Job, outcome: JobOutcome, sweep_id: str, spec_name: str, image: str, run_id: str, attempts: int
):
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
        "content": job.content,
        "style": job.style,
        "content_name": Path(job.content).name,
        "style_name": Path(job.style).name,
        "content_sha256": job.content_sha256,
        "style_sha256": job.style_sha256,
        "seed": job.seed,
        "size": job.size,
        "steps": job.params.get("steps"),
        "evaluations": outcome.evaluations,
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
        "output_image": image,
        "mlflow_run_id": run_id,
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
    mlflow: MlflowWriter | None
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0})
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
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
                self.warnings.append(f"{job.label}: not recorded ({exc}); it runs again next time")

    def write(self, job: Job, outcome: JobOutcome, attempts: int) -> None:
        image_rel = ""
        image = None
        if outcome.png is not None:
            image = write_atomic(image_path(self.output, job), outcome.png)
            image_rel = str(image.relative_to(self.output))
        run_id = ""
        if self.mlflow is not None:
            try:
                run_id = self.mlflow.log_job(job, outcome, image, attempts)
            except Exception as exc:
                self.warnings.append(f"{job.label}: MLflow logging failed ({type(exc).__name__}: {exc})")
        write_row(
            self.output, result_row(job, outcome, self.sweep_id, self.spec_name, image_rel, run_id, attempts)
        )
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1


@dataclass
class SweepSummary:
    output: Path
    total: int
    skipped: int
    ok: int
    failed: int
    interrupted: bool
    tracking_uri: str
    warnings: list[str]
    report: Path | None = None
    folded_seeds: int = 0


# the results table logged to the parent MLflow run (the UI shows it as a table)
MLFLOW_TABLE_COLUMNS = [
    "job_id", "status", "algorithm", "variant", "content_name", "style_name", "seed",
    *[m.name for m in MEASURES], "loss_content", "loss_style", "wall_seconds", "output_image",
    "mlflow_run_id", "error",
]  # fmt: skip


def worker_slots(spec: SweepSpec, n_jobs: int, override: int | None, resources: dict[str, float]) -> int:
    """How many jobs run at once: the spec's (or --max-concurrent) limit, else what fits."""
    fits = math.floor(resources.get("CPU", 1) / spec.resources.num_cpus + 1e-9)
    if spec.resources.num_gpus > 0:
        fits = min(fits, math.floor(resources.get("GPU", 0) / spec.resources.num_gpus + 1e-9))
    limit = override or spec.max_concurrent or max(1, fits)
    return max(1, min(limit, n_jobs))


def run_sweep(
    spec_path: str,
    *,
    output: str | None = None,
    max_concurrent: int | None = None,
    quiet: bool = False,
    ray_init_kwargs: dict[str, Any] | None = None,
) -> SweepSummary:
    spec = load_spec(spec_path)
    expansion = plan_jobs(spec, spec_path)
    out = output_dir(spec, spec_path, output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(out, exc) from None
    with folder_lock(out, f"stylegrid sweep {spec.name}"), sigterm_as_interrupt():
        return _run_locked(spec, spec_path, expansion, out, max_concurrent, quiet, ray_init_kwargs or {})


def _run_locked(spec, spec_path, expansion, out, max_concurrent, quiet, ray_init_kwargs) -> SweepSummary:
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    jobs = expansion.jobs
    remove_partial_files(out, [out / "images", rows_dir(out), out / "report"])
    rows = load_rows(out)
    warnings = [f"{u}; its job runs again" for u in rows.unreadable]
    done = status_by_job(rows.table)
    todo = [j for j in jobs if done.get(j.job_id) != "ok"]
    tracking_uri, embedded = resolve_tracking_uri(spec.tracking_uri, out)
    mlflow = MlflowWriter(tracking_uri, spec.name, out / "mlartifacts" if embedded else None, out)
    closed = mlflow.close_stale_runs({j for j, st in done.items() if st == "ok"})
    if closed:
        warnings.append(f"{closed} MLflow run(s) of an earlier, killed sweep of {out} closed as KILLED")
    sweep_id = uuid.uuid4().hex[:12]
    counts = {
        "jobs_total": len(jobs),
        "jobs_to_run": len(todo),
        "seed_duplicates_folded": expansion.folded_seeds,
    }
    mlflow.start_sweep(sweep_id, str(spec_path), spec.model_dump(), counts)
    sink = Sink(out, sweep_id, spec.name, mlflow, warnings=warnings)
    log(f"sweep {spec.name} ({sweep_id}): {describe_counts(expansion, len(jobs) - len(todo))}")
    interrupted = False
    report = None
    try:
        if todo:
            _schedule(spec, todo, sink, max_concurrent, quiet, ray_init_kwargs)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the workers; finished jobs are kept")
    finally:
        # Each step on its own: a full disk or a lost tracking server at the end must neither hide
        # the summary nor leave the parent run RUNNING.
        try:
            sink.close()
        except KeyboardInterrupt:
            interrupted = True
            sink.close()
        frame = None
        try:
            table = read_results(out)
            collect(out)
            frame = table.select(MLFLOW_TABLE_COLUMNS).to_pandas()
            frame = frame.astype({c: object for c in frame.select_dtypes(include=["string", "str"]).columns})
            report = write_report(out, {j.job_id for j in jobs}).path
        except Exception as exc:  # the rows are written; the summary files can be made again
            sink.warnings.append(
                f"results.parquet or the report could not be written ({type(exc).__name__}: {exc}); "
                f"the rows are in {rows_dir(out)} (stylegrid report {out} makes the report again)"
            )
        try:
            mlflow.end_sweep(
                "KILLED" if interrupted else "FINISHED", sink.counts, frame, report and report.parent
            )
        except Exception as exc:
            sink.warnings.append(f"MLflow: the sweep's run could not be closed ({type(exc).__name__}: {exc})")
    return SweepSummary(
        out, len(jobs), len(jobs) - len(todo), sink.counts["ok"], sink.counts["failed"], interrupted,
        tracking_uri, sink.warnings, report, expansion.folded_seeds,
    )  # fmt: skip


def describe_counts(expansion: Expansion, done: int) -> str:
    """``30 jobs (168 seed duplicates folded), 4 already done, 26 to run``."""
    folded = []
    if expansion.folded_seeds:
        folded.append(
            f"{expansion.folded_seeds} seed duplicates folded: the seed only matters with init=noise"
        )
    if expansion.folded_duplicates:
        folded.append(f"{expansion.folded_duplicates} identical jobs folded")
    jobs = len(expansion.jobs)
    note = f" ({'; '.join(folded)})" if folded else ""
    return f"{jobs} jobs{note}, {done} already done, {jobs - done} to run"


def _schedule(
    spec: SweepSpec, todo: list[Job], sink: Sink, max_concurrent: int | None, quiet: bool, init_kwargs: dict
) -> None:
    import ray
    from ray.exceptions import RayActorError
    from tqdm import tqdm

    if not ray.is_initialized():
        ray.init(**{"logging_level": "WARNING", "include_dashboard": False, **init_kwargs})
        arm_sigterm()  # Ray's core replaced the SIGTERM handler
    slots = worker_slots(spec, len(todo), max_concurrent, ray.cluster_resources())
    threads = max(1, math.ceil(spec.resources.num_cpus))
    actor_cls = ray.remote(JobRunner).options(
        num_cpus=spec.resources.num_cpus, num_gpus=spec.resources.num_gpus, max_restarts=0, max_task_retries=0
    )

    def new_actor():
        return actor_cls.remote(threads)

    # Each image file goes into the object store once; workers on any node read it from there.
    refs: dict[str, Any] = {}
    for job in todo:
        for path, sha in ((job.content, job.content_sha256), (job.style, job.style_sha256)):
            if sha not in refs:
                refs[sha] = ray.put(Path(path).read_bytes())
    idle = deque(new_actor() for _ in range(slots))
    queue_ = deque(todo)
    attempts: dict[str, int] = {}
    pending: dict[Any, tuple[Job, Any]] = {}
    started: dict[Any, float] = {}  # when each pending job was handed to its worker
    bar = tqdm(
        total=len(todo), unit="job", disable=quiet, file=sys.stderr, dynamic_ncols=True, mininterval=1.0
    )
    shown: tuple = ()
    try:
        while queue_ or pending:
            while queue_ and idle:
                job, actor = queue_.popleft(), idle.popleft()
                attempts[job.job_id] = attempts.get(job.job_id, 0) + 1
                ref = actor.run.remote(job, refs[job.content_sha256], refs[job.style_sha256])
                pending[ref] = (job, actor)
                started[ref] = time.monotonic()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            finished: list[tuple[Any, str | None]] = [(ref, None) for ref in ready]
            if spec.timeout_s is not None:
                now = time.monotonic()
                finished += [
                    (ref, f"timed out after {spec.timeout_s:g} s")
                    for ref in pending
                    if ref not in ready and now - started[ref] > spec.timeout_s
                ]
            for ref, timed_out in finished:
                job, actor = pending.pop(ref)
                started.pop(ref)
                try:
                    if timed_out:
                        raise TimeoutError(timed_out)
                    outcome = ray.get(ref)
                    idle.append(actor)
                except (RayActorError, TimeoutError) as exc:  # the worker died or hung: replace it
                    ray.kill(actor)
                    idle.append(new_actor())
                    if attempts[job.job_id] <= spec.retries:
                        queue_.appendleft(job)
                        continue
                    n = attempts[job.job_id]
                    error = (
                        f"{timed_out} ({n} attempt{'s' if n > 1 else ''})"
                        if timed_out
                        else f"worker process died {n} times: {exc}"
                    )
                    outcome = JobOutcome(job.job_id, "failed", error=error)
                sink.put(job, outcome, attempts[job.job_id])
                bar.update(1)
            state = (sink.counts["ok"], sink.counts["failed"], len(pending))
            if state != shown:  # done / failed / running; the bar itself gives the ETA
                shown = state
                bar.set_postfix(done=state[0], failed=state[1], running=state[2])
    finally:
        bar.close()
        for _, actor in pending.values():
            ray.kill(actor)
        for actor in idle:
            ray.kill(actor)


def print_summary(summary: SweepSummary) -> None:
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (already done) "
        f"of {summary.total} jobs{' (interrupted)' if summary.interrupted else ''}"
    )
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"results: {summary.output / 'results.parquet'} (stylegrid results {summary.output})")
    print(f"images:  {summary.output / 'images'}")
    print(f"MLflow:  {ui_command(summary.tracking_uri)}")
    if summary.report is not None:
        print(f"report:  {summary.report}")


def plan(spec_path: str, output: str | None = None, sample: int = 10) -> str:
    """The number of jobs and a sample of them, without running anything."""
    spec = load_spec(spec_path)
    expansion = plan_jobs(spec, spec_path)
    jobs = expansion.jobs
    out = output_dir(spec, spec_path, output)
    done = finished_status(out) if out.exists() else {}
    ok = sum(1 for j in jobs if done.get(j.job_id) == "ok")
    lines = [f"{spec_path}: {describe_counts(expansion, ok)} -> {out}"]
    by_algo: dict[str, int] = {}
    for j in jobs:
        by_algo[j.algorithm] = by_algo.get(j.algorithm, 0) + 1
    lines.append("  " + ", ".join(f"{k}: {v}" for k, v in by_algo.items()))
    for j in jobs[:sample]:
        lines.append(f"  {j.job_id}  {j.label}")
    if len(jobs) > sample:
        lines.append(f"  ... and {len(jobs) - sample} more")
    return "\n".join(lines)

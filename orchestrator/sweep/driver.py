"""Running a sweep: spec -> jobs -> Ray actors -> (one writer) images, MLflow runs, Parquet rows.

Ray Core actors, not Ray Tune: Tune with its MLflow callback costs several times stylegrid's
overhead per trivial trial (``benchmarks/sweep_overhead.py`` runs both side by side), and a
restored Tune run cannot grow its search space (a spec that gains an image runs just the new jobs).
* One actor per concurrent job slot, each a ``JobRunner`` that keeps the encoder, images and style
  targets warm across its jobs, with the spec's ``num_cpus`` / ``num_gpus``. A job goes only to
  an actor that has started (on a busy cluster a slot may wait long for its resources), and once
  no job is left to hand out, idle and still-starting actors are released to the cluster.
* An exception inside a job comes back as a failed outcome (recorded with its error); a worker
  process that dies is replaced and its job retried up to ``retries`` times.
* Results flow to one writer thread (``sink.Sink``): image file, MLflow child run, then the job's
  Parquet row, in that order, as each job finishes. Ctrl-C stops the workers, lets the writer
  finish what had finished, and leaves every written row in place.

The scheduler itself is ``schedule.py``; this module is the start and the end of a sweep around
it (the lock, the plan, the MLflow parent run, the summary, the report).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylegrid.algorithms.shared.metrics import MEASURES

from ..errors import UserError
from ..report.html import write_report
from ..results.rows import (
    collect,
    compact,
    curves_dir,
    finished_status,
    load_rows,
    read_results,
    rows_dir,
    set_aside,
    status_by_job,
    write_current_jobs,
)
from ..results.schema import parse_rungs
from ..runtime import Console, Summary
from ..services import ClusterLost, ServiceUnavailable
from ..specs.loading import SpecError, output_location
from ..specs.sweep import SweepSpec, load_spec
from ..storage import locations as storage
from ..storage.files import WriteError
from ..storage.lock import claim_output, sigterm_as_interrupt
from ..tracking.model_uris import model_uris, resolve_locations
from ..tracking.tracker import tracking_store
from ..tracking.ui import ui_base, ui_command
from .halving import group_of
from .jobs import Job
from .mirror import Mirror, rows_here
from .plan import Expansion, plan_jobs
from .runs import SWEEP_VIEW, SweepRuns
from .schedule import schedule
from .sink import Sink


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
    published: str | None = None  # the object-store URI the local output folder is kept in
    experiment_id: str | None = None  # the MLflow experiment
    lost: bool = False  # stopped because the tracking server or the Ray cluster went away (exit status 1)
    cluster_lost: bool = False  # the Ray cluster went away: Ray's own teardown would wait for it
    stopped: int = 0  # jobs early stopping ended at a rung (not failures: the exit status is 0)

    def summary(self) -> Summary:
        if self.published:
            where = self.published
            places = [
                ("results", f"{storage.join(where, 'results.parquet')} (pandas.read_parquet)"),
                ("images", storage.join(where, "images")),
                ("MLflow", ui_command(self.tracking_uri, self.experiment_id, SWEEP_VIEW.key)),
                ("local copy", str(self.output)),
            ]
        else:
            gathered = f"{self.output / 'results.parquet'} (stylegrid results {self.output})"
            rows = f"not gathered (a warning says why): {self.output}/rows"
            places = [
                ("results", gathered if self.report else rows),
                ("images", str(self.output / "images")),
                ("MLflow", ui_command(self.tracking_uri, self.experiment_id, SWEEP_VIEW.key)),
            ]
        if self.report is not None:
            report = (
                storage.join(self.published, "report", "index.html") if self.published else str(self.report)
            )
            places.append(("report", report))
        stopped = f"{self.stopped} stopped early, " if self.stopped else ""
        headline = (
            f"{self.ok} ok, {stopped}{self.failed} failed, {self.skipped} skipped (already done) of {self.total} jobs"
            f"{' (interrupted)' if self.interrupted else ''}"
        )
        return Summary(headline, places, self.warnings, self.interrupted)


# the results table logged to the parent MLflow run (the UI shows it as a table)
MLFLOW_TABLE_COLUMNS = [
    "job_id", "status", "algorithm", "variant", "content_name", "style_name", "seed",
    *[m.name for m in MEASURES], "loss_content", "loss_style", "wall_seconds", "output_image",
    "mlflow_run_id", "error",
]  # fmt: skip


def run_sweep(
    spec_path: str,
    *,
    output: str | None = None,
    max_concurrent: int | None = None,
    quiet: bool = False,
    ray_init_kwargs: dict[str, Any] | None = None,
    settings: Sequence[str] = (),
) -> SweepSummary:
    """Run the spec's jobs not yet done (``settings``: the command line's ``--set NAME=VALUE``)."""
    spec = load_spec(spec_path, settings)
    expansion = plan_jobs(spec, spec_path)
    target = output_location(spec, spec_path, output)
    try:
        tracking_store(spec.tracking_uri, target)  # refused before anything is read or written
    except UserError as exc:
        raise SpecError(f"{spec_path}: {exc}") from None
    mirror = Mirror.of(target)  # for an object store's output, a local copy kept up to date
    out = mirror.local
    # every folder a sweep writes through write_atomic (a killed driver leaves its temporary files)
    partial = ("images", rows_dir(out).name, "report", curves_dir(out).name)
    with claim_output(out, f"stylegrid sweep {spec.name}", partial), sigterm_as_interrupt():
        try:
            mirror.pull_rows()
            mirror.pull_missing("report/thumbs")
        except OSError as exc:
            raise WriteError(target, exc) from None
        return _run_locked(
            SweepRun(spec, spec_path, expansion, out, max_concurrent, quiet, ray_init_kwargs or {}, mirror)
        )


@dataclass(frozen=True)
class SweepRun:
    """What one sweep works with, decided before it takes its folder's lock."""

    spec: SweepSpec
    spec_path: str
    expansion: Expansion  # the spec's jobs
    out: Path  # the results folder (a working copy when the output is in an object store)
    max_concurrent: int | None  # the command line's, else the spec's
    quiet: bool
    ray_init_kwargs: dict[str, Any]
    mirror: Mirror  # the object store the folder is kept in, if any


def _run_locked(run: SweepRun) -> SweepSummary:
    spec, spec_path, expansion, out, mirror = run.spec, run.spec_path, run.expansion, run.out, run.mirror
    max_concurrent, quiet, ray_init_kwargs = run.max_concurrent, run.quiet, run.ray_init_kwargs
    console = Console(quiet)
    jobs = expansion.jobs
    rows_dir(out).mkdir(exist_ok=True)  # a sweep that records no job still has its (empty) table
    current = write_current_jobs(out, str(spec_path), (j.job_id for j in jobs))  # the rest is history
    mirror.push(current)
    warnings = []
    try:
        compact(out)  # what a killed run left loose: the next start reads a few parts
        mirror.sync_rows()
    except OSError as exc:
        warnings.append(f"{rows_dir(out)}: rows not gathered into a part ({exc})")
    rows = load_rows(out)
    moved = set_aside(out, rows.unreadable_files)  # kept for a look, never read again
    warnings += [f"{u}; set aside as {m}; it runs again" for u, m in zip(rows.unreadable, moved, strict=True)]
    done = status_by_job(rows.table)
    todo = [j for j in jobs if done.get(j.job_id) not in FINISHED]
    store = tracking_store(spec.tracking_uri, out)  # the working copy holds an embedded store
    try:  # model=models:/<name>/<version>: found once here, where the tracking store is reachable
        locations = resolve_locations(model_uris(j.params for j in todo), store.uri)
    except ValueError as exc:
        raise SpecError(f"{spec_path}: {exc}") from None
    mlflow = SweepRuns(store.tracker(spec.name, view=SWEEP_VIEW), mirror.uri)
    closed, deleted = mlflow.close_stale_runs({j for j, st in done.items() if st in FINISHED})
    if closed:
        warnings.append(f"{closed} MLflow run(s) left RUNNING by a stopped sweep of {out} closed as KILLED")
    if deleted:
        warnings.append(f"{deleted} MLflow job run(s) of {out} with no recorded row deleted; they run again")
    sweep_id = uuid.uuid4().hex[:12]
    counts = {
        "jobs_total": len(jobs),
        "jobs_to_run": len(todo),
        "seed_duplicates_folded": expansion.folded_seeds,
    }
    mlflow.start_sweep(sweep_id, str(spec_path), spec.model_dump(), counts, jobs)
    sink = Sink(out, sweep_id, spec.name, mlflow, warnings=warnings, mirror=mirror)
    console.say(f"sweep {spec.name} ({sweep_id}): {describe_counts(expansion, len(jobs) - len(todo))}")
    if spec.early_stopping is not None and todo:
        console.say(describe_stopping(spec.early_stopping))
    interrupted = lost = False
    cluster_lost: str | None = None
    report = None
    try:
        if todo:
            seeds = rung_records(rows.table, jobs)
            schedule(spec, todo, sink, max_concurrent, console, ray_init_kwargs, locations, seeds)
    except KeyboardInterrupt:
        interrupted = True
        console.say("interrupted: stopping the workers; finished jobs are kept")
    except ClusterLost as exc:  # the Ray cluster went away: what finished is kept, as for Ctrl-C
        cluster_lost = str(exc)
    except ServiceUnavailable:  # the tracking server was lost (sink.lost says so, below)
        if not sink.lost:
            raise
    finally:
        # Each step on its own: a full disk or a lost tracking server at the end must neither hide
        # the summary nor leave the parent run RUNNING.
        try:
            sink.close()
        except KeyboardInterrupt:
            interrupted = True
            sink.close()
        if sink.lost:  # (also when it was found after the last job was handed out)
            interrupted = lost = True
            sink.warnings.insert(0, sink.lost)
        elif cluster_lost:
            interrupted = lost = True
            sink.warnings.insert(0, cluster_lost)
        frame = None
        try:
            table = read_results(out)
            collect(out)
            frame = table.select(MLFLOW_TABLE_COLUMNS).to_pandas()
            frame = frame.astype({c: object for c in frame.select_dtypes(include=["string", "str"]).columns})
            report = write_report(out, {j.job_id for j in jobs}, ui=ui_base(store.uri)).path
        except Exception as exc:  # the rows are written; the summary files can be made again
            sink.warnings.append(
                f"results.parquet or the report could not be written ({type(exc).__name__}: {exc}); "
                f"the rows are in {rows_dir(out)} (stylegrid report {out} makes the report again)"
            )
        try:
            mirror.sync_rows()
            mirror.push_missing("images")
            mirror.push_tree("results.parquet", "report")
        except OSError as exc:
            sink.warnings.append(
                f"{mirror.uri}: not every file uploaded ({exc}); running the same command again uploads them"
            )
        try:
            if not sink.lost:  # (a lost server's run is closed as KILLED by the next run of the spec)
                mlflow.end_sweep(
                    "KILLED" if interrupted else "FINISHED", sink.counts, frame, report and report.parent
                )
        except Exception as exc:
            sink.warnings.append(f"MLflow: the sweep's run could not be closed ({type(exc).__name__}: {exc})")
    return SweepSummary(
        out, len(jobs), len(jobs) - len(todo), sink.counts["ok"], sink.counts["failed"], interrupted,
        store.uri, sink.warnings, report, expansion.folded_seeds, mirror.uri if mirror.mirrored else None,
        mlflow.tracker.experiment_id, lost, cluster_lost is not None, sink.counts["stopped"],
    )  # fmt: skip


FINISHED = ("ok", "stopped")  # a job with a row of either status is done: a new run skips it


def rung_records(table, jobs: Sequence[Job]) -> list[tuple[str, str, list[dict]]]:
    """(group, job id, rungs) of the rows of the spec's jobs that reached a rung: what a resumed
    sweep's board starts from, so that it decides as if the sweep had never stopped."""
    if table is None or "rungs" not in table.column_names:
        return []
    by_id = {j.job_id: j for j in jobs}
    out = []
    for job_id, cell in zip(
        table.column("job_id").to_pylist(), table.column("rungs").to_pylist(), strict=True
    ):
        job, rungs = by_id.get(job_id), parse_rungs(cell)
        if job is not None and rungs:
            out.append(
                (group_of(job.content_sha256, job.style_sha256, job.size, job.mask_sha256), job_id, rungs)
            )
    return out


def describe_stopping(stopping) -> str:
    """``early stopping: style_distance at 10 %, 30 % of each job's steps; ...``."""
    at = ", ".join(f"{f:.0%}" for f in stopping.rungs).replace("%", " %")
    how = "by Pareto rank of " if len(stopping.measures) > 1 else ""
    return (
        f"early stopping: {how}{' and '.join(stopping.measures)} at {at} of each job's steps; the best "
        f"1/{stopping.reduction_factor:g} of each picture's jobs go on (once a rung has "
        f"{stopping.min_results} results)"
    )


def describe_counts(expansion: Expansion, done: int) -> str:
    """``30 jobs (168 seed duplicates folded), 4 already done, 26 to run``."""
    folded = []
    if expansion.folded_seeds:
        folded.append(
            f"{expansion.folded_seeds} seed duplicates folded: the seed only matters with init=noise"
        )
    if expansion.folded_duplicates:
        folded.append(f"{expansion.folded_duplicates} identical jobs folded")
    regional = sum(1 for j in expansion.jobs if j.regions)
    if regional:
        left = f"; without spatial control, left out: {', '.join(expansion.without_regions)}"
        folded.append(f"{regional} with regions{left if expansion.without_regions else ''}")
    jobs = len(expansion.jobs)
    note = f" ({'; '.join(folded)})" if folded else ""
    return f"{jobs} jobs{note}, {done} already done, {jobs - done} to run"


def plan(spec_path: str, output: str | None = None, sample: int = 10, settings: Sequence[str] = ()) -> str:
    """The number of jobs and a sample of them, without running anything."""
    spec = load_spec(spec_path, settings)
    expansion = plan_jobs(spec, spec_path)
    jobs = expansion.jobs
    out = output_location(spec, spec_path, output)
    with rows_here(out) as folder:
        done = {} if folder is None else finished_status(folder)
    ok = sum(1 for j in jobs if done.get(j.job_id) in FINISHED)
    lines = [f"{spec_path}: {describe_counts(expansion, ok)} -> {out}"]
    by_algo: dict[str, int] = {}
    for j in jobs:
        by_algo[j.algorithm] = by_algo.get(j.algorithm, 0) + 1
    lines.append("  " + ", ".join(f"{k}: {v}" for k, v in by_algo.items()))
    if spec.early_stopping is not None:
        lines.append("  " + describe_stopping(spec.early_stopping))
    for j in jobs[:sample]:
        lines.append(f"  {j.job_id}  {j.label}")
    if len(jobs) > sample:
        lines.append(f"  ... and {len(jobs) - sample} more")
    return "\n".join(lines)

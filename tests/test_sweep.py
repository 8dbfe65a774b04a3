"""Sweeps for real: a local Ray, a SQLite MLflow store, Parquet rows; failures, retries, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import BAD, REPO, SAMPLES

from orchestrator.results import finished_status, read_results
from orchestrator.sweep import run_sweep

pytestmark = pytest.mark.slow

STARRY = SAMPLES / "style" / "starry_night.jpg"


@pytest.fixture
def local_ray():
    """An in-process Ray, shut down after the test: the sweeps run as subprocesses in the other
    tests must start their own Ray, not join this one."""
    import ray

    if ray.is_initialized():  # a test that ran a sweep in-process left its embedded Ray running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def write_spec(path: Path, contents: list[Path], *, steps: int = 3, size: int = 32, extra: str = "") -> Path:
    path.write_text(
        textwrap.dedent(f"""\
        name: {path.stem}
        content: {json.dumps([str(c) for c in contents])}
        style: [{json.dumps(str(STARRY))}]
        algorithms: [{{name: gatys}}]
        size: {size}
        style_size: 64
        steps: {steps}
        resources: {{num_cpus: 1}}
        """)
        + extra
    )
    return path


def mlflow_runs(output: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{output / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], max_results=1000)


def test_sweep_records_failures_and_resumes_incrementally(tmp_path, local_ray):
    bad = tmp_path / "truncated.jpg"
    shutil.copy(BAD / "truncated.jpg", bad)
    tubingen = SAMPLES / "content" / "tubingen.jpg"
    spec = write_spec(tmp_path / "resume.yaml", [tubingen, bad])
    out = tmp_path / "out"

    first = run_sweep(str(spec), output=str(out), quiet=True)
    assert (first.total, first.ok, first.failed, first.skipped) == (2, 1, 1, 0)
    rows = read_results(out).to_pandas().set_index("content_name")
    good, failed = rows.loc["tubingen.jpg"], rows.loc["truncated.jpg"]
    assert good.status == "ok" and failed.status == "failed"
    assert "truncated.jpg: truncated or corrupt image data" in failed.error
    assert (out / good.output_image).is_file() and failed.output_image == ""
    assert good.evaluations >= 3 and good.content_distance > 0 and good.style_distance > 0
    assert good.device == "cpu" and good.attempts == 1 and good["param.steps"] == 3
    assert (out / "results.parquet").is_file()

    # MLflow: one experiment, a parent run for the sweep, a child run per job with its data
    client, runs = mlflow_runs(out, "resume")
    parents = [r for r in runs if r.data.tags.get("stylegrid.kind") == "sweep"]
    children = {r.info.run_id: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parents[0].info.run_id}
    ok_run = children[good.mlflow_run_id]
    assert ok_run.info.status == "FINISHED" and ok_run.data.tags["algorithm"] == "gatys"
    assert ok_run.data.tags["content"] == "tubingen.jpg" and ok_run.data.tags["style"] == "starry_night.jpg"
    assert ok_run.data.params["style_weight"] == "2.5" and ok_run.data.params["steps"] == "3"
    assert len(client.get_metric_history(ok_run.info.run_id, "total")) == 3
    assert "style.relu3_1" in ok_run.data.metrics and "content_distance" in ok_run.data.metrics
    artifacts = sorted(a.path for a in client.list_artifacts(ok_run.info.run_id))
    assert artifacts == sorted([Path(good.output_image).name, "loss_curve.png"])
    assert children[failed.mlflow_run_id].info.status == "FAILED"
    assert "truncated" in children[failed.mlflow_run_id].data.tags["error"]

    # `stylegrid results` prints the table and exports every column as CSV
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shown = subprocess.run(
        [sys.executable, "-m", "orchestrator", "results", str(out)], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0 and "tubingen.jpg" in shown.stdout and "truncated or corrupt" in shown.stdout
    csv = tmp_path / "all.csv"
    exported = subprocess.run(
        [sys.executable, "-m", "orchestrator", "results", str(out), "--csv", str(csv)],
        capture_output=True,
        env=env,
    )
    assert exported.returncode == 0
    import pandas as pd

    table = pd.read_csv(csv)
    assert len(table) == 2 and "param.style_weight" in table.columns and "mlflow_run_id" in table.columns
    missing = subprocess.run(
        [sys.executable, "-m", "orchestrator", "results", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2 and "not a sweep results folder" in missing.stderr

    # re-running skips the finished job and re-runs the failed one
    again = run_sweep(str(spec), output=str(out), quiet=True)
    assert (again.total, again.ok, again.failed, again.skipped) == (2, 0, 1, 1)
    # adding an image runs only the new job (and the still-failing one)
    spec = write_spec(tmp_path / "resume.yaml", [tubingen, bad, SAMPLES / "content" / "chelsea.jpg"])
    grown = run_sweep(str(spec), output=str(out), quiet=True)
    assert (grown.total, grown.ok, grown.failed, grown.skipped) == (3, 1, 1, 1)
    assert sorted(finished_status(out).values()) == ["failed", "ok", "ok"]
    _, runs = mlflow_runs(out, "resume")
    assert len([r for r in runs if r.data.tags.get("stylegrid.kind") == "sweep"]) == 3


def test_style_targets_stay_warm_in_a_worker(tmp_path):
    from orchestrator.jobs import expand
    from orchestrator.spec import load_spec
    from orchestrator.worker import JobRunner

    spec = write_spec(
        tmp_path / "warm.yaml", [SAMPLES / "content" / "tubingen.jpg", SAMPLES / "content" / "chelsea.jpg"]
    )
    jobs = expand(load_spec(spec), str(spec))
    runner = JobRunner()

    def run(job):
        return runner.run(job, Path(job.content).read_bytes(), Path(job.style).read_bytes())

    run(jobs[0])
    cached = dict(runner.targets)
    assert cached  # the Gram targets of the style, one entry per scale
    outcome = run(jobs[1])
    assert outcome.status == "ok" and runner.targets.keys() == cached.keys()  # reused, not recomputed
    assert all(runner.targets[k] is cached[k] for k in cached)


def sweep_process(spec: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sweep", str(spec), "--output", str(out), "--quiet", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def find_worker(timeout: float = 120) -> psutil.Process:
    """The Ray worker process running a job (its title is ray::JobRunner.run)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith("ray::JobRunner.run"):
                return p
        time.sleep(0.2)
    raise AssertionError("no Ray worker started a job")


def test_a_killed_worker_is_retried_and_the_sweep_completes(tmp_path):
    spec = write_spec(tmp_path / "kill.yaml", [SAMPLES / "content" / "tubingen.jpg"], steps=300, size=96)
    out = tmp_path / "out"
    proc = sweep_process(spec, out)
    worker = find_worker()
    time.sleep(1.0)
    worker.kill()  # SIGKILL: the process dies mid-job
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "1 ok, 0 failed" in stdout
    row = read_results(out).to_pandas().iloc[0]
    assert row.status == "ok" and row.attempts == 2


def test_ctrl_c_stops_cleanly_and_keeps_finished_jobs(tmp_path):
    contents = [SAMPLES / "content" / n for n in ("tubingen.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")]
    spec = write_spec(tmp_path / "intr.yaml", contents, steps=40, size=64)
    out = tmp_path / "out"
    proc = sweep_process(spec, out, "--max-concurrent", "1")
    deadline = time.time() + 300
    while not list((out / "rows").glob("*.parquet")) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    statuses = finished_status(out)
    assert 1 <= len(statuses) < 4 and set(statuses.values()) == {"ok"}
    assert (out / "results.parquet").is_file()
    assert not list(out.rglob("*.tmp"))
    _, runs = mlflow_runs(out, "intr")
    assert [r.info.status for r in runs if r.data.tags.get("stylegrid.kind") == "sweep"] == ["KILLED"]
    # the next run finishes exactly what is missing
    rerun = run_sweep(str(spec), output=str(out), quiet=True)
    assert rerun.skipped == len(statuses) and rerun.ok == 4 - len(statuses)


def test_every_registered_algorithm_runs_in_a_sweep(tmp_path, local_ray):
    from algorithms import ALGORITHMS

    # 64 px: at 32 px a landscape photo leaves MRF a 2x4 relu4_1 map, smaller than its patches
    spec = write_spec(tmp_path / "every.yaml", [SAMPLES / "content" / "chelsea.jpg"], size=64)
    names = sorted(ALGORITHMS)
    spec.write_text(
        spec.read_text().replace(
            "algorithms: [{name: gatys}]", f"algorithms: {json.dumps([{'name': n} for n in names])}"
        )
    )
    summary = run_sweep(str(spec), output=str(tmp_path / "out"), quiet=True)
    rows = read_results(tmp_path / "out").to_pandas().set_index("algorithm")
    assert summary.failed == 0, rows.error.to_dict()
    assert sorted(rows.index) == names and set(rows.status) == {"ok"}
    assert rows.loc["adain", "evaluations"] == 1 and rows.loc["adain", "param.alpha"] == 1.0
    assert rows.loc["mrf", "evaluations"] >= 3 and rows.loc["mrf", "param.patch_size"] == 3

"""Sweeps for real: a local Ray, a SQLite MLflow store, Parquet rows; failures, retries, resume."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import BAD, EMBEDDED_ENV, REPO, SAMPLES, own_ray, ray_workers
from PIL import Image
from stylegrid.orchestrator.provenance import provenance
from stylegrid.orchestrator.results.rows import finished_status, read_results
from stylegrid.orchestrator.sweep.driver import run_sweep

pytestmark = pytest.mark.slow

STARRY = SAMPLES / "style" / "starry_night.jpg"


@pytest.fixture
def local_ray():
    """An in-process Ray: the session's head joined (conftest), or an embedded one."""
    from stylegrid.orchestrator.runtime import start_ray

    start_ray(own_ray(), quiet=True)


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
    assert (out / good.output_image).is_file() and not isinstance(failed.output_image, str)  # null
    assert good.evaluations >= 3 and good.content_distance > 0 and good.style_distance > 0
    assert 0 < good.content_ssim < 1 and good.style_swd > 0 and good.color_swd > 0
    assert good.device == "cpu" and good.attempts == 1 and good["param.steps"] == 3
    # the images as the spec's folder sees them: nothing recorded depends on this machine's paths
    assert failed.content == "truncated.jpg" and good.content == os.path.relpath(tubingen, tmp_path)
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
    assert ok_run.data.params["style_weight"] == "1.0" and ok_run.data.params["steps"] == "3"
    assert ok_run.data.params["content"] == good.content
    assert (out / "report" / "index.html").is_file()
    assert len(client.get_metric_history(ok_run.info.run_id, "total")) == 3
    assert "style.gram.relu3_1" in ok_run.data.metrics and "content_distance" in ok_run.data.metrics
    artifacts = sorted(a.path for a in client.list_artifacts(ok_run.info.run_id))
    assert artifacts == ["images", "plots"]
    assert children[failed.mlflow_run_id].info.status == "FAILED"
    assert "truncated" in children[failed.mlflow_run_id].data.tags["error"]

    # `stylegrid results` prints the table and exports every column as CSV
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shown = subprocess.run(
        [sys.executable, "-m", "stylegrid", "results", str(out)], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0 and "tubingen.jpg" in shown.stdout and "truncated or corrupt" in shown.stdout
    header = shown.stdout.splitlines()[0].split()
    assert {"variant", "content_distance", "content_ssim", "style_distance", "style_swd", "color_swd"} <= set(
        header
    )
    csv = tmp_path / "all.csv"
    exported = subprocess.run(
        [sys.executable, "-m", "stylegrid", "results", str(out), "--csv", str(csv)],
        capture_output=True,
        env=env,
    )
    assert exported.returncode == 0
    import pandas as pd

    table = pd.read_csv(csv)
    assert len(table) == 2 and "param.style_weight" in table.columns and "mlflow_run_id" in table.columns
    missing = subprocess.run(
        [sys.executable, "-m", "stylegrid", "results", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2 and "not a sweep results folder" in missing.stderr

    # what a killed driver leaves mid-write (write_atomic's temporaries), in every folder a sweep
    # writes, is cleared by the next run
    for folder in (out, out / "images", out / "rows", out / "report", out / "curves"):
        folder.mkdir(exist_ok=True)
        (folder / ".x.png.abc123.tmp").write_bytes(b"half")
    # re-running skips the finished job and re-runs the failed one
    again = run_sweep(str(spec), output=str(out), quiet=True)
    assert (again.total, again.ok, again.failed, again.skipped) == (2, 0, 1, 1)
    assert not list(out.rglob(".*.tmp"))
    # adding an image runs only the new job (and the still-failing one)
    spec = write_spec(tmp_path / "resume.yaml", [tubingen, bad, SAMPLES / "content" / "chelsea.jpg"])
    grown = run_sweep(str(spec), output=str(out), quiet=True)
    assert (grown.total, grown.ok, grown.failed, grown.skipped) == (3, 1, 1, 1)
    assert sorted(finished_status(out).values()) == ["failed", "ok", "ok"]
    _, runs = mlflow_runs(out, "resume")
    assert len([r for r in runs if r.data.tags.get("stylegrid.kind") == "sweep"]) == 3
    # dropping an image from the spec: its row is history, not shown as current
    spec = write_spec(tmp_path / "resume.yaml", [tubingen, SAMPLES / "content" / "chelsea.jpg"])
    run_sweep(str(spec), output=str(out), quiet=True)
    assert len(read_results(out)) == 3 and len(pd.read_parquet(out / "results.parquet")) == 2
    current = subprocess.run(
        [sys.executable, "-m", "stylegrid", "results", str(out)], capture_output=True, text=True, env=env
    )
    assert "truncated.jpg" not in current.stdout and "1 rows of jobs the spec no longer has" in current.stderr
    history = subprocess.run(
        [sys.executable, "-m", "stylegrid", "results", str(out), "--history"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert history.stdout.splitlines()[0].split()[-1] == "current"
    flags = {
        name: ln.split()[-1] for ln in history.stdout.splitlines()[1:] for name in ln.split() if "." in name
    }
    assert flags["truncated.jpg"] == "False" and flags["tubingen.jpg"] == flags["chelsea.jpg"] == "True"


def test_style_targets_stay_warm_in_a_worker(tmp_path):
    from stylegrid.orchestrator.specs.sweep import load_spec
    from stylegrid.orchestrator.sweep.plan import expand
    from stylegrid.orchestrator.sweep.worker import JobRunner

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


def sweep_process(spec: Path, out: Path, *extra: str, embedded: bool = False) -> subprocess.Popen:
    """``stylegrid sweep`` as a subprocess, joining the session's Ray head, or (``embedded``)
    starting its own Ray as on a laptop."""
    env = {**(EMBEDDED_ENV if embedded else os.environ), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "stylegrid", "sweep", str(spec), "--output", str(out), "--quiet", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a suite started in the background (`bash .ci/run &`) has SIGINT
        # ignored, which its children would inherit, and Ctrl-C could not be tested
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def find_worker(driver: subprocess.Popen, timeout: float = 120) -> psutil.Process:
    """The Ray worker process running a job of ``driver``'s embedded Ray (ray::JobRunner.run)."""
    deadline = time.time() + timeout
    while time.time() < deadline and driver.poll() is None:
        running = ray_workers(driver.pid, "ray::JobRunner.run")
        if running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError("no Ray worker started a job")


@pytest.mark.long
def test_a_killed_worker_is_retried_and_the_sweep_completes(tmp_path):
    spec = write_spec(tmp_path / "kill.yaml", [SAMPLES / "content" / "tubingen.jpg"], steps=80, size=64)
    out = tmp_path / "out"
    proc = sweep_process(spec, out, embedded=True)  # its own Ray: its workers are its descendants
    worker = find_worker(proc)
    time.sleep(0.5)
    worker.kill()  # SIGKILL: the process dies mid-job
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "1 ok, 0 failed" in stdout
    row = read_results(out).to_pandas().iloc[0]
    assert row.status == "ok" and row.attempts == 2


SHARED_CLUSTER = """
import sys, time, ray
from stylegrid.orchestrator.sweep.driver import run_sweep

ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
blocker = ray.remote(num_cpus=1)(type("Other", (), {"ping": lambda self: 1})).remote()
ray.get(blocker.ping.remote())  # another user's actor holds one of the two CPUs
summary = run_sweep(sys.argv[1], output=sys.argv[2], max_concurrent=2, quiet=True)
deadline = time.monotonic() + 30  # ray.kill returns before the CPUs are given back
while ray.available_resources().get("CPU", 0.0) < 1.0 and time.monotonic() < deadline:
    time.sleep(0.2)
print(summary.ok, ray.available_resources().get("CPU", 0.0))
"""


@pytest.mark.long
def test_jobs_go_to_started_workers_and_a_finished_sweep_gives_its_cpus_back(tmp_path):
    # two worker slots on a cluster with one free CPU: the second worker never starts, and a job
    # held for it would wait for ever; once the queue is empty, the sweep's workers are released
    contents = [SAMPLES / "content" / n for n in ("tubingen.jpg", "chelsea.jpg", "coffee.jpg")]
    spec = write_spec(tmp_path / "shared.yaml", contents, steps=2)
    proc = subprocess.run([sys.executable, "-c", SHARED_CLUSTER, str(spec), str(tmp_path / "out")], cwd=REPO,
                          env={**EMBEDDED_ENV, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok, free_cpus = proc.stdout.split()[-2:]
    assert int(ok) == 3 and float(free_cpus) == 1.0


@pytest.mark.long
def test_ctrl_c_stops_cleanly_and_keeps_finished_jobs(tmp_path):
    contents = [SAMPLES / "content" / n for n in ("tubingen.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg")]
    # jobs of a second or more each, so that the sweep is still running when its first row appears
    spec = write_spec(tmp_path / "intr.yaml", contents, steps=20, size=64)
    out = tmp_path / "out"
    proc = sweep_process(spec, out, "--max-concurrent", "1", embedded=True)  # Ctrl-C on a laptop
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


def test_every_registered_algorithm_runs_in_a_sweep(every_algorithm_sweep):
    from stylegrid.algorithms import ALGORITHMS
    from stylegrid.algorithms.shared.metrics import MEASURES

    out, summary = every_algorithm_sweep
    rows = read_results(out).to_pandas()
    assert rows.variant.isna().sum() == len(ALGORITHMS) - 1  # null, not "", where nothing varies
    rows["variant"] = rows.variant.fillna("")
    assert summary.failed == 0, rows.set_index("algorithm").error.to_dict()
    assert sorted(set(rows.algorithm)) == sorted(ALGORITHMS) and set(rows.status) == {"ok"}
    # the seeds fold: no algorithm here uses one without init=noise
    assert len(rows) == len(ALGORITHMS) + 1 and summary.folded_seeds == len(rows)
    assert rows.seed.isna().all()
    by = rows.set_index(["algorithm", "variant"]).sort_index()
    # every algorithm has content and style terms: both sums are positive (not the 0 of a
    # misnamed term), and the total is their sum with the regularisers; style_swap_optimize's one term
    # is its swapped target (no content term: null, not 0)
    for (algorithm, _variant), row in by.iterrows():
        losses = json.loads(row.losses_json)
        if algorithm == "style_swap_optimize":
            assert pd.isna(row.loss_content) and row.loss_style > 0 and "style.swap.relu3_1" in losses
            row = row.copy()
            row["loss_content"] = 0.0
        else:
            assert row.loss_content > 0 and row.loss_style > 0, (algorithm, losses)
        others = sum(v for k, v in losses.items() if k in ("tv", "laplacian", "range"))
        assert row.loss_total == pytest.approx(row.loss_content + row.loss_style + others, rel=1e-5)
        for m in MEASURES:
            assert np.isfinite(row[m.name]), (algorithm, m.name)
    assert by.loc[("adain", ""), "evaluations"] == 1 and by.loc[("adain", ""), "param.alpha"] == 1.0
    assert by.loc[("mrf", ""), "evaluations"] >= 3 and by.loc[("mrf", ""), "param.patch_size"] == 3
    # a parameter is null where it does not apply
    assert pd.isna(by.loc[("adain", ""), "param.steps"]) and pd.isna(
        by.loc[("adain", ""), "param.style_weight"]
    )
    assert (
        pd.isna(by.loc[("mrf", ""), "param.alpha"]) and by.loc[("adain_optimize", ""), "param.alpha"] == 0.8
    )
    assert rows["param.learning_rate"].isna().all()  # L-BFGS everywhere: no step size
    assert pd.isna(by.loc[("adain_optimize", ""), "param.content_layers"])
    assert sorted(by.loc["gatys"].index) == ["style_weight=2.5", "style_weight=5"]
    # names that say what each picture is
    names = sorted(Path(p).name.rsplit("__", 1)[0] for p in rows.output_image)
    assert "chelsea__starry_night__style_weight-2.5" in names and "chelsea__starry_night" in names
    assert all((out / p).is_file() for p in rows.output_image)
    assert set(rows.code_version) == {provenance().code_version} and set(rows.host) == {socket.gethostname()}
    assert (rows.started_at < rows.finished_at).all()


def test_the_mlflow_store_holds_what_a_researcher_compares(every_algorithm_sweep):
    from conftest import EVERY_ALGORITHM_STEPS
    from stylegrid.algorithms import ALGORITHMS
    from stylegrid.algorithms.shared.metrics import MEASURES

    out, _ = every_algorithm_sweep
    rows = read_results(out).to_pandas().set_index("mlflow_run_id")
    client, runs = mlflow_runs(out, "every")
    experiment = client.get_experiment_by_name("every")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = next(r for r in runs if r.data.tags.get("stylegrid.kind") == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(rows) and {r.info.run_id for r in children} == set(rows.index)
    code = provenance()
    for run in [parent, *children]:
        tags = run.data.tags
        assert (
            tags["stylegrid.version"] == code.version and tags["stylegrid.code_version"] == code.code_version
        )
        if code.commit:
            assert tags["mlflow.source.git.commit"] == code.commit
        assert tags["stylegrid.host"] == socket.gethostname()
    # the images as MLflow datasets with their digests: the sweep's sets, each job's pair
    sets = {d.dataset.name: d for d in parent.inputs.dataset_inputs}
    assert sets.keys() == {"chelsea.jpg", "starry_night.jpg"}  # one image each here
    for run in children:
        row = rows.loc[run.info.run_id]
        info, data = run.info, run.data
        inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
        assert inputs["content"].name == row.content_name and inputs["style"].name == row.style_name
        assert inputs["content"].digest == sets["chelsea.jpg"].dataset.digest
        assert info.status == "FINISHED" and data.tags["stylegrid.device"] == "cpu"
        # real start and end: the run lasts as long as the job did in its worker
        assert (info.end_time - info.start_time) / 1000 == pytest.approx(row.wall_seconds, abs=0.1)
        assert info.start_time == pytest.approx(row.started_at.timestamp() * 1000, abs=2)
        # every measure and every parameter that applies, for the compare view
        assert {m.name for m in MEASURES} <= set(data.metrics)
        given = {k for k, v in json.loads(row.params_json).items() if v is not None}
        assert given <= set(data.params)  # a parameter left at None is not logged as 'null'
        assert not any(v == "null" for v in data.params.values())
        assert "seed" not in data.params  # it does not apply
        if row.algorithm == "adain":
            assert "steps" not in data.params and "style_weight" not in data.params
        # through log_image: the output at step 0 (the image grid's step), and for the optimisers
        # the snapshot at step 2 and the output again at its last step (a slider)
        images = [a.path.split("/")[-1] for a in client.list_artifacts(info.run_id, "images")]
        steps = {
            key: sorted(int(p.split("+step+")[1].split("+")[0]) for p in images if p.startswith(f"{key}+") and p.endswith(".png"))
            for key in ("output", "stylized")
        }  # fmt: skip
        one_pass = ALGORITHMS[row.algorithm].kind == "feedforward"  # adain, johnson
        assert steps["output"] == [0], (row.algorithm, images)
        assert steps["stylized"] == ([] if one_pass else [2, EVERY_ALGORITHM_STEPS]), (row.algorithm, images)
        assert data.tags["mlflow.loggedImages"] == "True"
        assert [a.path for a in client.list_artifacts(info.run_id, "plots")] == ["plots/loss_curve.png"]
    # the parent run: the results table (as MLflow's table artifact) and the report
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results_table.json", "report", "standalone.html"} <= parent_files
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, "results_table.json")).read_text())
    assert len(table["data"]) == len(rows) and "style_swd" in table["columns"]
    report = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert "report/index.html" in report
    assert parent.data.params["seed_duplicates_folded"] == str(len(rows))


def test_loss_curve_of_a_one_step_algorithm_is_not_empty():
    from stylegrid.algorithms import StepLoss
    from stylegrid.orchestrator.report.pictures import loss_curve_png

    one = loss_curve_png([StepLoss(1, 0, {"content.adain.relu4_1": 0.3, "style.adain.relu1_1": 0.02})], "t")
    blank = loss_curve_png([StepLoss(1, 0, {"total": 0.0})], "t")
    pixels = np.asarray(Image.open(io.BytesIO(one)).convert("RGB"))
    coloured = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # the markers and labels are in colour
    assert coloured.sum() > 100 and one != blank


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on loopback (its own SQLite store and artifact folder)."""
    from conftest import free_port

    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
        "--artifacts-destination", str(store / "artifacts"),
    ]  # fmt: skip
    log = open(store / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # ready when its app answers /health: the port opens seconds before that on a slow
        # machine, and the sweep's own connection check (5 s) would find no answer
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail("mlflow server did not start:\n" + (store / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield port, store
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


def test_mlflow_tracking_uri_from_the_environment_and_credentials_never_shown(tmp_path, mlflow_server):
    port, store = mlflow_server
    secret = "s3cret-pw"
    spec = write_spec(tmp_path / "envuri.yaml", [SAMPLES / "content" / "chelsea.jpg"], size=32)
    spec.write_text(spec.read_text().replace("algorithms: [{name: gatys}]", "algorithms: [{name: adain}]"))
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MLFLOW_TRACKING_URI": f"http://alice:{secret}@127.0.0.1:{port}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "stylegrid", "sweep", str(spec), "--output", str(out), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert f"open http://alice:***@127.0.0.1:{port}/#/experiments/" in proc.stdout  # the runs page
    assert not (out / "mlflow.db").exists()  # the environment's store was used, not the embedded one

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"http://127.0.0.1:{port}")
    experiment = client.get_experiment_by_name("envuri")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        recorded = json.dumps([run.data.params, run.data.tags, run.info.artifact_uri])
        assert secret not in recorded
    row = read_results(out).to_pandas().iloc[0]
    assert row.mlflow_run_id in {r.info.run_id for r in runs}


def test_early_stopping_stops_hopeless_jobs_keeps_their_rows_and_never_reruns_them(tmp_path, local_ray):
    """Successive halving in a sweep: one worker (so the order, and the decisions, are fixed), four
    Gatys jobs of one picture from the strongest style weight down, one rung at half the steps
    where the better half goes on. Each weaker job is behind at the rung and stops there, with its
    picture and measures; the strongest runs to the end."""
    from conftest import cli_in_process

    extra = textwrap.dedent("""\
        algorithms:
          - name: gatys
            params: {precision: fp32}  # bf16 (auto where the CPU has it) ends L-BFGS at its noise
            grid: {style_weight: [100, 10, 0.01, 0.001]}
        early_stopping: {measure: style_distance, rungs: [0.5], reduction_factor: 2, min_results: 2}
        max_concurrent: 1
        """)
    spec = write_spec(tmp_path / "halving.yaml", [SAMPLES / "content" / "chelsea.jpg"], steps=6, extra=extra)
    spec.write_text(spec.read_text().replace("algorithms: [{name: gatys}]\n", ""))
    out = tmp_path / "out"
    first = cli_in_process("sweep", spec, "-o", out, "-q")
    assert first.returncode == 0, first.stderr  # stopped jobs are not failures
    rows = read_results(out).to_pandas()
    stopped, ok = rows[rows.status == "stopped"], rows[rows.status == "ok"]
    assert list(ok.variant) == ["style_weight=100"] and len(stopped) == 3, rows[
        ["variant", "status", "error"]
    ]
    for row in stopped.itertuples():
        assert (
            row.error.startswith("stopped at step 3 of 6 by early stopping (")
            and "not among the best" in row.error
        )
        assert (out / row.output_image).is_file() and row.style_distance > 0 and row.evaluations >= 3
        rungs = json.loads(row.rungs)
        assert [r["step"] for r in rungs] == [3] and rungs[0]["go_on"] is False
        assert rungs[0]["evaluations"] == row.evaluations  # what it cost, stopped there
        assert rungs[0]["values"]["style_distance"] == pytest.approx(row.style_distance)
        assert row.evaluations < ok.evaluations.min()
    assert all(json.loads(r)[0]["go_on"] for r in ok.rungs)
    client, runs = mlflow_runs(out, "halving")
    by_job = {r.data.tags.get("stylegrid.job_id"): r for r in runs}
    for row in stopped.itertuples():
        run = by_job[row.job_id]
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "stopped"
        assert run.data.tags["stylegrid.stopped_at_step"] == "3"
    for row in ok.itertuples():  # the rung's measures and the final ones: a curve of two points
        history = client.get_metric_history(by_job[row.job_id].info.run_id, "style_distance")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [3, 6]
    page = (out / "report" / "index.html").read_text()
    assert f"Stopped early ({len(stopped)})" in page and "stopped early at step 3" in page
    assert json.loads((out / "report" / "summary.json").read_text())["stopped"] == len(stopped)

    again = run_sweep(str(spec), output=str(out), quiet=True)  # nothing runs again
    assert (again.skipped, again.ok, again.stopped, again.failed) == (4, 0, 0, 0)

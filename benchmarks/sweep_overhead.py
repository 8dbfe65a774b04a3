"""Orchestration overhead per job and scaling with workers, side by side with the peers, in one run.

1. Overhead per job: N tiny Gatys jobs (16 px, 1 step: a few tens of milliseconds of work) through
   a real sweep on one worker (Ray actor, MLflow child run with metrics, image and loss curve,
   Parquet row). overhead = (sweep wall time - the jobs' own time) / N, with Ray already started and
   the MLflow store already created, so that it is the steady-state cost per job.
   Beside it, in the same run:
   * MLflow call by call: one child run with 10 params, 20 metric steps and an image logged with
     ``mlflow.log_param`` / ``log_metric`` / ``log_artifact`` (the usual way), per run;
   * Ray Tune: N trivial trials (report one metric) with Tune's ``MLflowLoggerCallback``, per trial.
2. Scaling: real small Gatys jobs (64 px, 40 steps) with 1 and then 2 workers of one CPU each
   (torch threads follow the job's ``num_cpus``): jobs per hour and the ratio.

    python benchmarks/sweep_overhead.py               # 200 trivial jobs, 40 real jobs (about 7 minutes)
    python benchmarks/sweep_overhead.py --smoke-test  # a few jobs: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONTENTS = sorted((REPO / "samples" / "content").glob("*.jpg"))
STYLES = sorted((REPO / "samples" / "style").glob("*.jpg"))


def write_spec(path: Path, n_jobs: int, size: int, steps: int) -> Path:
    """A spec of 2 contents x 2 styles x ceil(n/4) seeds: n jobs, rounded up to a multiple of 4
    (init=noise: only then do seeds make distinct jobs)."""
    seeds = -(-n_jobs // 4)
    path.write_text(
        f"name: {path.stem}\n"
        f"content: {json.dumps([str(c) for c in CONTENTS[:2]])}\n"
        f"style: {json.dumps([str(s) for s in STYLES[:2]])}\n"
        "algorithms: [{name: gatys, params: {init: noise}}]\n"
        f"seeds: {json.dumps(list(range(seeds)))}\n"
        f"size: {size}\nstyle_size: {max(size, 32)}\nsteps: {steps}\n"
        "resources: {num_cpus: 1}\n"
    )
    return path


def sweep_overhead(n_jobs: int, workdir: Path) -> dict:
    import ray
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import run_sweep

    out = workdir / "overhead_out"
    warm = write_spec(workdir / "warmup.yaml", 1, 20, 1)  # other jobs than the measured ones
    run_sweep(str(warm), output=str(out), max_concurrent=1, quiet=True)  # creates the MLflow store
    spec = write_spec(workdir / "overhead.yaml", n_jobs, 16, 1)
    start = time.perf_counter()
    summary = run_sweep(str(spec), output=str(out), max_concurrent=1, quiet=True)
    wall = time.perf_counter() - start
    rows = read_results(out).to_pandas()
    rows = rows[rows.spec_name == "overhead"]
    job_time = float(rows.wall_seconds.sum())
    n = summary.ok + summary.failed
    assert ray.is_initialized()
    return {"jobs": n, "wall": wall, "job_time": job_time, "overhead_per_job": (wall - job_time) / n}


def mlflow_call_by_call(n_runs: int, workdir: Path) -> float:
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'callbycall.db'}")
    try:
        return _call_by_call(mlflow, n_runs, workdir)
    finally:  # set_tracking_uri also sets MLFLOW_TRACKING_URI, which a later sweep would take
        mlflow.set_tracking_uri(before or "")
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)


def _call_by_call(mlflow, n_runs: int, workdir: Path) -> float:
    import numpy as np
    from PIL import Image

    # artifacts in workdir: a SQLite store's default artifact location is ./mlruns in the cwd
    mlflow.create_experiment("call_by_call", artifact_location=(workdir / "artifacts").as_uri())
    mlflow.set_experiment("call_by_call")
    img = workdir / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    with mlflow.start_run(run_name="parent"):
        pass  # store creation and first-run costs out of the measurement
    start = time.perf_counter()
    with mlflow.start_run(run_name="parent"):
        for i in range(n_runs):
            with mlflow.start_run(run_name=f"child {i}", nested=True):
                for p in range(10):
                    mlflow.log_param(f"p{p}", p)
                for step in range(20):
                    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
                mlflow.log_artifact(str(img))
    return (time.perf_counter() - start) / n_runs


def ray_tune_per_trial(n_trials: int, workdir: Path) -> float | None:
    try:
        from ray import tune
        from ray.air.integrations.mlflow import MLflowLoggerCallback
    except ImportError:
        return None

    def trainable(config):
        tune.report({"loss": float(config["x"])})

    # Create the experiment first, with its artifacts in workdir: MLflow's default artifact
    # location for a SQLite store is ./mlruns in the current folder.
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{workdir / 'tune.db'}").create_experiment(
        "tune", artifact_location=(workdir / "tune-artifacts").as_uri()
    )

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"x": tune.grid_search(list(range(n_trials)))},
        run_config=tune.RunConfig(
            name="tune_overhead",
            storage_path=str(workdir / "tune"),
            callbacks=[
                MLflowLoggerCallback(tracking_uri=f"sqlite:///{workdir / 'tune.db'}", experiment_name="tune")
            ],
            verbose=0,
        ),
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
    )
    start = time.perf_counter()
    tuner.fit()
    return (time.perf_counter() - start) / n_trials


def scaling(n_jobs: int, workdir: Path, size: int = 64, steps: int = 40) -> dict:
    """End to end (worker start-up included) and steady state (between the first and the last
    job to finish, which leaves out the few seconds each new worker process spends importing
    torch and warming up)."""
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import run_sweep

    spec = write_spec(workdir / "scaling.yaml", n_jobs, size, steps)
    result = {}
    for workers in (1, 2):
        out = workdir / f"scaling_{workers}"
        start = time.perf_counter()
        s = run_sweep(str(spec), output=str(out), max_concurrent=workers, quiet=True)
        wall = time.perf_counter() - start
        done = sorted(read_results(out).to_pandas().finished_at)
        span = (done[-1] - done[workers - 1]).total_seconds()
        result[workers] = {
            "jobs": s.ok,
            "wall": wall,
            "jobs_per_hour": 3600 * s.ok / wall,
            "steady_jobs_per_hour": 3600 * (len(done) - workers) / span,
        }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trivial-jobs", type=int, default=200)
    ap.add_argument("--real-jobs", type=int, default=40)
    ap.add_argument("--smoke-test", action="store_true")
    ap.add_argument("--only", choices=["overhead", "scaling"], help="run one part")
    args = ap.parse_args()
    # the smoke test: 4 trivial jobs, no Tune trials, 4 real jobs of 32 px and 3 steps
    real_size, real_steps = (32, 3) if args.smoke_test else (64, 40)
    if args.smoke_test:
        args.trivial_jobs, args.real_jobs = 4, 2

    import ray
    from stylegrid.orchestrator.runtime import start_ray

    # the cluster of RAY_ADDRESS when set (the test suite's head), else an embedded 2-CPU Ray
    start_ray({} if os.environ.get("RAY_ADDRESS") else {"num_cpus": 2}, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ours = call_by_call = tune_trial = scale = None
        if args.only in (None, "overhead"):
            ours = sweep_overhead(args.trivial_jobs, workdir)
            call_by_call = mlflow_call_by_call(min(args.trivial_jobs, 50), workdir)
            if not args.smoke_test:  # (the smoke test checks the script, not Tune's cost)
                tune_trial = ray_tune_per_trial(min(args.trivial_jobs, 50), workdir)
        if args.only in (None, "scaling"):
            scale = scaling(args.real_jobs, workdir, real_size, real_steps)
    ray.shutdown()

    print(
        json.dumps(
            {"stylegrid": ours, "mlflow_call_by_call": call_by_call, "ray_tune": tune_trial, "scaling": scale}
        )
    )
    if ours is not None:
        per_job = ours["overhead_per_job"]
        print(
            f"orchestration overhead per job (stylegrid, {ours['jobs']} jobs): {per_job:.3f} s  (goal < 0.1 s)"
        )
        print(f"  sweep wall {ours['wall']:.1f} s, the jobs' own time {ours['job_time']:.1f} s")
        print(
            f"MLflow child run logged call by call:  {call_by_call:.3f} s per run  -> {call_by_call / per_job:.1f}x stylegrid"
        )
        if tune_trial is not None:
            print(
                f"Ray Tune + MLflowLoggerCallback:       {tune_trial:.3f} s per trial -> {tune_trial / per_job:.1f}x stylegrid"
            )
    if scale is not None:
        one, two = scale[1], scale[2]
        for key, label in (("jobs_per_hour", "end to end"), ("steady_jobs_per_hour", "steady state")):
            print(
                f"real Gatys jobs ({real_size} px, {real_steps} steps), {label}: 1 worker {one[key]:.0f} jobs/h, "
                f"2 workers {two[key]:.0f} jobs/h -> {two[key] / one[key]:.2f}x (goal >= 1.8x)"
            )


if __name__ == "__main__":
    main()

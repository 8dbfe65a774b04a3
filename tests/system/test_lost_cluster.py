"""A Ray cluster lost mid-run (issue 29): every workflow that waits on the cluster (a sweep, a
catalog, a training, a video) notices within seconds, says so in one line naming the address and
the setting, keeps what was written, and the next run finishes the rest. Without the watch a
driver whose head died waited about 60 s in silence, then Ray's core ended it with its own lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

SAMPLES = REPO / "samples"
STARRY = SAMPLES / "style" / "starry_night.jpg"


@pytest.mark.long
def test_a_ray_cluster_lost_mid_sweep_stops_it_in_one_line_and_the_next_run_repairs_it(tmp_path):
    from conftest import SESSION_MARKER, kill_marked, start_head, stop_head
    from mlflow.tracking import MlflowClient
    from stylegrid.orchestrator.results.rows import read_results

    spec = tmp_path / "lost.yaml"
    spec.write_text(
        f"name: lost\ncontent: [{SAMPLES / 'content'}]\nstyle: [{STARRY}]\n"
        "algorithms: [{name: gatys}]\nsize: 48\nsteps: 30\nresources: {num_cpus: 1}\nmax_concurrent: 1\n"
    )
    out = tmp_path / "out"
    head = start_head()  # a cluster of its own, lost as a whole (its GCS, raylet and workers)
    try:
        env = {k: v for k, v in head.env.items() if k != SESSION_MARKER}
        env.update(RAY_ADDRESS=head.address, PYTHONPATH=str(REPO))
        sweep = subprocess.Popen(
            [sys.executable, "-m", "stylegrid", "sweep", str(spec), "-o", str(out), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while not list((out / "rows").glob("*.parquet")):  # the first job is recorded: lose the cluster
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
            time.sleep(0.2)
        kill_marked(head.marker)
        lost_at = time.monotonic()
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        stop_head(head)
    assert sweep.returncode == 1, stdout + stderr
    assert time.monotonic() - lost_at < 30  # not Ray's 60 s of silence
    first = stderr.splitlines()[0]
    assert first.startswith(f"warning: lost the Ray cluster {head.address} (from RAY_ADDRESS) ("), stderr
    assert "Traceback" not in stderr and "interrupted" in stdout
    rows = read_results(out).to_pandas()
    assert 1 <= len(rows) < 7 and set(rows.status) == {"ok"} and (out / "results.parquet").is_file()
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "lost"]
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs if r.data.tags.get("stylegrid.kind") == "sweep"] == ["KILLED"]


def lose_the_cluster_after(
    cmd: list[str], first: str, folder: Path
) -> tuple[subprocess.CompletedProcess, float, str]:
    """Run ``stylegrid *cmd`` on a Ray head of its own, lose the whole cluster once a file
    matching ``first`` appears under ``folder``; the finished process and the seconds it took
    to end after the loss."""
    from conftest import SESSION_MARKER, kill_marked, start_head, stop_head

    head = start_head()
    try:
        env = {k: v for k, v in head.env.items() if k != SESSION_MARKER}
        env.update(RAY_ADDRESS=head.address, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "stylegrid", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=REPO, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while not list(folder.rglob(first)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        kill_marked(head.marker)
        lost_at = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        ended = time.monotonic() - lost_at
    finally:
        stop_head(head)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), ended, head.address


def runs_of(store: Path, kind: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    return [
        r.info.status
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id])
        if r.data.tags.get("stylegrid.kind") == kind
    ]


@pytest.mark.long
def test_a_ray_cluster_lost_mid_catalog_stops_it_in_one_line_and_the_next_run_finishes(tmp_path):
    import shutil

    from stylegrid.orchestrator.catalog.manifest import read_manifest

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):  # enough images that the catalog is still running when the cluster goes
        for p in sorted((SAMPLES / "content").glob("*.jpg")):
            shutil.copy(p, photos / f"{i:02d}_{p.name}")
    out = tmp_path / "out"
    cmd = ["stylize-catalog", "--input", photos, "--style", STARRY, "--algorithm", "johnson",
           "--size", "64", "--batch-size", "2", "-o", out, "-q"]  # fmt: skip
    proc, ended, address = lose_the_cluster_after([str(c) for c in cmd], "*.parquet", out / "manifest")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ended < 30  # not Ray's 60 s of silence
    ours = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert ours == [
        ln for ln in ours if ln.startswith(f"warning: lost the Ray cluster {address} (from RAY_ADDRESS) (")
    ]
    assert len(ours) == 1 and "Traceback" not in proc.stderr and "interrupted" in proc.stdout, proc.stderr
    manifest = read_manifest(str(out))
    assert 1 <= len(manifest) < 168 and set(manifest.status) == {"ok"}
    assert runs_of(out / "mlflow.db", "catalog") == ["KILLED"]
    again = subprocess.run(  # no cluster now: the rest in this process (the local engine)
        [sys.executable, "-m", "stylegrid", *map(str, cmd)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    finished = read_manifest(str(out))
    assert len(finished) == 168 and finished.source.is_unique and set(finished.status) == {"ok"}


@pytest.mark.long
def test_a_ray_cluster_lost_mid_training_stops_it_in_one_line_keeping_its_checkpoints(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        f"name: tiny\ncontent: [{SAMPLES / 'content'}/]\nstyle: [{STARRY}]\nsteps: 5000\nbatch_size: 2\n"
        "image_size: 48\ncrop: 32\nstyle_size: 64\nwidth: 8\nblocks: 1\nnum_workers: 1\ncpus_per_worker: 1\n"
        "log_every: 5\nsample_every: 1000\ncheckpoint_every: 10\n"
    )
    out = tmp_path / "out"
    cmd = ["train-johnson", str(spec), "-o", str(out), "-q"]
    proc, ended, address = lose_the_cluster_after(cmd, "checkpoint_*", out)
    assert proc.returncode == 1 and ended < 30, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "task_manager.cc" not in ln]
    assert lines[0].startswith(
        f"stylegrid train-johnson: error: lost the Ray cluster {address} (from RAY_ADDRESS) ("
    ), proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(out.rglob("checkpoint_*"))  # the next run resumes from them
    assert runs_of(out / "mlflow.db", "train-johnson") == ["KILLED"]


@pytest.mark.long
def test_a_ray_cluster_lost_mid_video_stops_it_in_one_line_keeping_its_segments(tmp_path):
    from helpers import make_clip

    source = make_clip(tmp_path / "pan.mp4")
    out = tmp_path / "styled"
    cmd = [str(source), "--style", str(STARRY), "-o", str(out), "--size", "96", "--style-size", "96",
           "--segment-frames", "4", "--overlap", "1", "--engine", "ray", "-q"]  # fmt: skip
    proc, ended, address = lose_the_cluster_after(["stylize-video", *cmd], "segment_*.npz", out)
    assert proc.returncode == 1 and ended < 30, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "task_manager.cc" not in ln]
    assert lines[0].startswith(
        f"stylegrid stylize-video: error: lost the Ray cluster {address} (from RAY_ADDRESS) ("
    )
    assert "Traceback" not in proc.stderr and not (out / "pan.mp4").exists()
    assert list(out.glob("segments/*/segment_*.npz"))  # kept: the next run does only the rest
    assert runs_of(out / "mlflow.db", "video") == ["KILLED"]

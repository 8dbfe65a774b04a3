"""The `ray job submit` path for real: a local Ray head with token auth, a submitted sweep."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES

from orchestrator.results import read_results

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """`ray start --head` on loopback; token authentication on, as Ray 2.60 does by default."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    dashboard = free_port()
    cmd = [
        "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
        f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", f"--ray-client-server-port={free_port()}",
        "--num-cpus=2", f"--temp-dir={temp_dir}", "--disable-usage-stats",
    ]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_a_sweep(ray_head, tmp_path):
    address, env = ray_head
    spec = tmp_path / "submitted.yaml"
    contents = [str(SAMPLES / "content" / "tubingen.jpg"), str(SAMPLES / "content" / "chelsea.jpg")]
    spec.write_text(
        f"name: submitted\ncontent: {json.dumps(contents)}\n"
        f"style: [{json.dumps(str(SAMPLES / 'style' / 'the_scream.jpg'))}]\n"
        "algorithms: [{name: gatys}]\nsize: 32\nstyle_size: 64\nsteps: 3\nresources: {num_cpus: 1}\n"
    )
    out = tmp_path / "out"
    submit = ["ray", "job", "submit", "--address", address, "--working-dir", str(REPO), "--",
              "python", "-m", "orchestrator", "sweep", str(spec), "--output", str(out), "--quiet"]  # fmt: skip

    # token authentication is on: a client without RAY_AUTH_MODE=token is refused
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    refused = subprocess.run(submit, env=no_token, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "authentication token" in (refused.stdout + refused.stderr)

    for _ in range(20):  # right after `ray start` the job agent may not be up yet
        proc = subprocess.run(submit, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        if "No available agent" not in proc.stdout + proc.stderr:
            break
        time.sleep(3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr and "2 ok, 0 failed" in proc.stdout

    rows = read_results(out).to_pandas()
    assert sorted(rows.status) == ["ok", "ok"] and all(rows.mlflow_run_id != "")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("submitted")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3  # the sweep's parent run and one child run per job
    assert {r.info.run_id for r in runs} >= set(rows.mlflow_run_id)

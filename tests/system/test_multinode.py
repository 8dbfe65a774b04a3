"""A real multi-node Ray cluster on this machine (a head with no CPUs and worker nodes, each its
own raylet started with ``ray start --address``) and a real S3 endpoint (moto's standalone
server on 127.0.0.1), both submitted to with ``ray job submit``:

1. a catalog goes from S3 to S3 with its model actors pinned to the worker nodes, and its
   manifest in S3 gives a re-run the pairs that are done;
2. training reads its images from S3 and keeps its checkpoints there; a worker node is killed
   mid-run and the run resumes from the newest checkpoint in S3 on a replacement node.

The two share one cluster (in this order: the second replaces a node)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from conftest import BUCKET, REPO, S3, SAMPLES, SESSION_MARKER, free_port, kill_marked, node_ports, submit_job

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.xdist_group("multinode")]

BIN = Path(sys.executable).parent


@dataclass
class LocalCluster:
    """A head with no CPUs (so that all work goes to the worker nodes) and worker nodes that
    declare ``stylegrid_worker``; every process carries the session marker (conftest)."""

    env: dict
    address: str = ""
    dashboard: str = ""
    temp_dir: str = ""
    workers: dict[str, int] = field(default_factory=dict)  # node name -> its raylet's port

    def ray(self, *args: str) -> None:
        proc = subprocess.run(["ray", *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def api(self, path: str):
        """GET the head's Jobs API with the cluster's token (Ray's own CLI would cost a process
        importing Ray, over a second of CPU, per poll)."""
        token = Path(self.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
        request = urllib.request.Request(
            f"{self.dashboard}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def job_status(self, job_id: str) -> str:
        return str(self.api(f"/api/jobs/{job_id}")["status"]).upper()

    def job_logs(self, job_id: str) -> str:
        return self.api(f"/api/jobs/{job_id}/logs")["logs"]

    def start_head(self) -> None:
        port, dash = free_port(), free_port()
        self.ray(
            "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=0",
            f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={free_port()}", "--object-store-memory=100000000",
            "--disable-usage-stats", *node_ports(),
        )  # fmt: skip
        self.address, self.dashboard = f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}"
        self.env["RAY_ADDRESS"] = self.address  # the jobs' own ray.init()s join this cluster, not another

    def add_worker(self, name: str, cpus: int = 2) -> None:
        port = free_port()
        self.ray(
            "start", f"--address={self.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
            "--resources", json.dumps({"stylegrid_worker": 1}), f"--node-manager-port={port}",
            f"--node-name={name}", "--object-store-memory=100000000", "--disable-usage-stats",
            *node_ports(),
        )  # fmt: skip
        self.workers[name] = port

    def actors(self) -> list[dict]:
        """Every actor the cluster has had, with its node and resources (Ray's state API)."""
        return self.api("/api/v0/actors?limit=1000&detail=1")["data"]["result"]["result"]

    def worker_node_ids(self) -> list[str]:
        nodes = self.api("/api/v0/nodes?limit=1000")["data"]["result"]["result"]
        return [n["node_id"] for n in nodes if n.get("node_name") in self.workers and n["state"] == "ALIVE"]

    def kill_worker(self, name: str) -> None:
        """SIGKILL the node's raylet and everything under it (its workers, its agents): the node
        is lost the way a machine that loses power is."""
        flag = f"--node_manager_port={self.workers.pop(name)}"
        raylets = [p for p in psutil.process_iter(["cmdline"]) if flag in (p.info["cmdline"] or [])]
        assert len(raylets) == 1, f"no single raylet with {flag}"
        victims = [raylets[0], *raylets[0].children(recursive=True)]
        for p in victims:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass


@pytest.fixture(scope="module")
def cluster(s3):
    temp_dir = tempfile.mkdtemp(prefix="rm", dir="/tmp")
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
        **s3.env,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        SESSION_MARKER: secrets.token_hex(8),
    }
    c = LocalCluster(env, temp_dir=temp_dir)
    try:
        c.start_head()
        c.add_worker("a")
        c.add_worker("b")
        yield c
    finally:
        kill_marked(env[SESSION_MARKER])
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(cluster: LocalCluster, args: list[str]) -> str:
    """``ray job submit --no-wait ... -- python -m stylegrid <args>``: the job's id."""
    cmd = ["ray", "job", "submit", "--no-wait", "--address", cluster.dashboard, "--working-dir", str(REPO),
           "--", "python", "-m", "stylegrid", *args]  # fmt: skip
    submitted = submit_job(cmd, cluster.env)
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    return re.search(r"raysubmit_\w+", submitted.stdout + submitted.stderr).group(0)


def wait_for(cluster: LocalCluster, job_id: str, seconds: float) -> tuple[str, str]:
    """(final status, logs) of the job."""
    deadline = time.monotonic() + seconds
    while (status := cluster.job_status(job_id)) in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, f"the job did not end within {seconds:.0f} s"
        time.sleep(2)
    return status, cluster.job_logs(job_id)


def upload(s3: S3, files: dict[str, bytes]) -> None:
    fs = s3.fs()
    for key, data in files.items():
        with fs.open_output_stream(f"{BUCKET}/{key}") as f:
            f.write(data)


def checkpoint_steps(s3: S3, prefix: str) -> list[int]:
    import pyarrow.fs as pafs

    fs = s3.fs()
    infos = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True))
    steps = []
    for info in infos:
        if info.path.endswith("/state.json"):
            with fs.open_input_file(info.path) as f:
                steps.append(json.loads(f.read())["step"])
    return sorted(steps)


def registered_checkpoint(s3: S3, run: str) -> bool:
    """Whether Ray Train has recorded a checkpoint of the run in its snapshot (a checkpoint
    uploaded but not yet recorded would not be resumed from)."""
    try:
        with s3.fs().open_input_file(f"{BUCKET}/{run}/checkpoint_manager_snapshot.json") as f:
            return '"checkpoint_dir_name"' in f.read().decode()
    except OSError:
        return False


CATALOG_SPEC = """
input: s3://{bucket}/catalog/
style: [s3://{bucket}/art/the_scream.jpg]
out: s3://{bucket}/styled
size: 48
style_size: 64
format: jpeg
actor_resources: {{stylegrid_worker: 1}}
tracking_uri: sqlite:///{db}
"""


def read_manifest_from(s3: S3, prefix: str):
    import pandas as pd
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs = s3.fs()
    parts = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}/manifest", allow_not_found=True))
    tables = [pq.read_table(p.path, filesystem=fs) for p in sorted(parts, key=lambda i: i.path)]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables else pd.DataFrame()


def test_catalog_from_s3_to_s3_on_pinned_actors(cluster, s3, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    photos = ["tubingen.jpg", "chelsea.jpg", "coffee.jpg"]
    upload(s3, {f"catalog/{n}": (SAMPLES / "content" / n).read_bytes() for n in photos})
    upload(
        s3,
        {
            "catalog/sub/broken.jpg": b"not a jpeg",
            "art/the_scream.jpg": (SAMPLES / "style" / "the_scream.jpg").read_bytes(),
        },
    )
    spec = tmp_path / "catalog.yaml"
    spec.write_text(CATALOG_SPEC.format(bucket=BUCKET, db=tmp_path / "catalog.db"))
    status, logs = wait_for(cluster, submit(cluster, ["stylize-catalog", str(spec)]), 600)
    assert status == "FAILED" and "1 failed" in logs, logs[-3000:]  # exit 3: an image failed

    rows = read_manifest_from(s3, "styled")
    assert len(rows) == 4 and sorted(rows.status) == ["error", "ok", "ok", "ok"], rows
    bad = rows[rows.status == "error"].iloc[0]
    assert bad.source == f"s3://{BUCKET}/catalog/sub/broken.jpg" and "not" in bad.error.lower()
    fs = s3.fs()
    for output in rows[rows.status == "ok"].output:  # every image written whole, in S3
        assert output.startswith(f"s3://{BUCKET}/styled/images/") and output.endswith(".jpg")
        with fs.open_input_file(output.removeprefix("s3://")) as f:
            from PIL import Image

            assert max(Image.open(f).size) == 48
    client = MlflowClient(f"sqlite:///{tmp_path / 'catalog.db'}")
    run = client.search_runs([client.get_experiment_by_name("stylize-catalog").experiment_id])[0]
    assert run.data.metrics["images_ok"] == 3 and run.data.params["actor_resources"]
    stylizers = [a for a in cluster.actors() if "CatalogStylizer" in a.get("class_name", "")]
    assert len(stylizers) == 2 and all(
        a["required_resources"].get("stylegrid_worker") == 1 for a in stylizers
    )
    assert {a["node_id"] for a in stylizers} == set(cluster.worker_node_ids())  # one per worker node

    # what a re-run reads from the store: the three done pairs, not the broken one (tried again)
    from stylegrid.orchestrator.catalog.manifest import done_pairs

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    done = done_pairs(f"s3://{BUCKET}/styled")
    style = f"s3://{BUCKET}/art/the_scream.jpg"
    assert done == {(f"s3://{BUCKET}/catalog/{n}", style) for n in photos}


def test_video_segments_spread_over_the_worker_nodes(cluster, s3, tmp_path):
    """A clip in S3, stylized by a job submitted to the cluster: its segments run as Ray tasks on
    both worker nodes, and the video keeps the source's timestamps and audio."""
    from helpers import make_clip
    from stylegrid.orchestrator.video.clips import clip_timestamps

    source = make_clip(tmp_path / "pan.mp4", frames=24, size=64)
    upload(
        s3,
        {
            "clips/pan.mp4": source.read_bytes(),
            "art/the_scream.jpg": (SAMPLES / "style" / "the_scream.jpg").read_bytes(),
        },
    )
    out = tmp_path / "styled"
    args = ["stylize-video", f"s3://{BUCKET}/clips/pan.mp4", "--style", f"s3://{BUCKET}/art/the_scream.jpg",
            "-o", str(out), "--size", "64", "--style-size", "64", "--segment-frames", "6", "--overlap", "2", "-q"]  # fmt: skip
    status, logs = wait_for(cluster, submit(cluster, args), 600)
    assert status == "SUCCEEDED", logs[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    nodes = {s["node"] for s in manifest["segments"]}
    assert len(manifest["segments"]) == 4 and nodes == set(cluster.worker_node_ids()), manifest["segments"]
    times, audio = clip_timestamps(out / "pan.mp4")
    assert times == pytest.approx(clip_timestamps(source)[0], abs=1e-3) and audio


TRAIN_SPEC = """
name: tiny
content: [s3://{bucket}/photos/]
style: [s3://{bucket}/paintings/]
storage: s3://{bucket}/checkpoints
steps: 24
batch_size: 2
image_size: 48
crop: 32
lr: 0.001
num_workers: 2
worker_resources: {{stylegrid_worker: 1}}
max_failures: 3
log_every: 1
sample_every: 8
checkpoint_every: 8
keep_checkpoints: 2
"""


def test_training_from_s3_survives_a_lost_worker_node(cluster, s3, tmp_path):
    from mlflow.tracking import MlflowClient

    photos = ["tubingen.jpg", "chelsea.jpg", "coffee.jpg"]
    upload(s3, {f"photos/{n}": (SAMPLES / "content" / n).read_bytes() for n in photos})
    upload(s3, {"photos/broken.jpg": b"not a jpeg"})
    upload(
        s3,
        {
            f"paintings/{n}": (SAMPLES / "style" / n).read_bytes()
            for n in ("the_scream.jpg", "starry_night.jpg")
        },
    )
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TRAIN_SPEC.format(bucket=BUCKET))
    out = tmp_path / "out"
    job_id = submit(cluster, ["train-adain", str(spec), "--output", str(out)])
    deadline = time.monotonic() + 600
    while not registered_checkpoint(s3, "checkpoints/tiny"):  # Ray Train holds a checkpoint in S3
        assert cluster.job_status(job_id) in ("PENDING", "RUNNING"), cluster.job_logs(job_id)[-3000:]
        assert time.monotonic() < deadline, "no checkpoint in S3 after 10 minutes"
        time.sleep(1)
    cluster.kill_worker("b")  # a training worker's node is lost
    cluster.add_worker("c")  # and replaced, as an autoscaler would
    status, output = wait_for(cluster, job_id, 600)
    assert status == "SUCCEEDED", output[-4000:]

    # the run resumed from a checkpoint in S3, and finished
    assert checkpoint_steps(s3, "checkpoints")[-1] == 24
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train-adain/tiny").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    resumed = [m.value for m in client.get_metric_history(run_id, "resumed_from_step")]
    assert resumed and min(resumed) >= 8, resumed
    assert {m.step for m in client.get_metric_history(run_id, "loss")} == set(range(1, 25))
    assert json.loads((out / "decoder.json").read_text())["steps"] == 24
    logged = json.loads((out / "train_state.json").read_text())["model"]  # the run's MLflow model
    assert logged["step"] == 24 and logged["uri"].startswith("models:/")
    assert "skipping" in output and "broken.jpg" in output  # the bad file was reported, not fatal

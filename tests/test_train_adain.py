"""`stylegrid train-adain`: a real Ray Train run (2 CPU workers) on tiny crops, exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SAMPLES

from algorithms.adain import AdaINParams, stylize_batch
from orchestrator.spec import SpecError
from orchestrator.train import learning_rate
from orchestrator.train_spec import load_train_spec

SPEC = """
name: tiny
content: [{content}]
style: [{style}]
steps: 20
batch_size: 4
image_size: 48
crop: 32
lr: 0.001
num_workers: 2
cpus_per_worker: 0.5  # both workers fit in one CPU of the suite's shared 2-CPU head: no wait for the other
log_every: 1
sample_every: 10
checkpoint_every: 10
"""


def train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", "train-adain", *args, "--quiet"],
        capture_output=True, text=True, cwd=REPO, timeout=900,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def test_learning_rate_is_the_inverse_time_decay():
    assert learning_rate(0, 1e-4, 5e-5) == 1e-4
    assert learning_rate(20000, 1e-4, 5e-5) == pytest.approx(5e-5)


def test_spec_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text(SPEC.format(content=SAMPLES / "content", style=SAMPLES / "style") + "crops: 3\n")
    with pytest.raises(SpecError, match=r"t.yaml: crops: unknown field"):
        load_train_spec(bad)
    bad.write_text(
        SPEC.format(content=SAMPLES / "content", style=SAMPLES / "style").replace("crop: 32", "crop: 64")
    )
    with pytest.raises(SpecError, match="crop"):
        load_train_spec(bad)


@pytest.mark.slow
def test_ray_train_lowers_the_loss_and_exports(tmp_path):
    from mlflow.tracking import MlflowClient

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC.format(content=SAMPLES / "content", style=SAMPLES / "style"))
    out = tmp_path / "out"
    # (a training resumed from its checkpoints: tests/test_multinode.py, after a lost node)
    trained = train_cli(str(spec), "--output", str(out), "--export", str(tmp_path / "shipped.pth"))
    assert trained.returncode == 0, trained.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("train-adain/tiny").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, 21))
    losses = [m.value for m in sorted(history, key=lambda m: m.step)]
    # the median of the last 5: one step's loss can spike on an odd crop (a nearly flat patch)
    assert sorted(losses[-5:])[2] < 0.5 * losses[0], losses
    samples = [a.path for a in client.list_artifacts(runs[0].info.run_id, "samples")]
    assert samples == ["samples/samples_step0000010.png", "samples/samples_step0000020.png"]

    record = json.loads((out / "decoder.json").read_text())
    assert record["encoder"] == "caffe" and record["steps"] == 20
    shipped = json.loads((tmp_path / "shipped.json").read_text())
    assert shipped["dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in torch.load(tmp_path / "shipped.pth").values())

    # checkpoint round trip: the exported file and the newest checkpoint decode identically
    ckpt = max((out / "ray_train").glob("**/state.json"), key=lambda p: json.loads(p.read_text())["step"])
    (ckpt.parent / "decoder.json").write_text(json.dumps({"encoder": "caffe"}))
    contents = torch.rand(2, 3, 32, 40)
    styles = [torch.rand(1, 3, 32, 32)]
    a = stylize_batch(contents, styles, AdaINParams(decoder=str(out / "decoder.pth"), precision="fp32"))
    b = stylize_batch(
        contents, styles, AdaINParams(decoder=str(ckpt.parent / "decoder.pth"), precision="fp32")
    )
    assert torch.equal(a, b)

    # the decoder is the run's MLflow model too (the same convention as train-johnson), and a
    # model URI as decoder= gives the exported decoder
    from orchestrator.models import localize, resolve_locations

    logged = json.loads((out / "train_state.json").read_text())["model"]
    assert logged["step"] == 20 and logged["uri"].startswith("models:/m-")
    params = AdaINParams(decoder=logged["uri"], precision="fp32")
    local = localize(params, resolve_locations([logged["uri"]], f"sqlite:///{out / 'mlflow.db'}"))
    assert torch.equal(stylize_batch(contents, styles, local), a)


def test_the_image_pool_streams_one_pass_then_draws_from_memory_and_reports_bad_files_once():
    import random

    from orchestrator.train_data import ImagePool

    good = (SAMPLES / "content" / "tubingen.jpg").read_bytes()
    passes, bad = [], []

    def epochs():
        passes.append(1)
        return iter([("broken.jpg", b"not a jpeg"), ("a.jpg", good), ("b.jpg", good)])

    pool = ImagePool("content", epochs, 48, random.Random(0), lambda name, why: bad.append(name))
    sizes = {min(pool.draw().size) for _ in range(20)}
    assert sizes == {48} and bad == ["broken.jpg"]
    assert len(passes) == 1 and pool.complete and len(pool.cache) == 2  # read once, then from memory

    small = ImagePool("content", epochs, 48, random.Random(0), keep=1)  # more than it keeps: it streams
    [small.draw() for _ in range(6)]
    assert not small.complete and len(small.cache) == 1

    empty = ImagePool("style", lambda: iter([("x.jpg", b"no")]), 48, random.Random(0))
    with pytest.raises(RuntimeError, match="no readable style images"):
        empty.draw()

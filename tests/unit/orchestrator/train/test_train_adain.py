"""`stylegrid train-adain`: its spec, learning rate and image pool. A real AdaIN training on Ray Train
(2 workers, a lost node, checkpoints in S3, the MLflow model) is `tests/system/test_multinode.py`'s; the
same driver trains, exports and registers the fast network in `tests/system/test_johnson.py`."""

from __future__ import annotations

import pytest
from conftest import SAMPLES
from stylegrid.orchestrator.specs.loading import SpecError
from stylegrid.orchestrator.specs.train import load_train_spec
from stylegrid.orchestrator.train.loop import learning_rate

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


def test_the_image_pool_streams_one_pass_then_draws_from_memory_and_reports_bad_files_once():
    import random

    from stylegrid.orchestrator.train.data import ImagePool

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

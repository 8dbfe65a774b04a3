"""The held-out part of a training corpus: the split rule, the validation batch, the record of the
data in a model's .json, and the experiment files that keep the held-out pairs unseen."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO
from stylegrid.orchestrator.specs.loading import SpecError, resolve_images
from stylegrid.orchestrator.specs.sweep import load_spec
from stylegrid.orchestrator.specs.train import AdaINTrainSpec, load_train_spec
from stylegrid.orchestrator.train.held_out import Validation, data_record, split_held_out, validation_batch
from stylegrid.orchestrator.train.recipes import RECIPES

EXPERIMENTS = REPO / "experiments"
SAMPLES = REPO / "samples"


def test_an_image_is_held_out_by_the_first_hex_digits_of_its_bytes_digest():
    digests = {"a.jpg": "0f12", "b.jpg": "1abc", "c.jpg": "2abc", "d.jpg": "ffff"}
    train, held = split_held_out(list(digests), ["0", "1"], digests.__getitem__)
    assert (train, held) == (["c.jpg", "d.jpg"], ["a.jpg", "b.jpg"])
    assert split_held_out(list(digests), [], digests.__getitem__) == (list(digests), [])


def test_the_split_follows_the_bytes_not_the_name(tmp_path):
    image = (SAMPLES / "content" / "chelsea.jpg").read_bytes()
    prefix = hashlib.sha256(image).hexdigest()[:2]
    for name in ("a.jpg", "renamed.jpg"):
        (tmp_path / name).write_bytes(image)
    (tmp_path / "other.jpg").write_bytes((SAMPLES / "content" / "china.jpg").read_bytes())
    files = sorted(str(p) for p in tmp_path.iterdir())
    train, held = split_held_out(files, [prefix])
    assert [Path(p).name for p in held] == ["a.jpg", "renamed.jpg"] and [Path(p).name for p in train] == [
        "other.jpg"
    ]


def test_held_out_prefixes_must_be_hex(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("name: t\ncontent: [a/]\nstyle: [b/]\nheld_out_sha256: ['0g']\n")
    with pytest.raises(SpecError, match=r"t.yaml.*held_out_sha256.*hex digits"):
        load_train_spec(spec)


def test_the_validation_batch_is_the_centre_crops_and_the_same_every_time():
    images = [(str(p), p.read_bytes()) for p in sorted((SAMPLES / "content").glob("*.jpg"))[:3]]
    batch = validation_batch(images, 48, 32)
    assert batch.shape == (3, 3, 32, 32) and 0 <= float(batch.min()) and float(batch.max()) <= 1
    assert torch.equal(batch, validation_batch(images, 48, 32))


def test_the_validation_loss_runs_the_recipe_without_gradients_and_leaves_the_mode():
    seen = {}

    class Recipe:
        def step(self, task, model, content, style, rng, spec, precision):
            seen["grad"] = torch.is_grad_enabled()
            seen["training"] = model.training
            seen["pairs"] = (content.shape[0], None if style is None else style.shape[0])
            out = model(content).mean()
            return type("R", (), {"total": out, "terms": {"content": 1.0, "style": 2.0}})()

    model = torch.nn.Conv2d(3, 3, 1)
    validation = Validation(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8))
    losses = validation.losses(Recipe(), None, model, None, "fp32")
    assert seen == {"grad": False, "training": False, "pairs": (4, 4)} and model.training
    assert (
        set(losses) == {"val_loss", "val_content_loss", "val_style_loss"} and losses["val_style_loss"] == 2.0
    )


def test_the_data_record_names_the_corpus_version_and_refuses_a_missing_provenance(tmp_path):
    provenance = tmp_path / "provenance.csv"
    provenance.write_text("file,kind\nphotos/a.jpg,photo\n")
    spec_path = tmp_path / "t.yaml"
    spec = AdaINTrainSpec(
        name="t", content=["a/"], style=["b/"], held_out_sha256=["0"], provenance="provenance.csv"
    )
    record = data_record(spec, spec_path, ["x", "y"], ["z"], ["h"], [])
    assert record["corpus_sha256"] == hashlib.sha256(provenance.read_bytes()).hexdigest()
    assert (record["content_images"], record["style_images"], record["held_out_content_images"]) == (2, 1, 1)
    gone = spec.model_copy(update={"provenance": "gone.csv"})
    with pytest.raises(SpecError, match=r"t.yaml: provenance 'gone.csv': cannot read it"):
        data_record(gone, spec_path, [], [], [], [])


def _images(spec_file: Path, field: str) -> list[Path]:
    spec = load_spec(spec_file)
    return resolve_images(getattr(spec, field), spec_file.parent, field, spec_file)


CORPUS = REPO.parent / "shared" / "data" / "train"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the training corpus is not next to this checkout")
def test_no_shipped_model_and_no_default_sweep_saw_the_held_out_pairs():
    """experiments/held_out.yaml judges the defaults and the shipped networks on images that the
    training specs hold out and that no sweep choosing a default used."""
    rules = set()
    for kind in RECIPES:
        path = EXPERIMENTS / f"train_{kind.replace('-', '_')}_default.yaml"
        rules.add(tuple(load_train_spec(path, RECIPES[kind].spec_type).held_out_sha256))
    (rule,) = rules  # every shipped network holds out the same images
    held_out = yaml.safe_load((EXPERIMENTS / "held_out.yaml").read_text())
    pictures = [(EXPERIMENTS / p).resolve() for p in held_out["content"] + held_out["style"]]
    own = {"starry_night", "the_scream", "woman_with_hat", "shipwreck"}  # the fast network's paintings
    for p in pictures:
        if p.stem not in own:
            assert hashlib.sha256(p.read_bytes()).hexdigest().startswith(rule), f"{p.name} is not held out"
    tuned = [
        p
        for f in sorted(EXPERIMENTS.glob("tune_*.yaml"))
        for kind in ("content", "style")
        for p in _images(f, kind)
    ]
    assert tuned, "no sweep spec that chose a default"
    unseen = {p.name for p in pictures if p.stem not in own}
    assert not unseen & {p.name for p in tuned}
    for p in (p for p in tuned if CORPUS.resolve() in p.resolve().parents):  # the corpus's, not the samples
        assert not hashlib.sha256(p.read_bytes()).hexdigest().startswith(rule), f"{p.name} is held out"

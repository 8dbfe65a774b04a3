"""Fast style networks (algorithms/feedforward/johnson/algorithm.py, style_network.py): the network, its files and styles, the perceptual
loss, the shipped network, and `stylegrid train-johnson` end to end through MLflow's registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SAMPLES
from stylegrid.algorithms.feedforward.johnson.algorithm import (
    DEFAULT_NETWORK,
    STYLE_LAYERS,
    JohnsonParams,
    parse_style,
    stylize,
    stylize_batch,
)
from stylegrid.algorithms.feedforward.johnson.network import (
    ConditionalInstanceNorm,
    load_network,
    network_record,
    new_network,
    one_hot,
    perceptual_losses,
    style_grams,
)
from stylegrid.algorithms.shared.vgg import WeightsUnavailable, get_encoder
from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor
from stylegrid.orchestrator.specs.loading import SpecError
from stylegrid.orchestrator.tracking.model_uris import mlflow_at

DATA = REPO / "tests" / "data"
PAINTINGS = ["starry_night", "the_scream", "woman_with_hat", "shipwreck"]
TUBINGEN = SAMPLES / "content" / "tubingen.jpg"
SCREAM = SAMPLES / "style" / "the_scream.jpg"


def painting(name: str, size: int = 64) -> torch.Tensor:
    return load_image(SAMPLES / "style" / f"{name}.jpg", max_side=size)


def write_network(folder, names=("starry_night", "the_scream"), seed=0, width=8, blocks=1):
    """A small random network with a real record (its styles' thumbnails from the paintings)."""
    net = new_network(len(names), seed, width, blocks)
    with torch.no_grad():  # distinct per-style parameters, so that styles give different outputs
        for m in net.modules():
            if isinstance(m, ConditionalInstanceNorm):
                m.scale.normal_(1.0, 0.5)
                m.shift.normal_(0.0, 0.5)
    path = folder / "net.pth"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    record = network_record([(n, f"{n}.jpg", painting(n, 96)) for n in names], width, blocks)
    path.with_suffix(".json").write_text(json.dumps(record))
    load_network.cache_clear()
    return path


def test_the_network_up_samples_by_resize_then_convolution_and_takes_any_size(tmp_path):
    net = new_network(3, 0)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())  # no checkerboard
    assert sum(p.numel() for p in net.parameters()) < 2_000_000  # Johnson et al.'s 1.7 M weights
    path = write_network(tmp_path)
    params = JohnsonParams(model=str(path), style="starry_night", precision="fp32")
    for h, w in ((33, 47), (64, 64), (5, 9)):  # padded to a multiple of 4, cropped back
        out = stylize_batch(torch.rand(2, 3, h, w), [], params)
        assert out.shape == (2, 3, h, w) and 0 <= out.min() and out.max() <= 1


def test_one_hot_weights_select_a_style_and_fractions_interpolate_its_parameters(tmp_path):
    path = write_network(tmp_path)
    net, _ = load_network(str(path), "cpu")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = net(x, one_hot(torch.tensor([0]), 2)), net(x, one_hot(torch.tensor([1]), 2))
        mixed = net(x, torch.tensor([[0.3, 0.7]]))
        # the same blend built by hand: every conditional norm's tables interpolated into style 0
        for m in net.modules():
            if isinstance(m, ConditionalInstanceNorm):
                m.scale[0] = 0.3 * m.scale[0] + 0.7 * m.scale[1]
                m.shift[0] = 0.3 * m.shift[0] + 0.7 * m.shift[1]
        by_hand = net(x, one_hot(torch.tensor([0]), 2))
    load_network.cache_clear()  # the network above was changed in place
    assert (a - b).abs().mean() > 0.01  # the styles differ
    assert torch.allclose(mixed, by_hand, atol=1e-5)
    params = JohnsonParams(model=str(path), style="starry_night:0.3,the_scream:0.7", precision="fp32")
    assert torch.allclose(stylize_batch(x, [], params), mixed.clamp(0, 1), atol=1e-5)


def test_style_names_indices_and_blends():
    names = ("starry_night", "the_scream", "shipwreck")
    assert parse_style("the_scream", names) == [0, 1, 0]
    assert parse_style("2", names) == [0, 0, 1]
    assert parse_style("starry_night:1, shipwreck:3", names) == [0.25, 0, 0.75]
    with pytest.raises(ValueError, match="not in this network; its styles: starry_night, the_scream"):
        parse_style("wave", names)
    with pytest.raises(ValueError, match="must be a number"):
        parse_style("the_scream:lots", names)
    with pytest.raises(ValueError, match="positive sum"):
        parse_style("the_scream:0", names)


def test_a_style_image_is_recognised_at_any_size_and_another_painting_is_refused(tmp_path):
    path = write_network(tmp_path)
    fixed = JohnsonParams(model=str(path), style="the_scream", precision="fp32")
    auto = JohnsonParams(model=str(path), precision="fp32")
    x = torch.rand(1, 3, 32, 32)
    for size in (48, 256):  # sweeps and catalogs give the style at their own style_size
        assert torch.equal(
            stylize_batch(x, [painting("the_scream", size)], auto), stylize_batch(x, [], fixed)
        )
    blend = stylize_batch(x, [painting("starry_night"), painting("the_scream")], auto, style_weights=[1, 3])
    by_name = JohnsonParams(model=str(path), style="starry_night:1,the_scream:3", precision="fp32")
    assert torch.allclose(blend, stylize_batch(x, [], by_name))
    with pytest.raises(ValueError, match=r"none of the styles of .*net.pth \(starry_night, the_scream\)"):
        stylize_batch(x, [painting("shipwreck")], auto)


def test_bad_network_files_are_refused_naming_the_file(tmp_path):
    path = write_network(tmp_path / "good")
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(WeightsUnavailable, match="no such fast style network file"):
        stylize_batch(x, [], JohnsonParams(model=str(tmp_path / "none.pth"), style="0"))
    lonely = tmp_path / "lonely.pth"
    lonely.write_bytes(path.read_bytes())
    with pytest.raises(WeightsUnavailable, match=r"lonely.json: missing"):
        stylize_batch(x, [], JohnsonParams(model=str(lonely), style="0"))
    wrong = tmp_path / "wrong.pth"
    torch.save(new_network(2, 0, width=16, blocks=1).state_dict(), wrong)  # the record says width 8
    wrong.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(WeightsUnavailable, match="wrong.pth: does not match the network its .json describes"):
        stylize_batch(x, [], JohnsonParams(model=str(wrong), style="0"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not torch")
    garbage.with_suffix(".json").write_text("{}")
    with pytest.raises(WeightsUnavailable, match="garbage.json: not a stylegrid network record"):
        stylize_batch(x, [], JohnsonParams(model=str(garbage), style="0"))
    with pytest.raises(WeightsUnavailable, match="resolved by the orchestrator"):
        stylize_batch(x, [], JohnsonParams(model="models:/paintings/1", style="0"))


def test_the_perceptual_loss_trains_a_network_towards_its_styles():
    torch.manual_seed(0)
    encoder = get_encoder(STYLE_LAYERS)
    styles = [painting("starry_night", 48), painting("the_scream", 48)]
    grams = style_grams(encoder, styles, STYLE_LAYERS, "fp32")
    net = new_network(2, 0, width=8, blocks=1)
    opt = torch.optim.Adam(net.parameters(), 1e-3)  # the papers' rate
    content = load_image(SAMPLES / "content" / "chelsea.jpg", max_side=48)[..., :32, :32].repeat(2, 1, 1, 1)
    index = torch.tensor([0, 1])
    history = []
    for _ in range(25):
        losses = perceptual_losses(
            encoder, net, content, index, grams, content_layer="relu2_2", style_layers=STYLE_LAYERS,
            content_weight=1.0, style_weight=5.0, tv_weight=1.0, precision="fp32",
        )  # fmt: skip
        opt.zero_grad()
        losses.total.backward()
        opt.step()
        history.append(float(losses.style))
    assert min(history[-5:]) < 0.6 * history[0], history
    assert losses.output.shape == content.shape and not losses.output.requires_grad


@pytest.mark.skipif(not DEFAULT_NETWORK.is_file(), reason="the shipped network is not in this checkout")
def test_the_shipped_network_holds_four_paintings_and_each_output_is_nearest_its_own():
    from stylegrid.algorithms.shared.losses import gram_matrix, relative_squared_error

    assert DEFAULT_NETWORK.stat().st_size <= 10 * 2**20
    record = json.loads(DEFAULT_NETWORK.with_suffix(".json").read_text())
    assert [s["name"] for s in record["styles"]] == PAINTINGS and record["dtype"] == "float16"
    content = load_image(SAMPLES / "content" / "tubingen.jpg", max_side=128)  # a photo it never saw
    encoder = get_encoder(STYLE_LAYERS)
    grams = style_grams(encoder, [painting(n, 256) for n in PAINTINGS], STYLE_LAYERS, "fp32")
    for i, name in enumerate(PAINTINGS):
        result = stylize(content, [painting(name, 256)], JohnsonParams(precision="fp32"))
        assert (result.image - content).abs().mean() > 0.05  # not the photo
        feats = encoder(result.image, STYLE_LAYERS)
        distance = [
            sum(float(relative_squared_error(gram_matrix(feats[n])[0], grams[n][j])) for n in STYLE_LAYERS)
            for j in range(len(PAINTINGS))
        ]
        assert min(range(len(PAINTINGS)), key=distance.__getitem__) == i, (name, distance)
        assert all(v == v for v in result.final_losses.values())


TINY = """
name: tiny
content: [{samples}/content/]
style: [{samples}/style/starry_night.jpg, {samples}/style/the_scream.jpg]
steps: 4
batch_size: 4
image_size: 48
crop: 32
style_size: 64
width: 8
blocks: 1
num_workers: 2
cpus_per_worker: 0.5
log_every: 1
sample_every: 2
checkpoint_every: 2
held_out_sha256: ["07c5a8"]       # chelsea.jpg: the validation loss's photo, out of training
validate_every: 2
register_as: tiny
"""


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stylegrid", *args], capture_output=True, text=True, cwd=REPO,
        timeout=900, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )  # fmt: skip


@pytest.mark.long
@pytest.mark.slow
def test_train_johnson_logs_a_registered_model_that_run_sweeps_and_catalogs_use(tmp_path, monkeypatch):
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient
    from stylegrid.orchestrator.catalog.driver import stylize_catalog
    from stylegrid.orchestrator.catalog.manifest import read_manifest
    from stylegrid.orchestrator.cli.main import main
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.specs.catalog import CatalogSpec
    from stylegrid.orchestrator.sweep.driver import run_sweep
    from stylegrid.orchestrator.train.driver import train

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(samples=SAMPLES))
    out = tmp_path / "out"
    shipped = tmp_path / "shipped.pth"
    trained = cli("train-johnson", str(spec), "--output", str(out), "--export", str(shipped), "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(shipped.with_suffix(".json").read_text())["dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in torch.load(shipped).values() if v.is_floating_point())
    store = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("train-johnson/tiny").experiment_id])
    assert run.info.status == "FINISHED"
    assert {"loss", "content_loss", "style_loss", "tv_loss", "lr"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    held_out = client.get_metric_history(run.info.run_id, "val_loss")  # on the held-out chelsea
    assert sorted(m.step for m in held_out) == [2, 4] and all(m.value > 0 for m in held_out)
    assert {"val_content_loss", "val_style_loss", "val_tv_loss"} <= set(run.data.metrics)
    artifacts = {
        a.path
        for folder in ("samples", "checkpoints")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {"samples/samples_step0000002.png", "samples/samples_step0000004.png",
            "checkpoints/network_step0000004.pth"} <= artifacts  # fmt: skip
    assert [str(v.version) for v in client.search_model_versions("name='tiny'")] == ["1"]
    record = json.loads((out / "network.json").read_text())
    assert [s["name"] for s in record["styles"]] == ["starry_night", "the_scream"] and record["steps"] == 4
    assert record["data"]["content_images"] == 6 and record["data"]["held_out_content_images"] == 1
    assert record["data"]["held_out_sha256"] == ["07c5a8"] and record["train_minutes"] > 0

    assert train(str(spec), kind="johnson", output=str(out), quiet=True) == out / "network.pth"
    assert len(client.search_model_versions("name='tiny'")) == 1  # run again when done: nothing new

    with mlflow_at(store):  # the MLflow model loads as a module with MLflow's own API
        module = mlflow.pytorch.load_model("models:/tiny/1")
    x = torch.rand(1, 3, 32, 32)
    mine, _ = load_network(str(out / "network.pth"), "cpu")
    assert torch.allclose(module(x, torch.tensor([[0.0, 1.0]])), mine(x, torch.tensor([[0.0, 1.0]])))

    png = tmp_path / "run.png"  # `stylegrid run` in this process (its entry point, argv and all)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    ran = main(["run", "--algorithm", "johnson", "--content", str(TUBINGEN), "--style", str(SCREAM),
                "--set", "model=models:/tiny/1", "--size", "40", "--out", str(png), "--quiet"])  # fmt: skip
    assert ran == 0
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    content = to_tensor(resize_to(read_image(TUBINGEN), 40))
    direct = stylize(content, [painting("the_scream", 512)], JohnsonParams(model=str(out / "network.pth")))
    assert torch.allclose(load_image(png), direct.image, atol=1 / 255 + 1e-6)

    sweep = tmp_path / "sweep.yaml"
    algorithms = [{"name": "johnson", "params": {"model": "models:/tiny/1"}}]
    if DEFAULT_NETWORK.is_file():
        algorithms.append({"name": "johnson"})  # the shipped network, beside the fresh one
    # at 384 px and a 64 MB budget (the spec's field, given to every algorithm that has the
    # parameter) each network runs in 2 x 3 tiles with the whole image's statistics
    sweep.write_text(json.dumps({
        "name": "fast", "content": [str(TUBINGEN)], "style": [str(SCREAM)], "algorithms": algorithms,
        "size": 384, "style_size": 64, "memory_budget": "64MB", "tracking_uri": store,
        "resources": {"num_cpus": 1},
    }))  # fmt: skip
    summary = run_sweep(str(sweep), output=str(tmp_path / "sweep"), quiet=True)
    assert (summary.ok, summary.failed) == (len(algorithms), 0), summary
    rows = read_results(tmp_path / "sweep").to_pandas()
    assert "models:/tiny/1" in set(rows["param.model"])  # the row keeps the URI the user wrote
    assert rows["loss_style"].notna().all() and (rows["loss_style"] > 0).all()
    assert set(rows["param.memory_budget"]) == {"64MB"}
    assert set(rows["tiles"]) == {"2x3 tiles of 160 px, halo 64, overlap 32 (memory_budget 64 MB)"}
    tagged = MlflowClient(store).search_runs(
        [MlflowClient(store).get_experiment_by_name("fast").experiment_id]
    )
    assert {
        r.data.tags.get("stylegrid.tiles") for r in tagged if r.data.tags.get("stylegrid.kind") != "sweep"
    } == set(rows["tiles"])

    bad = sweep.read_text().replace("models:/tiny/1", "models:/tiny/7")
    sweep.write_text(bad)
    with pytest.raises(SpecError, match=r"sweep.yaml: models:/tiny/7: not found in the MLflow store"):
        run_sweep(str(sweep), output=str(tmp_path / "sweep2"), quiet=True)

    # at 256 px and a 32 MB budget the photo is done in tiles, and its row says how
    catalog = CatalogSpec(input=str(SAMPLES / "content" / "tub*.jpg"), style=[str(SCREAM)], out=str(tmp_path / "cat"),
                          algorithm="johnson", params={"model": "models:/tiny/1"}, size=256,
                          memory_budget="32MB", tracking_uri=store)  # fmt: skip
    done = stylize_catalog(catalog, quiet=True)
    manifest = read_manifest(tmp_path / "cat")
    assert done.ok == 1 and list(manifest.status) == ["ok"]
    assert list(manifest.tiles) == ["3x4 tiles of 72 px, halo 64, overlap 32 (memory_budget 32 MB)"]


def test_resolving_a_model_uri_leaves_the_tracking_environment_as_it_was(tmp_path, monkeypatch):
    # mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI: a default left behind would send every
    # later sweep of this process (and its subprocesses) to that store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with mlflow_at(f"sqlite:///{tmp_path / 'a.db'}"):
        assert os.environ["MLFLOW_TRACKING_URI"].endswith("a.db")
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'b.db'}")
    with mlflow_at(f"sqlite:///{tmp_path / 'a.db'}"):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("b.db")


def test_a_bad_network_to_start_from_fails_in_the_driver_before_ray(tmp_path):
    """init_network is built once by the driver: a file without its .json, or a network of other
    paintings, is a one-line error naming the spec (exit 1), with no Ray started and nothing trained."""
    lonely = tmp_path / "lonely.pth"
    lonely.write_bytes(DEFAULT_NETWORK.read_bytes())
    spec = tmp_path / "ft.yaml"
    base = (
        f"name: ft\ncontent: [{SAMPLES / 'content'}]\nstyle: [{SAMPLES / 'style' / 'starry_night.jpg'}]\n"
        "steps: 2\nbatch_size: 2\nimage_size: 48\ncrop: 32\nnum_workers: 1\n"
    )
    for start, message in ((lonely, "lonely.json: missing"), (DEFAULT_NETWORK, "are not the spec's")):
        spec.write_text(base + f"init_network: {start}\n")
        done = subprocess.run(
            [sys.executable, "-m", "stylegrid", "train-johnson", str(spec), "-o", str(tmp_path / "out")],
            cwd=REPO, capture_output=True, text=True, timeout=120,
            env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1"},  # a Ray started or joined would fail otherwise
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert "ft.yaml" in done.stderr and message in done.stderr, done.stderr
        assert not (tmp_path / "out" / "train_state.json").exists()


def test_a_model_logged_before_the_stylegrid_namespace_still_loads():
    """Networks logged to MLflow were pickled with the class paths of their time
    (``algorithms.style_network.TransformNet``): they load, as the same classes, and compute what
    they did, to fp32's rounding, which differs between CPUs' kernels (AVX2 / AVX-512)
    (tests/data/legacy_johnson_model was saved by the code before the namespace)."""
    import mlflow.pytorch
    from stylegrid.algorithms.feedforward.johnson.network import TransformNet

    net = mlflow.pytorch.load_model(str(DATA / "legacy_johnson_model"))
    assert type(net) is TransformNet
    io = torch.load(DATA / "legacy_johnson_model_io.pt")
    with torch.no_grad():
        assert torch.allclose(net(io["x"], io["w"]), io["y"], rtol=0, atol=1e-5)

"""WCT (algorithms/feedforward/wct/algorithm.py): the decoders' layouts and files, the per-level transform against its
definition, the shipped decoders on held-out pictures, and `stylegrid train-wct` end to end into
`stylegrid run`."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SAMPLES
from stylegrid.algorithms.feedforward.adain.network import decoder_layout as adain_layout
from stylegrid.algorithms.feedforward.wct.algorithm import stylize, stylize_batch
from stylegrid.algorithms.feedforward.wct.decoders import (
    DEFAULT_DECODERS,
    LEVELS,
    Decoders,
    decoder_layout,
    get_decoders,
)
from stylegrid.algorithms.feedforward.wct.transfer import WCTParams, coloured_target
from stylegrid.algorithms.feedforward.wct.whitening import moments
from stylegrid.algorithms.registry import get_algorithm
from stylegrid.algorithms.shared.vgg import WeightsUnavailable
from stylegrid.orchestrator.images import load_image

TUBINGEN = SAMPLES / "content" / "tubingen.jpg"
SCREAM = SAMPLES / "style" / "the_scream.jpg"


def test_each_level_has_a_decoder_mirroring_vgg_and_relu4_1s_is_the_adain_layout():
    channels = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
    for level in LEVELS:
        block = int(level[4])
        side = 32 // 2 ** (block - 1)
        for width in (1.0, 0.25):
            out = decoder_layout(level, width)(torch.rand(1, channels[level], side, side))
            assert out.shape == (1, 3, 32, 32), (level, width)
    assert str(decoder_layout("relu4_1")) == str(adain_layout())  # module for module
    decoder_layout("relu4_1").load_state_dict(adain_layout().state_dict())
    with pytest.raises(ValueError, match="unknown WCT level 'relu4_2'"):
        decoder_layout("relu4_2")
    with pytest.raises(ValueError, match="levels names a level twice"):
        WCTParams(levels=("relu1_1", "relu1_1"))
    assert WCTParams(levels=("relu1_1", "relu3_1")).levels == ("relu3_1", "relu1_1")  # coarse to fine


def test_the_coloured_target_has_each_items_style_covariance_and_alpha_blends():
    torch.manual_seed(0)
    features = torch.randn(2, 6, 9, 9) * torch.tensor([3.0, 1, 2, 0.5, 1, 4]).view(1, 6, 1, 1) + 1
    style = moments(torch.randn(1, 6, 12, 12) @ torch.randn(12, 12) + 2)
    out = coloured_target(features, [style], [1.0], alpha=1.0)
    for i in range(2):  # each item whitened by its own moments, then coloured to the style's
        m = moments(out[i : i + 1])
        assert torch.allclose(m.cov, style.cov, rtol=1e-4, atol=1e-4)
        assert torch.allclose(m.mean, style.mean, atol=1e-4)
        single = coloured_target(features[i : i + 1], [style], [1.0], alpha=1.0)
        assert torch.allclose(out[i : i + 1], single, atol=1e-5)
    assert torch.equal(coloured_target(features, [style], [1.0], alpha=0.0), features)
    half = coloured_target(features, [style], [1.0], alpha=0.5)
    assert torch.allclose(half, 0.5 * out + 0.5 * features, atol=1e-5)
    # two styles by weight: the coloured features blended (Li et al.'s interpolation)
    other = moments(torch.randn(1, 6, 12, 12) * 2 - 1)
    mixed = coloured_target(features, [style, other], [3.0, 1.0], alpha=1.0)
    alone = coloured_target(features, [other], [1.0], alpha=1.0)
    assert torch.allclose(mixed, 0.75 * out + 0.25 * alone, atol=1e-5)


def test_a_decoders_file_without_its_record_or_of_another_layout_is_refused_naming_it(tmp_path):
    path = tmp_path / "d.pth"
    torch.save(Decoders({"relu1_1": 1.0}).state_dict(), path)
    with pytest.raises(WeightsUnavailable, match=r"d\.pth: no d\.json beside it"):
        get_decoders(str(path), "cpu")
    path.with_suffix(".json").write_text(json.dumps({"encoder": "caffe", "widths": {"relu2_1": 1.0}}))
    with pytest.raises(
        WeightsUnavailable, match=r"d\.pth: not a WCT decoders state dict \(missing scale_relu2_1\)"
    ):
        get_decoders(str(path), "cpu")
    assert get_algorithm("wct").kind == "feedforward"


shipped = pytest.mark.skipif(not DEFAULT_DECODERS.is_file(), reason="no shipped decoders")


@shipped
def test_the_shipped_decoders_give_the_photo_the_paintings_colours_in_one_pass_per_level():
    content = load_image(TUBINGEN, max_side=96)
    style = load_image(SCREAM, max_side=128)
    result = stylize(content, [style], WCTParams(alpha=1.0))
    assert result.image.shape == content.shape and result.evaluations == 1
    assert set(result.history[0].losses) >= {"content.wct.relu4_1", "style.wct.relu1_1", "total"}

    # the result's colour statistics move from the photo's to the painting's
    def colour_stats(t):
        return torch.cat([t.mean((-1, -2)), t.std((-1, -2))]).flatten()

    before = (colour_stats(content) - colour_stats(style)).norm()
    after = (colour_stats(result.image) - colour_stats(style)).norm()
    assert after < 0.5 * before, (before, after)
    # with alpha 0 every level only reconstructs: the photo comes back (the decoders' quality)
    kept = stylize_batch(content, [style], WCTParams(alpha=0.0))
    assert (kept - content).abs().mean() < 0.12  # 0.10 with the shipped decoders at 96 to 256 px
    # a batch is the same as one image at a time
    pair = torch.cat([content, content.flip(-1)])
    batch = stylize_batch(pair, [style], WCTParams(alpha=1.0))
    assert (batch[:1] - result.image).abs().mean() < 2e-3


TINY = """
name: tiny
content: [{samples}/content/]
style: [{samples}/style/]
widths: {{relu2_1: 0.25, relu1_1: 1.0}}
steps: 3
batch_size: 1
image_size: 40
crop: 32
num_workers: 1
log_every: 1
sample_every: 3
checkpoint_every: 3
held_out_sha256: ["07c5a8"]       # chelsea.jpg: the validation loss's photo, out of training
validate_every: 3
validation_images: 1
"""


@pytest.mark.slow
@pytest.mark.long
def test_train_wct_exports_decoders_that_run_uses_and_logs_the_reconstruction_losses(tmp_path, capsys):
    from mlflow.tracking import MlflowClient
    from stylegrid.orchestrator.cli.main import main

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(samples=SAMPLES))
    out, shipped = tmp_path / "out", tmp_path / "shipped" / "wct.pth"
    assert main(["train-wct", str(spec), "-o", str(out), "--export", str(shipped), "--quiet"]) == 0
    record = json.loads(shipped.with_suffix(".json").read_text())
    assert record["widths"] == {"relu2_1": 0.25, "relu1_1": 1.0} and record["dtype"] == "float16"
    assert record["data"]["held_out_content_images"] == 1 and record["steps"] == 3
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("train-wct/tiny").experiment_id])
    assert run.info.status == "FINISHED"
    assert {"loss", "pixel_loss", "feature_loss", "val_pixel_loss", "val_feature_loss"} <= set(
        run.data.metrics
    )
    # the exported decoders stylize through the CLI; a level they do not have is refused by name
    png = tmp_path / "o.png"
    base = ["run", "--algorithm", "wct", "--content", str(TUBINGEN), "--style", str(SCREAM), "--size", "48",
            "--set", f"decoders={shipped}", "-o", str(png), "--quiet"]  # fmt: skip
    assert main([*base, "--set", "levels=[relu2_1, relu1_1]"]) == 0
    assert load_image(png).shape == (1, 3, 36, 48)
    capsys.readouterr()
    assert main(base) == 1
    assert "these decoders invert relu2_1, relu1_1, not relu3_1" in capsys.readouterr().err


@shipped
def test_past_the_memory_budget_every_level_runs_in_tiles_with_the_whole_images_moments():
    from stylegrid.algorithms.registry import get_algorithm

    content = load_image(TUBINGEN, max_side=384)  # 384 x 288 px x 1600 bytes > 150 MB: tiles
    style = load_image(SCREAM, max_side=128)
    params = WCTParams(memory_budget="150MB")
    whole = stylize(content, [style], WCTParams())
    tiled = stylize(content, [style], params)
    assert whole.tiles == "" and tiled.tiles == get_algorithm("wct").tile_layout(params, content.shape, "cpu")
    assert tiled.tiles.startswith("2x2 tiles of 224 px, halo 40")  # relu3_1's context
    assert (
        tiled.image - whole.image
    ).abs().mean() < 0.02  # each tile whitened with the whole image's moments

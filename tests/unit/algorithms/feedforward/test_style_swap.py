"""style_swap (Chen & Schmidt 2016): the swap inverted in one pass by the trained inverse network,
its tiles, its files and the recipe ``stylegrid train-style-swap`` trains it with."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import SAMPLES
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.base import check_loss_names
from stylegrid.algorithms.feedforward.style_swap.algorithm import (
    StyleSwapParams,
    stylize,
    stylize_batch,
    tile_layout,
)
from stylegrid.algorithms.feedforward.style_swap.inverse import (
    LAYER,
    get_inverse,
    inverse_network,
    swapped_features,
)
from stylegrid.algorithms.feedforward.wct.decoders import DEFAULT_DECODERS
from stylegrid.algorithms.shared.vgg import WeightsUnavailable, encode_targets, get_encoder
from stylegrid.orchestrator.images import load_image
from stylegrid.orchestrator.specs.train import StyleSwapTrainSpec
from stylegrid.orchestrator.train.recipes import STYLE_SWAP


@pytest.fixture(scope="module")
def scream():
    return load_image(SAMPLES / "style" / "the_scream.jpg", max_side=64)


def test_the_swap_is_inverted_in_one_pass_and_takes_the_styles_colours(tubingen_64, scream):
    result = stylize(tubingen_64, [scream])
    losses = result.history[0].losses
    check_loss_names(losses)
    assert set(losses) == {"style.swap.relu3_1", "content.swap.relu4_1", "total"} and result.evaluations == 1
    assert result.image.shape == tubingen_64.shape and not result.tiles
    photo, painting, out = (x.mean(dim=(2, 3)) for x in (tubingen_64, scream, result.image))
    assert (out - painting).norm() < 0.5 * (photo - painting).norm()  # the Scream's oranges and blues
    # the network inverts the swap: the result's relu3_1 is nearer the swapped target than the photo's is
    encoder = get_encoder([LAYER])
    photo_feats = encode_targets(encoder, tubingen_64, [LAYER], "fp32")[LAYER]
    bank_feats = encode_targets(encoder, scream, [LAYER], "fp32")[LAYER]
    target = swapped_features(photo_feats, bank_feats)
    dist = (photo_feats - target).pow(2).sum() / target.pow(2).sum()
    assert losses["style.swap.relu3_1"] < 0.8 * float(dist)
    algo = get_algorithm("style_swap")
    assert algo.kind == "feedforward" and not algo.spatial_control and "Chen & Schmidt" in algo.citation


def test_tiles_give_the_one_pass_image_and_a_batch_its_items(tubingen_64, scream):
    photo = load_image(SAMPLES / "content" / "tubingen.jpg", max_side=256)
    whole = stylize_batch(photo, [scream])
    small = StyleSwapParams(memory_budget="50MB")  # one pass would take about 90 MB
    assert tile_layout(small, photo.shape, "cpu").startswith("3x4 tiles")
    tiled = stylize(photo, [scream], small)
    assert tiled.tiles.startswith("3x4 tiles")
    assert (tiled.image - whole).abs().max() < 0.02
    # preserve_color recolours the style per item: each item of a batch as if alone
    other = load_image(SAMPLES / "content" / "chelsea.jpg", max_side=96)[..., :48, :64]
    pair = torch.cat([tubingen_64[..., :48, :64], other])
    kept = StyleSwapParams(preserve_color=True)
    batch = stylize_batch(pair, [scream], kept)
    for i in range(2):
        assert torch.allclose(batch[i : i + 1], stylize_batch(pair[i : i + 1], [scream], kept), atol=1e-4)
    with pytest.raises(ValueError, match="cannot blend styles by weight"):
        stylize_batch(tubingen_64, [scream, scream], style_weights=[1.0, 2.0])


def test_inverse_files_name_what_is_wrong(tmp_path):
    net = get_inverse(str(DEFAULT_DECODERS), "cpu")  # WCT decoders holding relu3_1 serve too
    assert list(net.widths) == [LAYER]
    lone = inverse_network(0.125)
    coarse = tmp_path / "coarse.pth"
    torch.save({k.replace(LAYER, "relu2_1"): v for k, v in lone.state_dict().items()}, coarse)
    coarse.with_suffix(".json").write_text(json.dumps({"widths": {"relu2_1": 0.125}}))
    with pytest.raises(WeightsUnavailable, match=r"coarse.pth: holds decoders for relu2_1, none for relu3_1"):
        get_inverse(str(coarse), "cpu")
    bare = tmp_path / "bare.pth"
    torch.save(lone.state_dict(), bare)
    with pytest.raises(WeightsUnavailable, match="bare.pth: no bare.json beside it"):
        get_inverse(str(bare), "cpu")
    with pytest.raises(WeightsUnavailable, match="nothing.pth: no nothing.json"):
        stylize_batch(torch.rand(1, 3, 32, 32), [torch.rand(1, 3, 32, 32)],
                      StyleSwapParams(inverse=str(tmp_path / "nothing.pth")))  # fmt: skip


def test_the_recipe_trains_on_own_and_swapped_features_and_its_file_loads(tmp_path, tubingen_64, scream):
    spec = StyleSwapTrainSpec(name="t", content=["x"], style=["y"], width=0.5, init_network=str(DEFAULT_DECODERS),
                              crop=32, image_size=32, lr=1e-3)  # fmt: skip
    encoder = STYLE_SWAP.setup(spec, None, torch.device("cpu"), "fp32")
    model = STYLE_SWAP.new_model(spec, None)
    start = get_inverse(str(DEFAULT_DECODERS), "cpu")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), start.state_dict().values(), strict=True)
    )
    content = torch.cat([tubingen_64[..., :32, :32], tubingen_64[..., 16:48, 32:64]])
    style = torch.cat([scream[..., :32, :32], scream[..., 32:64, 16:48]])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(6):
        result = STYLE_SWAP.step(encoder, model, content, style, random.Random(0), spec, "fp32")
        first = first if first is not None else result.terms["feature"]
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
    assert set(result.terms) == {"feature", "tv", "pixel"} and result.terms["feature"] < first
    assert result.grid[2].shape == content.shape  # the sample grid shows the swapped inversions
    # validation without paintings swaps the photos with each other
    assert torch.isfinite(
        STYLE_SWAP.step(encoder, model, content, None, random.Random(0), spec, "fp32").total
    )
    path = tmp_path / "inverse.pth"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(STYLE_SWAP.record(spec, None)))
    loaded = get_inverse(str(path), "cpu")
    assert torch.equal(loaded.levels[LAYER][1].weight, model.levels[LAYER][1].weight)
    wrong = spec.model_copy(update={"width": 1.0})
    with pytest.raises(Exception, match="width 0.5 is not the spec's width 1.0"):
        STYLE_SWAP.new_model(wrong, None)

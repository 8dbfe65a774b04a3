"""style_swap_optimize (Chen & Schmidt 2016, inverted by optimisation): the image reaches its swapped target."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLES
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.base import check_loss_names
from stylegrid.algorithms.optimization.style_swap_optimize import LAYER, StyleSwapOptimizeParams, stylize
from stylegrid.algorithms.shared.vgg import encode_targets, get_encoder
from stylegrid.orchestrator.images import load_image


def test_the_image_moves_to_the_style_swapped_features_and_takes_the_styles_colours(tubingen_64):
    style = load_image(SAMPLES / "style" / "the_scream.jpg", max_side=64)
    result = stylize(tubingen_64, [style], StyleSwapOptimizeParams(steps=12, scales=1))
    first, last = result.history[0].losses, result.history[-1].losses
    check_loss_names(last)
    assert set(last) == {"style.swap.relu3_1", "tv", "range", "total"}
    assert last["style.swap.relu3_1"] < 0.7 * first["style.swap.relu3_1"]
    # the Scream's orange: the mean colour moves from the photo's toward the painting's
    photo, painting, out = (x.mean(dim=(2, 3)) for x in (tubingen_64, style, result.image))
    assert (out - painting).norm() < (photo - painting).norm()
    # and the layout stays the photo's: its relu3_1 is closer to the photo's than the painting's
    encoder = get_encoder([LAYER])
    feats = [encode_targets(encoder, x, [LAYER], "fp32")[LAYER] for x in (tubingen_64, result.image)]
    assert torch.nn.functional.cosine_similarity(feats[0].flatten(), feats[1].flatten(), dim=0) > 0.5


def test_styles_are_one_bank_and_weights_cannot_blend_them(tubingen_64):
    styles = [load_image(SAMPLES / "style" / n, max_side=48) for n in ("the_scream.jpg", "starry_night.jpg")]
    params = StyleSwapOptimizeParams(steps=2, scales=1)
    assert stylize(tubingen_64, styles, params, style_weights=[2.0, 2.0]).image.shape == tubingen_64.shape
    with pytest.raises(ValueError, match="cannot blend styles by weight"):
        stylize(tubingen_64, styles, params, style_weights=[1.0, 3.0])
    with pytest.raises(ValueError, match="style_weight must be positive"):
        StyleSwapOptimizeParams(style_weight=0.0)
    algo = get_algorithm("style_swap_optimize")
    assert algo.kind != "feedforward" and "Chen & Schmidt" in algo.citation
    assert "content_layers" in StyleSwapOptimizeParams().inactive()  # the loop's content loss is off

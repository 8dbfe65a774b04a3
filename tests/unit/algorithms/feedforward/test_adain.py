"""AdaIN (Huang & Belongie 2017): the pure function, the published module layouts, inference."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.base import check_loss_names
from stylegrid.algorithms.feedforward.adain.algorithm import stylize, stylize_batch
from stylegrid.algorithms.feedforward.adain.network import AdaINParams, decoder_layout, published_vgg
from stylegrid.algorithms.optimization.adain_optimize import AdaINOptimParams
from stylegrid.algorithms.optimization.adain_optimize import stylize as optimize_stylize
from stylegrid.algorithms.shared.color import coral
from stylegrid.algorithms.shared.instance_norm import adain, adain_target
from stylegrid.algorithms.shared.losses import mean_std
from stylegrid.algorithms.shared.sizing import pad_to_multiple
from stylegrid.algorithms.shared.vgg import WeightsUnavailable
from torch import nn


def test_adain_output_has_exactly_the_style_mean_and_std_per_channel():
    torch.manual_seed(0)
    content = torch.randn(2, 16, 9, 7) * 3 + 1
    style = torch.rand(2, 16, 5, 11) * 40
    out = adain(content, style)
    out_mean, out_std = mean_std(out, eps=0)
    s_mean, s_std = mean_std(style, eps=0)
    assert torch.allclose(out_mean, s_mean, rtol=1e-5, atol=1e-5)
    assert torch.allclose(out_std, s_std, rtol=1e-4)


def test_adain_target_interpolates_styles_and_alpha_zero_is_the_content():
    torch.manual_seed(1)
    fc = torch.randn(1, 8, 6, 6)
    s1, s2 = mean_std(torch.randn(1, 8, 4, 4) * 2), mean_std(torch.randn(1, 8, 4, 4) + 3)
    assert torch.equal(adain_target(fc, [s1, s2], [1, 1], alpha=0.0), fc)
    mixed = adain_target(fc, [s1, s2], [3, 1], alpha=1.0)
    expected = 0.75 * adain_target(fc, [s1], [1], 1.0) + 0.25 * adain_target(fc, [s2], [1], 1.0)
    assert torch.allclose(mixed, expected, atol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        adain_target(fc, [s1], [0.0], 1.0)


def _indices(net: nn.Sequential, kind: type) -> list[int]:
    return [i for i, m in enumerate(net) if isinstance(m, kind)]


def test_module_layouts_are_the_published_ones():
    dec = decoder_layout()
    assert _indices(dec, nn.Conv2d) == [1, 5, 8, 11, 14, 18, 21, 25, 28]
    assert _indices(dec, nn.Upsample) == [3, 16, 23]
    assert all(isinstance(dec[i - 1], nn.ReflectionPad2d) for i in _indices(dec, nn.Conv2d))
    shapes = [tuple(dec[i].weight.shape) for i in _indices(dec, nn.Conv2d)]
    assert shapes == [(256, 512, 3, 3)] + [(256, 256, 3, 3)] * 3 + [
        (128, 256, 3, 3), (128, 128, 3, 3), (64, 128, 3, 3), (64, 64, 3, 3), (3, 64, 3, 3)
    ]  # fmt: skip
    assert not isinstance(dec[-1], nn.ReLU)
    vgg = published_vgg()
    assert _indices(vgg, nn.Conv2d) == [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
    assert vgg[0].kernel_size == (1, 1) and vgg[30].__class__ is nn.ReLU
    assert all(m.ceil_mode for m in vgg if isinstance(m, nn.MaxPool2d))


@pytest.fixture(scope="module")
def published_files(tmp_path_factory):
    """Synthetic files with exactly the published layouts (the real ones cannot be downloaded here)."""
    d = tmp_path_factory.mktemp("published")
    torch.manual_seed(0)
    torch.save(published_vgg().state_dict(), d / "vgg_normalised.pth")
    torch.save(decoder_layout().state_dict(), d / "decoder.pth")
    return d / "decoder.pth", d / "vgg_normalised.pth"


def test_published_files_load_and_run_at_any_size(published_files):
    decoder, encoder = published_files
    params = AdaINParams(decoder=str(decoder), encoder=str(encoder))
    content, style = torch.rand(1, 3, 37, 50), torch.rand(1, 3, 40, 40)
    result = stylize(content, [style], params)
    assert result.image.shape == content.shape
    assert result.image.min() >= 0 and result.image.max() <= 1
    assert {"content.adain.relu4_1", "style.adain.relu1_1", "style.adain.relu4_1", "total"} <= set(
        result.final_losses
    )
    check_loss_names(result.final_losses)
    assert result.final_losses["total"] == pytest.approx(
        sum(v for k, v in result.final_losses.items() if k != "total")
    )
    assert get_algorithm("adain").kind == "feedforward"


def test_batched_inference_equals_one_image_at_a_time(published_files):
    decoder, encoder = published_files
    params = AdaINParams(decoder=str(decoder), encoder=str(encoder), precision="fp32", alpha=0.7)
    torch.manual_seed(2)
    contents = torch.rand(3, 3, 32, 24)
    styles = [torch.rand(1, 3, 30, 30), torch.rand(1, 3, 20, 28)]
    batch = stylize_batch(contents, styles, params, style_weights=[0.3, 0.7])
    single = torch.cat([stylize_batch(c[None], styles, params, style_weights=[0.3, 0.7]) for c in contents])
    assert torch.allclose(batch, single, atol=1e-5)


def test_bad_weight_files_are_refused_naming_the_file(published_files, tmp_path):
    decoder, encoder = published_files
    wrong = tmp_path / "wrong.pth"
    state = decoder_layout().state_dict()
    state["1.weight"] = torch.zeros(256, 256, 3, 3)
    torch.save(state, wrong)
    text = tmp_path / "text.pth"
    text.write_text("not a torch file")
    cases = [
        (AdaINParams(decoder=str(wrong), encoder=str(encoder)), "wrong.pth: 1.weight has shape"),
        (AdaINParams(decoder=str(text), encoder=str(encoder)), "text.pth: not a readable torch file"),
        (AdaINParams(decoder=str(tmp_path / "none.pth"), encoder=str(encoder)), "none.pth: no such"),
        (
            AdaINParams(decoder=str(decoder), encoder=str(decoder)),
            "vgg_normalised state dict (missing 0.weight)",
        ),
        (AdaINParams(decoder=str(decoder)), "vgg_normalised.pth it was trained against"),
    ]
    for params, message in cases:
        with pytest.raises(WeightsUnavailable, match=re.escape(message)):
            stylize(torch.rand(1, 3, 16, 16), [torch.rand(1, 3, 16, 16)], params)


def test_a_stylegrid_decoder_records_its_encoder(tmp_path):
    path = tmp_path / "mine.pth"
    torch.save(decoder_layout().state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"encoder": "caffe"}))
    out = stylize(torch.rand(1, 3, 24, 24), [torch.rand(1, 3, 24, 24)], AdaINParams(decoder=str(path)))
    assert out.image.shape == (1, 3, 24, 24)
    with pytest.raises(WeightsUnavailable, match="trained against encoder 'caffe'"):
        stylize(
            torch.rand(1, 3, 24, 24),
            [torch.rand(1, 3, 24, 24)],
            AdaINParams(decoder=str(path), encoder="x.pth"),
        )


def test_pad_to_multiple_of_eight():
    assert pad_to_multiple(torch.rand(1, 3, 37, 50), 8).shape[-2:] == (40, 56)
    assert pad_to_multiple(torch.rand(1, 3, 5, 3), 8).shape[-2:] == (8, 8)  # too small to reflect
    x = torch.rand(1, 3, 16, 8)
    assert pad_to_multiple(x, 8) is x


def test_coral_matches_the_colour_mean_and_covariance():
    torch.manual_seed(3)
    source = torch.rand(1, 3, 30, 30) * 0.5
    target = torch.rand(1, 3, 20, 20) * 0.3 + 0.4
    out = coral(source, target).double().reshape(3, -1)
    t = target.double().reshape(3, -1)
    assert torch.allclose(out.mean(1), t.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(out), torch.cov(t), atol=1e-4)


def test_params_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        AdaINParams(alpha=1.5)


@pytest.mark.slow
def test_adain_optimize_needs_no_decoder_and_lowers_its_style_loss(tubingen_64, starry_128):
    result = optimize_stylize(tubingen_64, [starry_128], AdaINOptimParams(steps=30))
    first, last = result.history[0].losses, result.final_losses
    style = [k for k in last if k.startswith("style.")]
    assert style == [
        "style.adain.relu1_1",
        "style.adain.relu2_1",
        "style.adain.relu3_1",
        "style.adain.relu4_1",
    ]
    assert sum(last[k] for k in style) < 0.5 * sum(first[k] for k in style)
    assert "content.adain.relu4_1" in last and "content.relu4_2" not in last
    check_loss_names(last)


def test_the_two_adain_algorithms_take_only_their_own_parameters():
    decoder_fields = {f.name for f in dataclasses.fields(AdaINParams)}
    assert decoder_fields == {"alpha", "decoder", "encoder", "preserve_color", "precision", "memory_budget"}
    assert {"steps", "style_weight", "optimizer"} <= {f.name for f in dataclasses.fields(AdaINOptimParams)}
    assert not AdaINParams().uses_seed() and not AdaINParams().inactive()
    # the shared loop's content layers do nothing here: the term's content loss replaces them
    assert {"content_layers", "content_layer_weights", "learning_rate"} <= AdaINOptimParams().inactive()
    assert "learning_rate" not in AdaINOptimParams(optimizer="adam").inactive()
    assert AdaINOptimParams(init="noise").uses_seed() and not AdaINOptimParams().uses_seed()

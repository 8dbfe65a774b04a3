"""The MRF algorithm (Li & Wand 2016): patch matching, its loss, the style bank and a real run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.optimization.mrf import MRFParams, mrf_loss, rotate, style_variants, stylize
from stylegrid.algorithms.shared.patches import extract_patches, nearest_patches, normalise_rows


def _bank(style: torch.Tensor, k: int = 3, stride: int = 2):
    patches = extract_patches(style, k, stride)
    filters = normalise_rows(patches).reshape(-1, style.shape[1], k, k)
    return patches, filters, float(patches.pow(2).sum(dim=1).mean())


def _brute_force(features: torch.Tensor, bank: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """For every output patch, the bank patch of highest normalised cross-correlation, one by one."""
    best = []
    c, h, w = features.shape[1:]
    for i in range(0, h - k + 1, stride):
        for j in range(0, w - k + 1, stride):
            q = features[0, :, i : i + k, j : j + k].reshape(-1)
            ncc = [float(q @ s / (q.norm() * s.norm())) for s in bank]
            best.append(max(range(len(bank)), key=ncc.__getitem__))
    return torch.tensor(best)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("chunk", [5, 1 << 20])  # tiny chunks exercise the running maximum
def test_matching_equals_a_brute_force_nearest_neighbour_search(stride, chunk):
    torch.manual_seed(stride)
    features = torch.randn(1, 6, 9, 11)
    style = torch.randn(1, 6, 10, 8)
    bank, filters, _ = _bank(style)
    found = nearest_patches(features, filters, stride, chunk_elements=chunk)
    assert torch.equal(found, _brute_force(features, bank, 3, stride))


def test_loss_is_zero_when_the_output_features_are_the_style_features():
    torch.manual_seed(1)
    style = torch.relu(torch.randn(1, 8, 12, 12))
    bank, filters, sq = _bank(style)
    assert mrf_loss(style, bank, filters, sq, 3, 2) == 0
    assert mrf_loss(torch.relu(torch.randn(1, 8, 12, 12)), bank, filters, sq, 3, 2) > 0.1


def test_loss_gradient_pulls_each_patch_to_its_match_and_not_through_the_matching():
    torch.manual_seed(2)
    style = torch.randn(1, 4, 9, 9)
    bank, filters, sq = _bank(style)
    x = torch.randn(1, 4, 7, 7, requires_grad=True)
    mrf_loss(x, bank, filters, sq, 3, 2).backward()
    idx = nearest_patches(x.detach(), filters, 2)
    diff = extract_patches(x.detach(), 3, 2) - bank[idx]
    expected = F.fold((2 * diff / (len(diff) * sq)).t()[None], (7, 7), 3, stride=2)
    assert torch.allclose(x.grad, expected, atol=1e-6)
    assert filters.grad is None


def test_style_variants_builds_the_rotated_and_scaled_copies():
    style = torch.rand(1, 3, 40, 60)
    variants = style_variants(style, rotations=2, rescales=1)
    assert len(variants) == 1 + 2 * 2 + 2 * 1
    assert all(v.shape[-2:] == style.shape[-2:] for v in variants[:5])  # rotations keep the size
    assert variants[5].shape[-2:] == (38, 57) and variants[6].shape[-2:] == (42, 63)
    assert torch.allclose(rotate(style, 0.0), style, atol=1e-5)
    assert not torch.allclose(variants[1], style, atol=1e-2)


def test_default_pyramid_is_three_levels_as_cnnmrf_but_never_below_64_px():
    p = MRFParams()
    assert [p.default_scales(n) for n in (512, 384, 256, 128, 64)] == [3, 3, 3, 2, 1]
    assert MRFParams(scales=2).scales == 2
    with pytest.raises(ValueError, match="patch_size"):
        MRFParams(patch_size=0)


def test_output_too_small_for_the_patches_is_a_clear_error(tubingen_64, starry_128):
    with pytest.raises(ValueError, match="smaller than the 3x3 patches"):
        stylize(tubingen_64, [starry_128], MRFParams(scales=4, steps=4, style_scale=None))
    # the style at the output's size (CNNMRF's) is too small first
    with pytest.raises(
        ValueError, match=r"style images are too small for 3x3 patches at relu4_1.*fewer scales"
    ):
        stylize(tubingen_64, [starry_128], MRFParams(scales=4, steps=4))


@pytest.mark.slow
def test_mrf_run_lowers_its_style_loss_with_real_weights(tubingen_64, starry_128):
    result = stylize(tubingen_64, [starry_128], MRFParams(steps=30))
    first, last = result.history[0].losses, result.final_losses
    names = ("style.mrf.relu3_1", "style.mrf.relu4_1")
    assert all(last[n] < first[n] for n in names)
    # at 64 px relu4_1 has 9 patches: matches flip between steps and it settles within ~10 steps
    assert sum(last[n] for n in names) < 0.85 * sum(first[n] for n in names)
    assert result.image.shape == tubingen_64.shape and not result.stopped_early
    assert get_algorithm("mrf").params_type is MRFParams


@pytest.mark.slow
def test_rotated_and_scaled_bank_runs(tubingen_64, starry_128):
    result = stylize(tubingen_64, [starry_128], MRFParams(steps=3, style_rotations=1, style_rescales=1))
    assert "style.mrf.relu4_1" in result.final_losses


def test_split_rounds():
    from stylegrid.algorithms.optimization.loop import split_rounds

    assert split_rounds(200, 0) == [200] and split_rounds(5, 10) == [5]
    assert split_rounds(25, 10) == [10, 10, 5] and split_rounds(20, 10) == [10, 10]


def test_held_matches_are_used_until_the_next_refresh():
    from stylegrid.algorithms.optimization.mrf import MRFStyleTerm, PatchBank

    g = torch.Generator().manual_seed(0)
    style = torch.rand(1, 4, 12, 12, generator=g)
    patches, filters, norm = _bank(style)
    term = MRFStyleTerm({"relu3_1": PatchBank(patches, filters, norm)}, {"relu3_1": 1.0}, 1.0, 3, 2, 5)
    a, b = torch.rand(1, 4, 9, 9, generator=g), torch.rand(1, 4, 9, 9, generator=g)
    fresh = float(term({"relu3_1": b})["style.mrf.relu3_1"])  # no matches held: matched now
    assert fresh == pytest.approx(float(mrf_loss(b, patches, filters, norm, 3, 2)))
    term.refresh({"relu3_1": a})
    held = term.matches["relu3_1"]
    assert torch.equal(held, nearest_patches(a, filters, 2))
    # b is scored against a's matches, by hand
    by_hand = (extract_patches(b, 3, 2) - patches[held]).pow(2).sum(dim=1).mean() / (norm + 1e-8)
    assert float(term({"relu3_1": b})["style.mrf.relu3_1"]) == pytest.approx(float(by_hand), rel=1e-5)
    assert not torch.equal(held, nearest_patches(b, filters, 2))  # (so the two differ)


@pytest.mark.slow
def test_the_loop_rematches_once_per_round(tubingen_64, starry_128, monkeypatch):
    from stylegrid.algorithms.optimization.mrf import MRFStyleTerm

    calls = []
    original = MRFStyleTerm.refresh
    monkeypatch.setattr(MRFStyleTerm, "refresh", lambda self, f: (calls.append(1), original(self, f)))
    square = tubingen_64[..., :64, :64] if tubingen_64.shape[-1] >= 64 else tubingen_64
    result = stylize(square, [starry_128], MRFParams(steps=7, scales=1, match_every=3))
    assert len(calls) == 3 and len(result.history) == 7  # rounds of 3, 3 and 1 steps
    calls.clear()
    stylize(square, [starry_128], MRFParams(steps=7, scales=1, match_every=0))
    assert not calls  # matched inside every evaluation instead


def test_a_coarser_level_weighs_its_mrf_term_by_its_share_of_the_pixels():
    """CNNMRF sums its MRF term over the positions: a level of a quarter of the pixels has a
    quarter of the weight against the content (the layout comes from the photo's coarse levels)."""
    from stylegrid.algorithms.optimization.mrf import MRFStyleTerm, PatchBank

    g = torch.Generator().manual_seed(0)
    patches, filters, norm = _bank(torch.rand(1, 4, 12, 12, generator=g))
    feats = {"relu3_1": torch.rand(1, 4, 9, 9, generator=g)}
    banks = {"relu3_1": PatchBank(patches, filters, norm)}
    whole = MRFStyleTerm(banks, {"relu3_1": 1.0}, 2.0, 3, 2, 0)(feats)["style.mrf.relu3_1"]
    quarter = MRFStyleTerm(banks, {"relu3_1": 1.0}, 2.0, 3, 2, 0, level=0.25)(feats)["style.mrf.relu3_1"]
    assert float(quarter) == pytest.approx(0.25 * float(whole))
    assert float(whole) == pytest.approx(
        2.0 * float(mrf_loss(feats["relu3_1"], patches, filters, norm, 3, 2))
    )


@pytest.mark.slow
def test_the_loop_tells_each_level_its_share_of_the_output_pixels(tubingen_64, starry_128):
    from stylegrid.algorithms.optimization.mrf import mrf_term_factory

    seen = []
    params = MRFParams(steps=4, scales=2, style_scale=None)  # the style as loaded: big enough at 32 px
    factory = mrf_term_factory(params)

    def recording(inputs):
        seen.append((tuple(inputs.content.shape[-2:]), inputs.level))
        return factory(inputs)

    from stylegrid.algorithms.optimization.loop import Method, run_image_optimization

    run_image_optimization(tubingen_64, [starry_128], Method(params, recording, params.mrf_layers))
    (h, w), (h0, w0) = tubingen_64.shape[-2:], seen[0][0]
    assert [level for _, level in seen] == pytest.approx([h0 * w0 / (h * w), 1.0])
    assert seen[0][1] == pytest.approx(0.25, rel=0.1)


def test_mrf_defaults_follow_cnnmrf():
    p = MRFParams()
    assert (
        p.style_scale == 1.0 and p.mrf_layers == ("relu3_1", "relu4_1") and p.content_layers == ("relu4_2",)
    )
    assert p.mrf_layer_weights[1] / p.mrf_layer_weights[0] == pytest.approx(5.6, rel=0.05)
    assert p.init == "content" and p.patch_size == 3 and p.sample_stride == p.synthesis_stride == 2

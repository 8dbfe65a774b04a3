"""The quality measures (algorithms/shared/metrics.py): hand computations, then sanity on real images."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLES
from stylegrid.algorithms.shared.color import rgb_to_lab
from stylegrid.algorithms.shared.metrics import (
    MEASURES,
    Quality,
    projections,
    quality,
    sliced_wasserstein,
    ssim,
)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = torch.full((1, 1, 20, 20), 0.3), torch.full((1, 1, 20, 20), 0.6)
    c1 = 0.01**2
    assert float(ssim(a, a)) == pytest.approx(1.0)
    assert float(ssim(a, b)) == pytest.approx((2 * 0.3 * 0.6 + c1) / (0.3**2 + 0.6**2 + c1), rel=1e-5)


def test_ssim_falls_with_noise_and_refuses_mismatched_shapes():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 32, 32, generator=g)
    noisy = [ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert 1 > noisy[0] > noisy[1] > noisy[2]
    with pytest.raises(ValueError, match="one shape"):
        ssim(x, x[..., :16])


def test_projections_are_fixed_unit_vectors():
    p = projections(5)
    assert p.shape == (5, 64) and torch.allclose(p.norm(dim=0), torch.ones(64))
    assert torch.equal(p, projections(5))  # the same directions every call (seeded)


def test_sliced_wasserstein_of_a_shift_by_hand():
    # shifting every sample by v moves each projected quantile by v . p_k, so
    # SW2 = sqrt(mean_k (v . p_k)^2)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(1, 3, 16, 20, generator=g)
    v = torch.tensor([0.5, -1.0, 2.0])
    shifted = a + v.view(1, 3, 1, 1)
    expected = (v @ projections(3)).pow(2).mean().sqrt()
    assert float(sliced_wasserstein(shifted, a, relative=False)) == pytest.approx(float(expected), rel=1e-5)
    assert float(sliced_wasserstein(a, a, relative=False)) == 0.0
    # a permutation of the positions is the same distribution; relative divides by b's RMS projection
    perm = a.flatten(2)[..., torch.randperm(320, generator=g)].reshape(a.shape)
    assert float(sliced_wasserstein(perm, a, relative=True)) == pytest.approx(0.0, abs=1e-6)
    rms = (a.flatten(2).squeeze(0).T @ projections(3)).pow(2).mean().sqrt()
    assert float(sliced_wasserstein(torch.zeros_like(a), a, relative=True)) == pytest.approx(1.0, rel=1e-5)
    assert float(rms) > 0


def test_sliced_wasserstein_compares_different_sizes_by_quantiles():
    # the same distribution sampled at two sizes: near zero; a wider one: clearly not
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1, 4, 40, 40, generator=g), torch.randn(1, 4, 23, 31, generator=g)
    assert float(sliced_wasserstein(a, b, relative=True)) < 0.1
    assert float(sliced_wasserstein(3 * a, b, relative=True)) > 1.0


def test_lab_of_known_colours():
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]).T.reshape(1, 3, 4, 1)
    lab = rgb_to_lab(rgb)[0, :, :, 0].T
    expected = torch.tensor([[100.0, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86]])
    assert torch.allclose(lab, expected, atol=0.05)


def test_every_measure_is_declared_once():
    assert [m.name for m in MEASURES] == list(Quality.__dataclass_fields__)
    assert {m.kind for m in MEASURES} == {"content", "style"}
    assert {m.name for m in MEASURES if m.better == "higher"} == {"content_ssim"}


@pytest.fixture(scope="module")
def pair():
    from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor

    content = to_tensor(resize_to(read_image(SAMPLES / "content" / "tubingen.jpg"), 96))
    style = load_image(SAMPLES / "style" / "starry_night.jpg", max_side=128)
    other_style = load_image(SAMPLES / "style" / "the_scream.jpg", max_side=128)
    return content, style, other_style


def _as_output(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, size=like.shape[-2:], mode="bilinear", antialias=True, align_corners=False)


@pytest.mark.slow
def test_real_images_rank_as_a_researcher_expects(pair):
    content, style, other_style = pair
    photo = quality(content, content, style)
    assert photo.content_distance == 0.0 and photo.content_ssim == pytest.approx(1.0)
    # the painting itself, at its own size: perfect style by every measure
    itself = quality(style, content, style)
    assert itself.style_distance < 1e-3 and itself.style_swd < 1e-3 and itself.color_swd < 1e-3
    # the painting resized to the output's shape stays far closer in style than the photo
    painting = quality(_as_output(style, content), content, style)
    assert painting.style_swd < 0.5 * photo.style_swd and painting.color_swd < 0.5 * photo.color_swd
    assert painting.content_ssim < 0.3 < photo.content_ssim
    # a blurred photo keeps less of the content than the photo, a sharper blur more than a stronger one
    light = quality(F.avg_pool2d(F.pad(content, (1, 1, 1, 1), mode="reflect"), 3, 1), content, style)
    heavy = quality(F.avg_pool2d(F.pad(content, (3, 3, 3, 3), mode="reflect"), 7, 1), content, style)
    assert 1 > light.content_ssim > heavy.content_ssim and 0 < light.content_distance < heavy.content_distance
    # another painting is further from Starry Night's colours than Starry Night itself
    scream = quality(_as_output(other_style, content), content, style)
    assert scream.color_swd > 3 * painting.color_swd and scream.style_swd > painting.style_swd
    assert all(math.isfinite(v) for q in (photo, painting, light, scream) for v in q.as_dict().values())


@pytest.mark.slow
def test_a_stylized_output_sits_between_the_photo_and_the_painting(pair):
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.optimization.gatys import GatysParams

    content, style, _ = pair
    out = get_algorithm("gatys").stylize(content, [style], GatysParams(steps=40)).image
    photo, stylized = quality(content, content, style), quality(out, content, style)
    assert stylized.style_swd < photo.style_swd and stylized.color_swd < photo.color_swd
    assert stylized.content_ssim < photo.content_ssim and stylized.content_ssim > 0.2

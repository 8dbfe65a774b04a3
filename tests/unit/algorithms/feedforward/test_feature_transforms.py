"""The feature transforms of the arbitrary-style networks against their definitions, on small tensors:
whitening and colouring (Li et al. 2017) and the style swap (Chen & Schmidt 2016)."""

from __future__ import annotations

import pytest
import torch
from stylegrid.algorithms.feedforward.wct.whitening import (
    MomentSums,
    apply,
    colour,
    moments,
    transform,
    wct,
    whiten,
)
from stylegrid.algorithms.shared.patches import style_patches, swap


def correlated(batch: int, channels: int, h: int, w: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Features with correlated channels, a non-zero mean and very unequal variances."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(channels, channels, generator=g, dtype=torch.float64)
    spread = torch.logspace(0, -1, channels, dtype=torch.float64)  # variances over 2 decades
    raw = torch.randn(batch, channels, h * w, generator=g, dtype=torch.float64) * spread[:, None]
    shift = torch.randn(batch, channels, 1, generator=g, dtype=torch.float64) * 3
    return (scale * (mix @ raw + shift)).reshape(batch, channels, h, w)


def covariance(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cov(item.flatten(1)) for item in x.double()])


def test_whitened_features_have_the_identity_as_covariance_and_a_zero_mean():
    content = correlated(2, 8, 12, 10, seed=1)
    white = whiten(content, moments(content))
    eye = torch.eye(8, dtype=torch.float64).expand(2, 8, 8)
    assert torch.allclose(covariance(white), eye, atol=1e-6)
    assert white.flatten(2).mean(-1).abs().max() < 1e-9


def test_coloured_features_have_the_styles_covariance_and_mean():
    content, style = correlated(2, 8, 12, 10, seed=1), correlated(1, 8, 9, 9, seed=2, scale=5.0)
    target = moments(style)
    out = colour(whiten(content, moments(content)), target)
    assert torch.allclose(covariance(out), target.cov.expand(2, 8, 8), rtol=1e-5, atol=1e-8)
    assert torch.allclose(out.flatten(2).mean(-1, keepdim=True), target.mean.expand(2, 8, 1), atol=1e-8)
    # the moments are the textbook ones (torch.cov: N - 1 in the denominator)
    assert torch.allclose(target.cov[0], torch.cov(style[0].flatten(1)))


def test_alpha_blends_with_the_content_and_the_dtype_is_kept():
    content, style = correlated(1, 4, 6, 6, seed=3).float(), correlated(1, 4, 6, 6, seed=4).float()
    assert torch.equal(wct(content, moments(style), alpha=0.0), content)
    full, half = wct(content, moments(style), 1.0), wct(content, moments(style), 0.5)
    assert full.dtype == torch.float32 and torch.allclose(half, (full + content) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        wct(content, moments(style), alpha=1.5)


def test_moments_summed_over_parts_and_the_one_matrix_transform_are_the_definitions():
    content, style = correlated(2, 6, 12, 10, seed=7), correlated(1, 6, 9, 9, seed=8, scale=4.0)
    sums = MomentSums()  # the cores of two tiles: the top 5 rows and the rest
    sums.add(content[..., :5, :])
    sums.add(content[..., 5:, :])
    whole, parts = moments(content), sums.moments()
    assert torch.allclose(parts.mean, whole.mean) and torch.allclose(parts.cov, whole.cov, atol=1e-10)
    matrix, bias = transform(whole, [moments(style)], [1.0])
    assert torch.allclose(
        apply(content, matrix, bias, 1.0), colour(whiten(content, whole), moments(style)), atol=1e-9
    )
    assert torch.allclose(apply(content.float(), matrix, bias, 0.25),
                          wct(content, moments(style), 0.25).float(), atol=1e-4)  # fmt: skip


def test_a_batch_is_the_items_one_by_one():
    content, style = correlated(3, 6, 8, 8, seed=5), correlated(1, 6, 8, 8, seed=6)
    batch = wct(content, moments(style))
    for i in range(3):
        assert torch.allclose(batch[i : i + 1], wct(content[i : i + 1], moments(style)), atol=1e-10)


def test_rank_deficient_features_stay_finite_and_bounded():
    """Fewer positions than channels (a small image deep in the network) and a dead channel: the
    covariance is singular. Its null directions are dropped, not divided by a tiny number."""
    content = correlated(1, 16, 3, 3, seed=7)  # 9 positions, 16 channels: rank at most 8
    content[:, 5] = 0.0  # a channel that never fires
    style = correlated(1, 16, 4, 4, seed=8)
    out = wct(content, moments(style))
    assert torch.isfinite(out).all()
    assert out.abs().max() < 10 * style.abs().max()
    # on the directions it keeps, whitening still decorrelates: the covariance is a projection
    white = whiten(content, moments(content))
    cov = covariance(white)[0]
    assert torch.allclose(cov @ cov, cov, atol=1e-6)


def test_low_precision_features_are_decomposed_in_float64():
    content = correlated(1, 32, 16, 16, seed=9).to(torch.bfloat16)
    style = correlated(1, 32, 16, 16, seed=10).to(torch.bfloat16)
    target = moments(style)
    assert target.cov.dtype == torch.float64
    out = wct(content, target)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_a_mask_takes_the_moments_of_its_region_only():
    left, right = correlated(1, 4, 6, 5, seed=11), correlated(1, 4, 6, 5, seed=12, scale=4.0)
    joined = torch.cat([left, right], dim=-1)  # [1, 4, 6, 10]
    mask = torch.zeros(1, 1, 6, 10)
    mask[..., 5:] = 1.0
    region = moments(joined, mask)
    alone = moments(right)
    assert torch.allclose(region.mean, alone.mean) and torch.allclose(region.cov, alone.cov)
    with pytest.raises(ValueError, match="at least two positions"):
        moments(joined, torch.zeros(1, 1, 6, 10))


# --- style swap (Chen & Schmidt 2016) ---------------------------------------------------------------


def swap_by_definition(content: torch.Tensor, style: torch.Tensor, k: int = 3) -> torch.Tensor:
    """The paper's steps written out: every content patch against every style patch by
    normalised cross-correlation, the arg-max, the chosen patches put back and averaged."""
    c = content.shape[1]
    cp = torch.nn.functional.unfold(content.double(), k)[0].t()  # [L, C*k*k]
    sp = torch.nn.functional.unfold(style.double(), k)[0].t()  # [N, C*k*k]
    scores = (cp / cp.norm(dim=1, keepdim=True)) @ (sp / sp.norm(dim=1, keepdim=True)).t()
    chosen = sp[scores.argmax(dim=1)]
    out = torch.zeros_like(content, dtype=torch.float64)
    count = torch.zeros_like(out)
    w = content.shape[-1] - k + 1
    for i, patch in enumerate(chosen):
        y, x = divmod(i, w)
        out[0, :, y : y + k, x : x + k] += patch.reshape(c, k, k)
        count[0, :, y : y + k, x : x + k] += 1
    return out / count


def test_style_swap_is_its_definition():
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 4, 7, 6, generator=g), torch.rand(1, 4, 6, 8, generator=g)
    out = swap(content, style_patches(style))
    assert torch.allclose(out.double(), swap_by_definition(content, style), atol=1e-6)
    # matching in chunks of a few scores at a time finds the same patches
    assert torch.allclose(swap(content, style_patches(style), chunk_elements=7), out)


def test_a_style_swapped_with_itself_is_itself_and_values_come_from_the_style():
    g = torch.Generator().manual_seed(1)
    style = torch.rand(1, 3, 6, 6, generator=g) + 0.1
    assert torch.allclose(swap(style, style_patches(style)), style, atol=1e-6)
    content = torch.rand(2, 3, 9, 5, generator=g) * 10  # another scale: the match is normalised
    out = swap(content, style_patches(style))
    assert out.shape == content.shape
    assert out.min() >= style.min() - 1e-6 and out.max() <= style.max() + 1e-6
    with pytest.raises(ValueError, match="smaller than one 3x3 patch"):
        style_patches(torch.rand(1, 3, 2, 8))

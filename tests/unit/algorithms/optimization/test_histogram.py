"""Histogram matching, the histogram algorithm and the Laplacian term (Risser et al.; Li et al.)."""

from __future__ import annotations

import pytest
import torch
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.optimization.gatys import GatysParams
from stylegrid.algorithms.optimization.gatys import stylize as gatys
from stylegrid.algorithms.optimization.histogram import (
    HistogramParams,
    histogram_loss,
    histogram_match,
    stylize,
)
from stylegrid.algorithms.shared.losses import laplacian, laplacian_loss
from stylegrid.algorithms.shared.metrics import quality


def test_histogram_match_equal_counts_reproduces_the_style_values_in_rank_order():
    torch.manual_seed(0)
    source = torch.randn(3, 50)
    target = torch.randn(3, 50) * 4 + 2
    out = histogram_match(source, target.sort(dim=1).values)
    assert torch.equal(out.sort(dim=1).values, target.sort(dim=1).values)
    assert torch.equal(out.argsort(dim=1), source.argsort(dim=1))  # rank order kept


def test_histogram_match_unequal_counts_interpolates_the_quantiles():
    source = torch.tensor([[3.0, 1.0, 2.0]])
    target = torch.tensor([[0.0, 10.0, 20.0, 30.0, 40.0]])
    assert torch.equal(histogram_match(source, target), torch.tensor([[40.0, 0.0, 20.0]]))
    target4 = torch.tensor([[0.0, 30.0, 60.0, 90.0]])  # positions 0, 1.5, 3 -> 0, 45, 90
    assert torch.allclose(histogram_match(source, target4), torch.tensor([[90.0, 0.0, 45.0]]))


def test_histogram_loss_is_zero_on_the_style_and_sends_no_gradient_through_the_remap():
    torch.manual_seed(1)
    style = torch.rand(1, 4, 5, 5)
    target = style.reshape(4, -1).sort(dim=1).values
    assert histogram_loss(style, target) == 0
    x = torch.rand(1, 4, 5, 5, requires_grad=True)
    histogram_loss(x, target).backward()
    remapped = histogram_match(x.detach().reshape(4, -1), target)
    expected = 2 * (x.detach().reshape(4, -1) - remapped) / remapped.pow(2).sum()
    assert torch.allclose(x.grad.reshape(4, -1), expected, atol=1e-6)


def test_histogram_loss_on_channels_last_bf16_with_a_workspace_equals_the_plain_computation():
    """The fast path (packed-key sort into a reused workspace, rows split over two threads, loss
    in rank order) gives the loss and gradient of the definition, and autograd refuses a backward
    pass whose workspace a later forward overwrote."""
    torch.manual_seed(4)
    feats = torch.relu(torch.randn(1, 6, 40, 48)).bfloat16().to(memory_format=torch.channels_last)
    feats[0, 0, :3] = -1.5  # negatives in one channel
    target = (torch.rand(6, 40 * 48) * 3).sort(dim=1).values
    workspace = torch.empty(6, 40 * 48, dtype=torch.int64)
    x = feats.clone().requires_grad_()
    loss = histogram_loss(x, target, workspace)
    loss.backward()
    plain = feats.float().reshape(6, -1)
    remapped = histogram_match(plain, target)
    expected = (plain - remapped).pow(2).sum() / remapped.pow(2).sum()
    assert torch.allclose(loss, expected, rtol=1e-5)
    expected_grad = (2 * (plain - remapped) / remapped.pow(2).sum()).bfloat16()
    assert x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad.reshape(6, -1), expected_grad)
    first = histogram_loss(x, target, workspace)
    histogram_loss(x * 2, target, workspace)  # overwrites the workspace the first one saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()


def test_sort_rows_in_two_threads_equals_torch_sort():
    from stylegrid.algorithms.optimization.histogram import sort_rows

    torch.manual_seed(5)
    x = torch.randn(8, 2**18)  # big enough for the two-thread sort
    x[:, ::3] = 0.0
    values, indices = sort_rows(x)
    expected = torch.sort(x, dim=1, stable=True)
    assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)


def test_laplacian_by_hand():
    img = torch.zeros(1, 1, 12, 12)
    img[..., 4:8, 4:8] = 1.0  # after a 4x4 average pool: a single 1 in the middle of a 3x3 grid
    assert torch.equal(laplacian(img), torch.tensor([[[[4.0]]]]))
    content = torch.zeros(1, 1, 12, 12)
    content[..., 4:8, 4:8] = 0.5
    # (4 - 2)^2 / 2^2
    assert torch.allclose(laplacian_loss(img, laplacian(content)), torch.tensor(1.0))


@pytest.mark.slow
def test_histogram_run_lowers_the_style_distance(tubingen_64, starry_128):
    before = quality(tubingen_64, tubingen_64, starry_128)
    result = stylize(tubingen_64, [starry_128], HistogramParams(steps=60))
    after = quality(result.image, tubingen_64, starry_128)
    assert after.style_distance <= 0.5 * before.style_distance
    assert {"style.hist.relu1_1", "style.hist.relu4_1", "style.gram.relu1_1"} <= set(result.final_losses)
    totals = [s.losses["style.hist.relu4_1"] for s in result.history]
    assert totals[-1] < totals[0]
    assert get_algorithm("histogram").params_type is HistogramParams


@pytest.mark.slow
def test_laplacian_weight_adds_its_term(tubingen_64, starry_128):
    result = gatys(tubingen_64, [starry_128], GatysParams(steps=10, scales=1, laplacian_weight=1.0))
    assert "laplacian" in result.final_losses
    assert "laplacian" not in gatys(tubingen_64, [starry_128], GatysParams(steps=2, scales=1)).final_losses

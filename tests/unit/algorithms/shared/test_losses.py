"""Every loss against a hand computation on tiny tensors, plus gradient checks."""

from __future__ import annotations

import torch
from stylegrid.algorithms.shared import color
from stylegrid.algorithms.shared.losses import (
    blend_grams,
    content_loss,
    gram_matrix,
    range_penalty,
    relative_squared_error,
    style_loss,
    total_variation,
)


def test_gram_matrix_by_hand():
    # C=2 channels, H=1, W=2: rows are (1, 2) and (3, 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / 2.0  # F F^T / (H*W)
    assert torch.allclose(gram_matrix(f), expected)


def test_gram_matrix_is_size_independent_for_repeated_texture():
    f = torch.randn(1, 4, 3, 3)
    tiled = f.repeat(1, 1, 2, 2)
    assert torch.allclose(gram_matrix(f), gram_matrix(tiled), atol=1e-6)


def test_relative_squared_error_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0])
    t = torch.tensor([1.0, 0.0, 1.0])
    # (0 + 4 + 4) / (1 + 0 + 1)
    assert torch.allclose(relative_squared_error(x, t), torch.tensor(4.0))


def test_content_loss_by_hand():
    f = torch.tensor([[[[2.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0]]]])
    assert torch.allclose(content_loss(f, t), torch.tensor((1.0 + 1.0) / 2.0))
    assert content_loss(t, t) == 0


def test_style_loss_by_hand():
    f = torch.tensor([[[[1.0, 1.0]]]])  # G = [[1]]
    target = torch.tensor([[[2.0]]])
    assert torch.allclose(style_loss(f, target), torch.tensor((1.0 - 2.0) ** 2 / 4.0))


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal differences 1, 2 -> mean square 2.5; vertical 2, 3 -> 6.5
    assert torch.allclose(total_variation(img), torch.tensor(9.0))


def test_range_penalty_by_hand():
    img = torch.tensor([[[[-0.5, 0.5, 1.5, 1.0]]]])
    assert torch.allclose(range_penalty(img), torch.tensor((0.25 + 0 + 0.25 + 0) / 4))
    assert range_penalty(torch.rand(1, 3, 4, 4)) == 0


def test_blend_grams_normalises_weights():
    a, b = torch.ones(1, 2, 2), torch.zeros(1, 2, 2)
    assert torch.allclose(blend_grams([a, b], [3.0, 1.0]), 0.75 * a)
    assert torch.equal(blend_grams([a, b], [1.0, 0.0]), a)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    f = torch.randn(1, 3, 4, 5, dtype=torch.double, requires_grad=True)
    t = torch.randn(1, 3, 4, 5, dtype=torch.double)
    g = gram_matrix(torch.randn(1, 3, 4, 5, dtype=torch.double)).double()
    img = (0.2 + 0.6 * torch.rand(1, 3, 5, 5, dtype=torch.double)).requires_grad_(True)

    # losses compute in float32 for speed; check in double by wrapping the same formulas
    def rel(x, y):
        return (x - y).pow(2).sum() / y.pow(2).sum()

    def gram64(x):
        b, c, h, w = x.shape
        m = x.reshape(b, c, h * w)
        return m @ m.transpose(1, 2) / (h * w)

    assert torch.autograd.gradcheck(lambda x: rel(x, t), (f,))
    assert torch.autograd.gradcheck(lambda x: rel(gram64(x), g), (f,))
    # and the float32 implementations agree with the double reference
    assert torch.allclose(
        style_loss(f.float(), g.float()).double(), rel(gram64(f), g).float().double(), rtol=1e-4
    )
    assert torch.allclose(content_loss(f.float(), t.float()).double(), rel(f, t).float().double(), rtol=1e-5)
    assert torch.autograd.gradcheck(lambda x: total_variation(x).double(), (img,), atol=1e-4, eps=1e-3)


def test_autograd_gradient_of_style_loss_matches_analytic_form():
    # d/dF ||FF^T/M - T||^2 / ||T||^2 = 4 (G - T) F / (M ||T||^2) for symmetric G, T
    torch.manual_seed(1)
    f = torch.randn(1, 3, 2, 3, requires_grad=True)
    t = gram_matrix(torch.randn(1, 3, 2, 3))
    style_loss(f, t).backward()
    m = 6
    flat = f.detach().reshape(3, m)
    g = flat @ flat.T / m
    analytic = 4 * (g - t[0]) @ flat / (m * t.pow(2).sum())
    assert torch.allclose(f.grad.reshape(3, m), analytic, atol=1e-5)


def test_yiq_round_trip_and_luminance_transfer():
    torch.manual_seed(2)
    rgb = torch.rand(1, 3, 4, 4)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(rgb)), rgb, atol=1e-5)
    y = color.luminance(rgb)
    assert torch.allclose(y, 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:], atol=1e-6)
    style_y = torch.rand(1, 1, 6, 6) * 0.2
    matched = color.match_luminance(style_y, y)
    assert torch.allclose(matched.mean(), y.mean(), atol=1e-5)
    assert torch.allclose(matched.std(), y.std(), atol=1e-5)


def test_recombine_keeps_content_chroma():
    torch.manual_seed(3)
    content = 0.25 + 0.5 * torch.rand(1, 3, 4, 4)
    out = color.grey(color.luminance(0.25 + 0.5 * torch.rand(1, 3, 4, 4)))
    mixed = color.recombine_luminance(out, content)
    assert torch.allclose(color.rgb_to_yiq(mixed)[:, 1:], color.rgb_to_yiq(content)[:, 1:], atol=1e-4)
    assert torch.allclose(color.luminance(mixed), color.luminance(out), atol=1e-4)


def test_gram_backward_matches_autograd_of_the_plain_product():
    from stylegrid.algorithms.shared.losses import _Gram

    f = torch.randn(2, 3, 7, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(_Gram.apply, (f,))
    plain = torch.randn(1, 4, 3, 5, requires_grad=True)
    fast = plain.detach().clone().requires_grad_(True)
    target = torch.randn(1, 4, 4)
    (
        (torch.bmm(plain.reshape(1, 4, 15), plain.reshape(1, 4, 15).transpose(1, 2)) / 15 - target) ** 2
    ).sum().backward()
    ((gram_matrix(fast) - target) ** 2).sum().backward()
    assert torch.allclose(plain.grad, fast.grad, atol=1e-5)


def test_rank_order_is_a_stable_argsort_with_negatives_ties_and_signed_zeros():
    from stylegrid.algorithms.optimization.histogram import rank_order

    torch.manual_seed(3)
    x = torch.randn(5, 1000)
    x[:, ::4] = 0.0
    x[:, 1::9] = -0.0
    x[:, 2::11] = 1.5
    x[0, :3] = torch.tensor([float("inf"), -float("inf"), 1e-38])
    assert torch.equal(rank_order(x), torch.argsort(x, dim=1, stable=True))

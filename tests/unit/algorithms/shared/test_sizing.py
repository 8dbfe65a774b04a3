"""Fitting a long side, resizing and padding (``shared/sizing.py``, the one rule every family
uses) and AdaIN's operation (``shared/instance_norm.py``)."""

from __future__ import annotations

import pytest
import torch
from stylegrid.algorithms.shared.instance_norm import adain, adain_to, check_alpha
from stylegrid.algorithms.shared.losses import mean_std
from stylegrid.algorithms.shared.sizing import fitted_size, pad_to_multiple, resize_long_side, shrink


def test_the_long_side_rule():
    assert fitted_size(300, 400, 200) == (150, 200) and fitted_size(400, 300, 200) == (200, 150)
    assert fitted_size(300, 400, 800) == (600, 800)
    assert fitted_size(300, 400, 800, enlarge=False) == (300, 400)
    assert fitted_size(10, 4000, 100, min_side=16) == (16, 100)  # a panorama keeps a usable side
    image = torch.rand(1, 3, 30, 40)
    assert resize_long_side(image, 80).shape[-2:] == (60, 80)
    assert shrink(image, 100) is image and shrink(image, 20).shape[-2:] == (15, 20)


def test_padding_to_a_network_stride_reflects_or_replicates():
    image = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    padded = pad_to_multiple(image, 4)
    assert padded.shape[-2:] == (8, 8) and torch.equal(padded[..., :5, :6], image)
    assert torch.equal(padded[..., 5, :6], image[..., 3, :])  # reflected about the last row
    assert pad_to_multiple(image[..., :4, :4], 4) is not None and pad_to_multiple(
        image[..., :4, :4], 4
    ).shape[-2:] == (4, 4)
    tiny = torch.rand(1, 1, 1, 2)  # too small to reflect: replicated
    assert torch.equal(pad_to_multiple(tiny, 4)[..., 3, :2], tiny[..., 0, :])


def test_adain_gives_each_channel_the_styles_mean_and_deviation():
    content, style = torch.randn(2, 3, 8, 8) * 2 + 1, torch.randn(2, 3, 6, 5) * 0.5 - 3
    out = adain(content, style)
    (m_out, s_out), (m_style, s_style) = mean_std(out), mean_std(style)
    assert torch.allclose(m_out, m_style, atol=1e-4) and torch.allclose(s_out, s_style, atol=1e-3)
    # a tile re-normalised with the whole image's statistics is that part of the whole's result
    whole_stats = mean_std(content)
    tile = adain_to(content[..., :4, :4], m_style, s_style, content_stats=whole_stats)
    assert torch.allclose(tile, out[..., :4, :4], atol=1e-5)
    check_alpha(type("P", (), {"alpha": 1.0})())
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got 1.5"):
        check_alpha(type("P", (), {"alpha": 1.5})())

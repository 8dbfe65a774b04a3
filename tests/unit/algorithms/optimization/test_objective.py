"""What the loop minimises at one pyramid level (``optimization/objective.py``): the style image
at each level's scale."""

from __future__ import annotations

import torch
from stylegrid.algorithms.names import MIN_SIDE
from stylegrid.algorithms.optimization.objective import style_at_scale


def test_the_style_follows_the_output_size_or_its_own_through_the_pyramid():
    style = torch.rand(1, 3, 300, 400)
    # style_scale 1: the style's long side is the output's, then halved with each coarser level
    assert style_at_scale(style, 1.0, 256, 1.0).shape[-2:] == (192, 256)
    assert style_at_scale(style, 1.0, 256, 0.5).shape[-2:] == (96, 128)
    assert style_at_scale(style, 2.0, 256, 0.5).shape[-2:] == (192, 256)
    # None: the style as loaded at the finest level
    assert style_at_scale(style, None, 256, 1.0).shape[-2:] == (300, 400)
    assert style_at_scale(style, None, 256, 0.25).shape[-2:] == (75, 100)
    # never below what VGG-19 needs
    assert max(style_at_scale(style, 1.0, 64, 0.125).shape[-2:]) == MIN_SIDE

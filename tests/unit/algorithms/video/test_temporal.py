"""Temporal consistency (algorithms/video/temporal.py): the flow finds a known motion, warping undoes
it, the forward-backward check finds what was uncovered, and on a panning clip flow-guided
blending takes most of a feed-forward network's flicker away."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import SAMPLES
from stylegrid.algorithms.video.temporal import (
    blend,
    blend_clip,
    clip_flows,
    optical_flow,
    reliable,
    warp,
    warping_error,
)
from stylegrid.orchestrator.images import read_image, to_tensor


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return to_tensor(read_image(SAMPLES / "content" / "tubingen.jpg", max_side=256))


def shifted(image: torch.Tensor, dx: int, dy: int, size=(96, 128)) -> torch.Tensor:
    """A crop of ``image`` moved by (dx, dy) px: the camera pans by (-dx, -dy)."""
    return image[..., 40 + dy : 40 + dy + size[0], 40 + dx : 40 + dx + size[1]]


def test_the_flow_finds_a_known_motion_and_warping_undoes_it(photo):
    previous, current = shifted(photo, 0, 0), shifted(photo, 3, 2)
    backward = optical_flow(current, previous)  # current pixel p is previous's p + (3, 2)
    inner = backward[..., 12:-12, 12:-12]
    assert inner[0, 0].median() == pytest.approx(3, abs=0.25) and inner[0, 1].median() == pytest.approx(
        2, abs=0.25
    )
    brought = warp(previous, backward)
    assert (brought - current)[..., 12:-12, 12:-12].abs().mean() < 0.02
    exact = torch.zeros_like(backward)
    exact[:, 0], exact[:, 1] = 3.0, 2.0
    assert torch.allclose(warp(previous, exact)[..., :-3, :-3], current[..., :-3, :-3], atol=1e-5)


def test_the_forward_backward_check_marks_what_the_motion_uncovered():
    h, w = 40, 60
    backward = torch.zeros(1, 2, h, w)
    forward = torch.zeros(1, 2, h, w)
    # an object at x in [30, 52) of frame t-1 moves 8 px right: at [38, 60) in frame t
    forward[:, 0, :, 30:52] = 8.0
    backward[:, 0, :, 38:60] = -8.0
    mask = reliable(backward, forward)
    assert mask[0, 0, :, :29].all() and mask[0, 0, :, 39:].all()  # the still background, the object
    assert not mask[0, 0, :, 30:38].any()  # uncovered: there the previous frame showed the object
    still = torch.zeros(1, 2, h, w)
    assert reliable(still, still).all()


def test_blending_takes_most_of_the_flicker_away(photo):
    """A 10-frame pan stylized by the shipped AdaIN decoder, frame by frame and blended: the
    warping error falls to at most half, the style distance rises by at most 10 %."""
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.shared.metrics import quality

    style = to_tensor(read_image(SAMPLES / "style" / "the_scream.jpg", max_side=128))
    small = F.interpolate(photo, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)
    frames = [small[..., 10 + t : 58 + t, 10 + 2 * t : 74 + 2 * t].contiguous() for t in range(10)]
    flows, masks = clip_flows(frames)
    assert warping_error(frames, flows, masks) < 2e-3  # the flow explains the input
    assert warping_error([frames[0]] * 3, [torch.zeros(1, 2, 48, 64)] * 2, masks[:2]) < 1e-12  # a still clip
    adain = get_algorithm("adain")
    outs = [adain.stylize(f, [style], adain.default_params()).image for f in frames]
    steady = blend_clip(outs, flows, masks, 0.5)
    assert blend(outs[1], outs[0], masks[0], 0.0) is outs[1]  # weight 0: frame by frame
    assert warping_error(steady, flows, masks) <= 0.5 * warping_error(outs, flows, masks)

    def style_distance(images):
        return sum(quality(o, f, style).style_distance for o, f in zip(images, frames, strict=True)) / len(
            images
        )

    assert style_distance(steady) <= 1.1 * style_distance(outs)

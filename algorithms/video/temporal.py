"""Temporal consistency for video: optical flow, warping, occlusions, the warping error, and
flow-guided blending of a feed-forward network's frames.

Stylizing a clip frame by frame flickers: a feed-forward network amplifies the small changes
between frames, and an optimisation lands each frame in its own local optimum. What the field does
(Ruder, Dosovitskiy & Brox, "Artistic Style Transfer for Videos", GCPR 2016, and the feed-forward
work after it) rests on the optical flow between consecutive input frames:

* ``optical_flow``: OpenCV's DIS flow (Kroeger et al., ECCV 2016: no learned weights, nothing
  to download), backward flow of frame t to frame t-1, so that ``warp(previous, flow)`` brings
  the previous frame onto the current one;
* ``reliable``: where that flow can be trusted, by Ruder et al.'s forward-backward check
  (Sundaram et al. 2010): a pixel is occluded or mis-tracked when following the flow there and
  back does not return to it, and on motion boundaries;
* ``warping_error``: the temporal measure: the mean squared difference between each output frame
  and the previous output warped onto it, over the reliable pixels (lower is steadier). The same
  measure on the input frames says how much the flow itself leaves (the floor);
* ``blend``: for a feed-forward network, the current output mixed with the warped previous
  output where the flow is reliable (``temporal_weight`` 0 = frame by frame). The previous output
  carried forward is what keeps a texture from re-rolling on every frame.

Images are tensors [1, 3, H, W] in [0, 1]; a flow is a tensor [1, 2, H, W] in pixels (x, y).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Ruder et al.'s thresholds (from Sundaram et al.): |w + w'|^2 > A (|w|^2 + |w'|^2) + B marks an
# occlusion, |grad w'|^2 > C |w'|^2 + D a motion boundary.
CONSISTENCY_A, CONSISTENCY_B = 0.01, 0.5
BOUNDARY_C, BOUNDARY_D = 0.01, 0.002


def _grey_u8(image: torch.Tensor) -> np.ndarray:
    rgb = image[0].detach().float().clamp(0, 1).cpu()
    grey = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return np.ascontiguousarray((grey * 255).round().to(torch.uint8).numpy())


def optical_flow(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The flow [1, 2, H, W] from ``source`` to ``target``: pixel p of ``source`` is seen at
    p + flow(p) in ``target`` (OpenCV's DIS, medium preset, on the luminance)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_grey_u8(source), _grey_u8(target), None)
    return torch.from_numpy(flow).permute(2, 0, 1)[None].float()


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` sampled at p + flow(p) for every pixel p (bilinear, borders repeated): with the
    flow from frame t to frame t-1, the previous frame brought onto frame t."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    x = xs + flow[0, 0].to(xs)
    y = ys + flow[0, 1].to(ys)
    grid = torch.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], dim=-1)[None]
    return F.grid_sample(image.float(), grid.to(image.device), mode="bilinear", padding_mode="border",
                         align_corners=True)  # fmt: skip


def reliable(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Where the backward flow (frame t to t-1) can be trusted, [1, 1, H, W] of 0 and 1: the
    forward flow (t-1 to t), read where the backward flow lands, must lead back (no occlusion),
    and the backward flow must not change sharply (no motion boundary)."""
    back = warp(forward, backward)  # the forward flow at p + backward(p)
    total = backward + back
    lengths = (backward**2).sum(1, keepdim=True) + (back**2).sum(1, keepdim=True)
    occluded = (total**2).sum(1, keepdim=True) > CONSISTENCY_A * lengths + CONSISTENCY_B
    dx = F.pad(backward[..., :, 1:] - backward[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(backward[..., 1:, :] - backward[..., :-1, :], (0, 0, 0, 1))
    gradient = (dx**2 + dy**2).sum(1, keepdim=True)
    boundary = gradient > BOUNDARY_C * (backward**2).sum(1, keepdim=True) + BOUNDARY_D
    return (~(occluded | boundary)).float()


def frame_error(current: torch.Tensor, warped_previous: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean squared difference over the reliable pixels (per pixel and channel)."""
    weight = mask.expand_as(current)
    return float(
        ((current.float() - warped_previous.float()) ** 2 * weight).sum() / weight.sum().clamp(min=1)
    )


def warping_error(frames: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor]) -> float:
    """The temporal measure of a sequence of (output) frames: the mean over consecutive pairs of
    ``frame_error(frame t, frame t-1 warped by flows[t-1], masks[t-1])``; ``flows`` and ``masks``
    are those of the input clip (one per pair, backward flow and its reliable pixels)."""
    if len(frames) < 2:
        return 0.0
    errors = [
        frame_error(frames[t], warp(frames[t - 1], flows[t - 1]), masks[t - 1]) for t in range(1, len(frames))
    ]
    return float(np.mean(errors))


def blend(
    current: torch.Tensor, warped_previous: torch.Tensor, mask: torch.Tensor, weight: float
) -> torch.Tensor:
    """Flow-guided blending: ``weight`` of the warped previous output where the flow is reliable,
    the current output elsewhere (0 = frame by frame)."""
    if weight <= 0:
        return current
    w = weight * mask.to(current)
    return (1 - w) * current + w * warped_previous.to(current)


def blend_clip(outputs: list[torch.Tensor], flows: list[torch.Tensor], masks: list[torch.Tensor],
               weight: float) -> list[torch.Tensor]:  # fmt: skip
    """A clip's output frames blended in order: each with the previous *blended* frame warped
    onto it (what is carried forward is the steadied picture, not the raw one)."""
    steady = outputs[:1]
    for t in range(1, len(outputs)):
        steady.append(blend(outputs[t], warp(steady[-1], flows[t - 1]), masks[t - 1], weight))
    return steady


def clip_flows(frames: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """For each consecutive pair of input frames (t-1, t): the backward flow t -> t-1 and its
    reliable pixels."""
    flows, masks = [], []
    for previous, current in zip(frames, frames[1:], strict=False):
        backward = optical_flow(current, previous)
        forward = optical_flow(previous, current)
        flows.append(backward)
        masks.append(reliable(backward, forward))
    return flows, masks


def camera_clip(photo: torch.Tensor, frames: int, size: int, motion: str) -> list[torch.Tensor]:
    """A synthetic clip with known camera motion (the video tests and benchmark use it): ``frames``
    crops of ``photo`` (4:3, ``size`` px wide) along a pan (2 px right and 0.5 px
    down per frame) or a zoom (2 % in per frame, towards the centre)."""
    h, w = photo.shape[-2:]
    scale = 1.5 * size / min(h, w)
    big = F.interpolate(photo, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    bh, bw = big.shape[-2:]
    out_h, out_w = round(0.75 * size), size
    clip = []
    for t in range(frames):
        if motion == "pan":
            ch, cw, y0, x0 = out_h, out_w, 4 + 0.5 * t, 4 + 2.0 * t
        else:
            z = 1.02**t
            ch, cw = out_h * 1.4 / z, out_w * 1.4 / z
            y0, x0 = (bh - ch) / 2, (bw - cw) / 2
        theta = torch.tensor([[cw / bw, 0, (2 * x0 + cw) / bw - 1], [0, ch / bh, (2 * y0 + ch) / bh - 1]])
        grid = F.affine_grid(theta[None].float(), [1, 3, out_h, out_w], align_corners=False)
        clip.append(F.grid_sample(big, grid, mode="bilinear", align_corners=False).clamp(0, 1))
    return clip

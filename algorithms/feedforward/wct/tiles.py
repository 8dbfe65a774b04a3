"""WCT at any size in overlapping tiles, each level with the whole image's moments.

Whitening uses the content features' mean and covariance: taken per tile, every tile would be
decorrelated differently and the seams would show. So, level by level (coarse to fine, as the
one-pass transform), the current image's features are encoded tile by tile and their moments
summed over the tiles' cores (``whitening.MomentSums``); then each tile is encoded again,
transformed with those moments (one matrix and bias per image, ``whitening.transform``),
decoded by the level's decoder and blended into the next image.

A tile's context (``HALO``) is the level's own: relu5_1 and its decoder see over 100 px around a
position, relu1_1 and its decoder two (but a halo is at least the overlap); cores start on
multiples of 16, the grid of relu5_1's four poolings, so every tile pools as the whole image does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...shared.device import autocast
from ...shared.sizing import pad_to_multiple
from ...shared.tiling import Canvas, TileLayout, core_features, crop, plan_tiles
from ...shared.vgg import encode_targets
from .transfer import MULTIPLE
from .whitening import Moments, MomentSums, apply, transform

HALO = {
    "relu5_1": 128,
    "relu4_1": 80,
    "relu3_1": 40,
    "relu2_1": 32,
    "relu1_1": 32,
}  # px per side (>= OVERLAP)
OVERLAP = 32  # px over which neighbouring tiles are blended


def level_in_tiles(
    image: torch.Tensor,
    level: str,
    styles: Sequence[Sequence[Moments]],
    weights: Sequence[float],
    alpha: float,
    *,
    encoder,
    decoders,
    core: int,
    precision: str,
    device: torch.device,
) -> tuple[torch.Tensor, TileLayout]:
    """One level of WCT on ``image`` [B, 3, H, W] (CPU) in tiles of ``core`` px; ``styles[i]``
    are item i's style moments at this level. Returns the next image (CPU) and the layout."""
    h, w = image.shape[-2:]
    layout = plan_tiles(h, w, core, HALO[level], OVERLAP, align=MULTIPLE)

    def encode(tile) -> tuple[torch.Tensor, torch.Tensor]:
        part = pad_to_multiple(crop(image, tile.box).to(device), MULTIPLE)
        return part, encode_targets(encoder, part, [level], precision)[level]

    sums = MomentSums()
    for tile in layout.tiles:
        part, feats = encode(tile)
        sums.add(core_features(tile, layout, feats, part.shape[-2], part.shape[-1]))
    whole = sums.moments()
    per_item = [
        transform(Moments(whole.mean[i : i + 1], whole.cov[i : i + 1]), styles[i], weights)
        for i in range(image.shape[0])
    ]
    matrix, bias = torch.cat([m for m, _ in per_item]), torch.cat([b for _, b in per_item])
    canvas = Canvas(layout, image.shape[0])
    for tile in layout.tiles:
        box_h, box_w = (tile.box[2] - tile.box[0]), (tile.box[3] - tile.box[1])
        _, feats = encode(tile)
        with autocast(precision, device):
            out = decoders.decode(level, apply(feats, matrix, bias, alpha))
        canvas.add(tile, out.float()[..., :box_h, :box_w])
    return canvas.image().clamp(0, 1), layout

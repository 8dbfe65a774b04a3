"""Overlapping tiles for images too large for one pass (pure): the layout, the smooth blending
weights, the stitching, and the seam measure the tests and benchmarks use.

A layout covers an H x W image with tiles whose cores (the parts a tile is responsible for) meet
edge to edge; each tile is computed on its core widened by ``halo`` pixels on every side that is
inside the image (the context a network's receptive field needs), and its output is blended into
the result over ``overlap`` pixels around its core with raised-cosine ramps, so that neighbouring
tiles fade into each other instead of meeting at a line. Core edges fall on multiples of
``align`` (a network that pools by 8 sees every tile on the same grid as the whole image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tile:
    core: tuple[int, int, int, int]  # top, left, bottom, right: what this tile is responsible for
    box: tuple[int, int, int, int]  # the core widened by the halo, clipped to the image: what is computed


@dataclass(frozen=True)
class TileLayout:
    height: int
    width: int
    core: int  # side of a tile's core, px
    halo: int
    overlap: int
    tiles: tuple[Tile, ...]

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of tiles."""
        rows = len({t.core[0] for t in self.tiles})
        return rows, len(self.tiles) // rows

    def describe(self) -> str:
        """``3x4 tiles of 1024 px, halo 64, overlap 32`` (what the result rows record)."""
        rows, cols = self.grid
        return f"{rows}x{cols} tiles of {self.core} px, halo {self.halo}, overlap {self.overlap}"


def _cuts(length: int, core: int, align: int, offset: int) -> list[int]:
    """Core boundaries along one axis: 0, then every ``core`` px from ``offset``, then ``length``;
    inner cuts on multiples of ``align``, and no core narrower than ``align``."""
    cuts = [0]
    start = offset % core or core
    for c in range(start, length, core):
        c = (c // align) * align
        if align <= c - cuts[-1] and length - c >= align:
            cuts.append(c)
    return [*cuts, length]


def plan_tiles(height: int, width: int, core: int, halo: int, overlap: int = 0, *,
               align: int = 8, offset: tuple[int, int] = (0, 0)) -> TileLayout:  # fmt: skip
    """Tiles of ``core`` px (the last row and column take the rest) with ``halo`` px of context;
    ``offset`` shifts the grid (a coarse-to-fine optimisation moves it between passes so that
    seams do not settle). ``overlap`` must not exceed ``halo``: the blend only uses computed pixels."""
    if core < align or core % align:
        raise ValueError(f"the tile core ({core} px) must be a positive multiple of {align}")
    if overlap > halo:
        raise ValueError(f"overlap ({overlap} px) cannot exceed the halo ({halo} px)")
    rows = _cuts(height, core, align, offset[0])
    cols = _cuts(width, core, align, offset[1])
    tiles = []
    for top, bottom in zip(rows, rows[1:], strict=False):
        for left, right in zip(cols, cols[1:], strict=False):
            box = (
                max(0, top - halo),
                max(0, left - halo),
                min(height, bottom + halo),
                min(width, right + halo),
            )
            tiles.append(Tile((top, left, bottom, right), box))
    return TileLayout(height, width, core, halo, overlap, tuple(tiles))


def _ramp(n: int, origin: int, core_start: int, core_end: int, overlap: int, fade_start: bool,
          fade_end: bool) -> torch.Tensor:  # fmt: skip
    """Weights along one axis of a tile's box (``n`` px from image position ``origin``): 1 inside
    the core; across a core edge that has a neighbour, a raised-cosine ramp over 2 x ``overlap`` px
    centred on the edge (the neighbour's ramp is its complement: the two sum to 1); 0 beyond."""
    pos = torch.arange(n, dtype=torch.float32) + origin + 0.5  # pixel centres
    w = ((pos >= core_start) & (pos < core_end)).float()
    if overlap:
        w = torch.ones(n)
        if fade_start:
            t = ((pos - (core_start - overlap)) / (2 * overlap)).clamp(0, 1)
            w = w * (0.5 - 0.5 * torch.cos(math.pi * t))
        if fade_end:
            t = (((core_end + overlap) - pos) / (2 * overlap)).clamp(0, 1)
            w = w * (0.5 - 0.5 * torch.cos(math.pi * t))
    return w


def tile_weights(layout: TileLayout, tile: Tile) -> torch.Tensor:
    """[1, 1, h, w] blending weights over ``tile.box`` (``_ramp`` along each axis). Summed over the
    tiles of a layout they are 1 everywhere when every core is at least 2 x ``overlap`` wide
    (``stitch`` divides by the sum all the same)."""
    top, left, bottom, right = tile.core
    btop, bleft, bbottom, bright = tile.box
    o = layout.overlap
    wy = _ramp(bbottom - btop, btop, top, bottom, o, top > 0, bottom < layout.height)
    wx = _ramp(bright - bleft, bleft, left, right, o, left > 0, right < layout.width)
    return (wy[:, None] * wx[None, :])[None, None]


def crop(image: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    top, left, bottom, right = box
    return image[..., top:bottom, left:right]


class Canvas:
    """The weighted mean of tile outputs, accumulated tile by tile (no tile is kept): ``add`` each
    tile's output over its box ([B, C, box h, box w]), then ``image()``."""

    def __init__(self, layout: TileLayout, batch: int = 1, channels: int = 3):
        self.layout = layout
        self.total = torch.zeros(batch, channels, layout.height, layout.width)
        self.weight = torch.zeros(1, 1, layout.height, layout.width)

    def add(self, tile: Tile, out: torch.Tensor) -> None:
        w = tile_weights(self.layout, tile)
        top, left, bottom, right = tile.box
        self.total[..., top:bottom, left:right] += out.float().cpu() * w
        self.weight[..., top:bottom, left:right] += w

    def image(self) -> torch.Tensor:
        return self.total / self.weight.clamp_min(1e-8)


def core_features(
    tile: Tile, layout: TileLayout, features: torch.Tensor, box_h: int, box_w: int
) -> torch.Tensor:
    """The part of a tile's features [B, C, h, w] (computed on its box padded to ``box_h`` x
    ``box_w``) over its core; a core at the image's bottom or right edge takes the padding rows
    too, as the whole padded image has them."""
    sy, sx = box_h // features.shape[-2], box_w // features.shape[-1]
    top, left, bottom, right = tile.core
    btop, bleft = tile.box[:2]
    y1 = None if bottom == layout.height else (bottom - btop) // sy
    x1 = None if right == layout.width else (right - bleft) // sx
    return features[..., (top - btop) // sy : y1, (left - bleft) // sx : x1]


class ChannelStats:
    """Per-channel mean and deviation of features over a whole image, summed tile core by tile
    core (in float64): what ``losses.mean_std`` and ``F.instance_norm`` compute on the whole."""

    def __init__(self):
        self.total = self.squares = None
        self.count = 0

    def add(self, core: torch.Tensor) -> None:
        core = core.double()
        s, q = core.sum(dim=(2, 3), keepdim=True), core.pow(2).sum(dim=(2, 3), keepdim=True)
        self.total, self.squares = (s, q) if self.total is None else (self.total + s, self.squares + q)
        self.count += core.shape[2] * core.shape[3]

    def mean_std(self, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, sqrt(population variance + eps)) [B, C, 1, 1], in float32."""
        mean = self.total / self.count
        var = (self.squares / self.count - mean.pow(2)).clamp_min(0)
        return mean.float(), (var + eps).sqrt().float()


def seam_ratio(image: torch.Tensor, layout: TileLayout) -> float:
    """Mean absolute image gradient across the layout's inner core edges over the mean elsewhere:
    about 1 without seams, above 1 where tiles meet at a visible line."""
    x = image.float()
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(0, 1))  # [H-1, W]: between rows i, i+1
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(0, 1))  # [H, W-1]
    rows = sorted({t.core[0] for t in layout.tiles} - {0})
    cols = sorted({t.core[1] for t in layout.tiles} - {0})
    on = [gy[r - 1] for r in rows] + [gx[:, c - 1] for c in cols]
    if not on:
        return 1.0
    seam = torch.cat(on).mean()
    mask_y = torch.ones(gy.shape[0], dtype=torch.bool)
    mask_y[[r - 1 for r in rows]] = False
    mask_x = torch.ones(gx.shape[1], dtype=torch.bool)
    mask_x[[c - 1 for c in cols]] = False
    rest = torch.cat([gy[mask_y].flatten(), gx[:, mask_x].flatten()]).mean()
    return float(seam / rest.clamp_min(1e-8))

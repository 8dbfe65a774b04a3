"""A fast style network at any size in overlapping tiles, with instance-norm statistics of the
whole image (``shared/tiling.py`` has the layout).

Every one of the network's conditional instance norms normalises with the mean and deviation of
its input over the whole image; a tile alone would use its own, and its colours and contrast would
differ from its neighbours'. The statistics are therefore gathered one normalisation at a time
(``network_statistics``): pass k runs every tile up to the k-th normalisation, using the whole
image's statistics already found for the earlier ones, and sums the k-th input over the tile's
core. Fifteen passes for the shipped architecture, each shorter than a full one; then a last pass
runs every tile through the whole network with those statistics, and the tiles are blended.

``HALO`` px of context around each core covers the network's receptive field (about 54 px: the
9x9 convolutions, two stride-2 convolutions and ten 3x3 convolutions at a quarter of the
resolution), so a tile's core is what the whole image gives there, up to rounding.
"""

from __future__ import annotations

import torch

from ...shared.device import autocast
from ...shared.sizing import pad_to_multiple
from ...shared.tiling import Canvas, ChannelStats, TileLayout, core_features, crop, plan_tiles
from .network import EPS, TransformNet

HALO = 64  # px of context on each inner side of a tile: the receptive field's radius is about 54
OVERLAP = 32
MULTIPLE = 4  # two stride-2 convolutions


class _Reached(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a statistics pass at the normalisation it measures, with that norm's input."""

    def __init__(self, features: torch.Tensor):
        self.features = features


class _GlobalNorm:
    """A ``norm`` for ``TransformNet.forward``: the i-th normalisation uses ``known[i]`` (the whole
    image's mean and deviation); at ``stop`` it hands its input over instead (``_Reached``)."""

    def __init__(self, known: list[tuple[torch.Tensor, torch.Tensor]], stop: int | None = None):
        self.known, self.stop, self.i = known, stop, 0

    def __call__(self, module, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        i, self.i = self.i, self.i + 1
        if i == self.stop:
            raise _Reached(x)
        mean, std = self.known[i]
        return module.affine((x - mean.to(x.dtype)) / std.to(x.dtype), weights)


def network_statistics(net: TransformNet, image: torch.Tensor, weights: torch.Tensor, layout: TileLayout,
                       precision: str) -> list[tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """(mean, std) [B, C, 1, 1] of each normalisation's input over the whole (padded) image, in
    order, as ``F.instance_norm`` would compute them on it, gathered tile by tile."""
    known: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k in range(net.norm_count):
        stats = ChannelStats()
        for tile in layout.tiles:
            part = pad_to_multiple(crop(image, tile.box), MULTIPLE)
            try:
                with autocast(precision, image.device):
                    net(part, weights, _GlobalNorm(known, stop=k))
            except _Reached as reached:
                stats.add(core_features(tile, layout, reached.features, part.shape[-2], part.shape[-1]))
        known.append(stats.mean_std(EPS))
    return known


def stylize_tiled(net: TransformNet, image: torch.Tensor, mix: torch.Tensor, *, core: int, precision: str,
                  overlap: int = OVERLAP) -> tuple[torch.Tensor, TileLayout]:  # fmt: skip
    """``image`` [B, 3, H, W] through ``net`` with style weights ``mix`` [N], in tiles of ``core``
    px (a multiple of 8): the result [B, 3, H, W] in [0, 1] on the CPU, and the layout."""
    h, w = image.shape[-2:]
    layout = plan_tiles(h, w, core, HALO, overlap, align=8)
    weights = mix.to(image.device).float().expand(image.shape[0], -1)
    canvas = Canvas(layout, image.shape[0])
    with torch.no_grad():
        known = network_statistics(net, image, weights, layout, precision)
        for tile in layout.tiles:
            box = crop(image, tile.box)
            part = pad_to_multiple(box, MULTIPLE)
            with autocast(precision, image.device):
                out = net(part, weights, _GlobalNorm(known))
            canvas.add(tile, out.float()[..., : box.shape[-2], : box.shape[-1]])
    return canvas.image().clamp(0, 1), layout

"""AdaIN at any size in overlapping tiles, with the image's global statistics (``shared/tiling.py``
has the layout and the blending).

A tile sees only part of the photo, and AdaIN re-normalises the content's relu4_1 features with
their mean and standard deviation: taken per tile, each tile would get its own brightness and
contrast and the seams would show. So the content statistics are gathered over the whole image
first (``content_statistics``: every tile encoded, the features of its core summed), then each
tile is encoded again, re-normalised with those statistics, decoded and blended into the result.

Every tile is computed with ``HALO`` px of context on each inner side: relu4_1 depends on about 40
px around a position and the decoder's output on about 30 px of its input, so with 80 px the core
of a tile is what the whole image gives there, up to rounding, and the blend over ``overlap`` px
only hides that rounding. Tile cores start on multiples of 8, the grid of VGG-19's three poolings
before relu4_1, so every tile pools exactly as the whole image does.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

import torch

from ...shared.device import autocast
from ...shared.instance_norm import CONTENT_LAYER, adain_target
from ...shared.parameters import weight_list
from ...shared.sizing import pad_to_multiple
from ...shared.tiling import Canvas, ChannelStats, TileLayout, core_features, crop, plan_tiles
from ...shared.vgg import encode_targets
from .network import MULTIPLE, AdaINParams, networks, style_stats_for

HALO = 80  # px of context on each inner side of a tile: encoder (about 40) + decoder (about 30)
OVERLAP = 32  # px over which neighbouring tiles are blended


def content_statistics(encoder, content: torch.Tensor, layout: TileLayout, precision: str, eps: float = 1e-5):
    """(mean, std) [B, C, 1, 1] of the content's relu4_1 over the whole (padded) image, as
    ``losses.mean_std`` computes them on it, gathered tile by tile."""
    stats = ChannelStats()
    for tile in layout.tiles:
        part = pad_to_multiple(crop(content, tile.box), MULTIPLE)
        feats = encode_targets(encoder, part, [CONTENT_LAYER], precision)[CONTENT_LAYER]
        stats.add(core_features(tile, layout, feats, part.shape[-2], part.shape[-1]))
    return stats.mean_std(eps)


def stylize_tiled(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: AdaINParams,
    *,
    core: int,
    style_weights: Sequence[float] | None = None,
    overlap: int = OVERLAP,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> tuple[torch.Tensor, TileLayout]:
    """AdaIN of ``content`` [B, 3, H, W] in tiles of ``core`` px (a multiple of 8): the image
    [B, 3, H, W] in [0, 1] on the CPU, and the layout used."""
    device = torch.device(device)
    precision, encoder, decoder = networks(params, device)
    weights = weight_list(styles, style_weights)
    content = content.float()
    h, w = content.shape[-2:]
    layout = plan_tiles(h, w, core, HALO, overlap, align=MULTIPLE)
    canvas = Canvas(layout, content.shape[0])
    with torch.no_grad():
        on_device = content.to(device)
        stats = [[style_stats_for(encoder, s.to(device).float(), on_device[i : i + 1], params, precision, cache)
                  for s in styles] for i in range(content.shape[0])]  # fmt: skip
        global_stats = content_statistics(encoder, on_device, layout, precision)
        for tile in layout.tiles:
            part = crop(on_device, tile.box)
            feats = encode_targets(encoder, pad_to_multiple(part, MULTIPLE), [CONTENT_LAYER], precision)[
                CONTENT_LAYER
            ]
            targets = [
                adain_target(feats[i : i + 1], [st[CONTENT_LAYER] for st in stats[i]], weights, params.alpha,
                             content_stats=(global_stats[0][i : i + 1], global_stats[1][i : i + 1]))
                for i in range(content.shape[0])
            ]  # fmt: skip
            with autocast(precision, device):
                out = decoder(torch.cat(targets).contiguous(memory_format=torch.channels_last))
            canvas.add(tile, out.float()[..., : part.shape[-2], : part.shape[-1]])
    return canvas.image().clamp(0, 1), layout

"""Image optimisation at pyramid levels too large for one pass: the level is optimised tile by tile
(pure helpers here; the loop in ``loop.py`` calls them).

An evaluation of an optimisation objective holds VGG-19's activations and their gradients, about
``BYTES_PER_PIXEL`` bytes per pixel with L-BFGS's memory (measured with ``benchmarks/tiled.py``):
2048 x 1536 takes some 10 GB, 4096 x 3072 some 40. When a level would exceed the memory budget,
its steps are run on overlapping tiles of the current image, one tile at a time:

* the style targets come from the whole style image (they do not depend on the content: every
  tile is asked for the style's statistics, as the whole image is);
* the content targets and the image being optimised are the tile's part of the level's content
  and of the current image, widened by ``HALO`` px of context so that the tile's border is not a
  free edge; only the core (and a raised-cosine ramp of ``OVERLAP`` px across its edges) is
  written back, so each tile blends into its neighbours, which it sees already optimised;
* the level's steps are split over ``PASSES`` passes, and each pass shifts the grid by half a
  core, so that a seam left by one pass lies inside a tile of the next and does not settle.

The coarser levels that fit are optimised whole, as without a budget: the layout of the picture
is set there, and the tiles add the detail of the large sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..shared.memory import tile_core
from ..shared.tiling import Tile, TileLayout, crop, plan_tiles, tile_weights

# Peak memory of one evaluation (forward, backward, L-BFGS's 30 curvature pairs) per pixel, above
# the loaded encoder; measured at 256 and 512 px, one scale: Gatys 1.7-2.5 KB (bf16 / fp32), MRF
# 2.0-2.5, adain_optimize 2.2-3.0, histogram 2.8-3.3 (its sort keys). The largest, rounded up.
BYTES_PER_PIXEL = 3400
HALO = 64  # px of context around a tile's core: the image a tile sees beyond what it writes
OVERLAP = 32  # px over which a tile fades into its neighbours (at most the halo)
ALIGN = 16  # relu5_1 is four poolings deep: cores on its grid pool as the whole image does
PASSES = 2  # passes over the tiles per level, the grid shifted by half a core between them


def level_core(height: int, width: int, budget: int) -> int | None:
    """None when a level of ``height`` x ``width`` is optimised whole within ``budget`` bytes;
    else the tile core that fits (``ValueError`` naming the budget needed when none does)."""
    return tile_core(height, width, 1, BYTES_PER_PIXEL, HALO, budget, align=ALIGN)


def pass_layouts(height: int, width: int, core: int, steps: int) -> list[tuple[TileLayout, int]]:
    """The (layout, steps per tile) of each pass over a tiled level: ``steps`` split over at most
    ``PASSES`` passes, pass ``p`` with its grid shifted by ``p`` half cores."""
    passes = min(PASSES, steps)
    base = steps // passes
    out = []
    for p in range(passes):
        shift = (p * core // 2) // ALIGN * ALIGN
        layout = plan_tiles(height, width, core, HALO, OVERLAP, align=ALIGN, offset=(shift, shift))
        out.append((layout, base + (steps - base * passes if p == passes - 1 else 0)))
    return out


def level_steps(height: int, width: int, core: int | None, steps: int) -> int:
    """Steps a level records: its steps when whole; every tile's steps when tiled."""
    if core is None:
        return steps
    return sum(len(layout.tiles) * n for layout, n in pass_layouts(height, width, core, steps))


def blend_into(image: torch.Tensor, layout: TileLayout, tile: Tile, out: torch.Tensor) -> None:
    """Write a tile's optimised ``out`` (over its box) into ``image`` in place: its core, faded
    into what the neighbours left across the core's inner edges; nothing of the halo beyond."""
    w = tile_weights(layout, tile).to(image)
    region = crop(image, tile.box)
    region.mul_(1 - w).add_(out.to(image) * w)


def optimize_level_in_tiles(
    image: torch.Tensor,
    content: torch.Tensor,
    core: int,
    steps: int,
    optimize_tile: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> str:
    """One pyramid level in tiles, in place on ``image`` (a tensor of the caller's own):
    ``optimize_tile(image part, content part, steps)`` optimises a tile's box and returns it.
    Returns the description of the first pass's layout."""
    layouts = pass_layouts(*image.shape[-2:], core, steps)
    for layout, n in layouts:
        for tile in layout.tiles:
            out = optimize_tile(crop(image, tile.box).clone(), crop(content, tile.box), n)
            blend_into(image, layout, tile, out.detach())
    if len(layouts) == 1:  # too few steps to share between two passes
        return f"{layouts[0][0].describe()}, one pass"
    return f"{layouts[0][0].describe()}, {len(layouts)} passes on shifted grids"

"""Spatial control from the command line: a label image whose colours name the regions of the
photo, and per colour a style image or ``none`` (``algorithms/shared/regions.py`` has the maths).

    stylegrid run --content photo.jpg --mask labels.png \\
        --region '#ff0000=starry_night.jpg' --region '#000000=none' -o out.png

``--style-mask COLOUR=FILE`` adds a label image of that region's style image: its pixels of the
same colour mark the part of the painting the region draws from (Champandard's semantic maps).
Colours are anything PIL names (``#f00``, ``#ff0000``, ``red``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from stylegrid.algorithms.shared.regions import Region, colour_mask, label_masks

from ..images import decode_image, read_bytes, to_tensor
from .region_jobs import ASPECT_TOLERANCE, parse_colour


@dataclass(frozen=True)
class RegionArg:
    name: str  # the colour as written
    colour: tuple[int, int, int]
    style: str | None  # a style image file; None keeps the photo
    style_mask: str | None = None


def _split(arg: str, option: str) -> tuple[str, str]:
    colour, sep, value = arg.partition("=")
    if not sep or not colour.strip() or not value.strip():
        raise ValueError(f"{option} {arg!r}: expected COLOUR=FILE")
    return colour.strip(), value.strip()


def parse_regions(regions: Sequence[str], style_masks: Sequence[str] = ()) -> list[RegionArg]:
    """``--region COLOUR=STYLE|none`` and ``--style-mask COLOUR=FILE`` values -> regions, in
    order; ``ValueError`` naming the value at fault."""
    parsed: dict[tuple[int, int, int], RegionArg] = {}
    for arg in regions:
        name, style = _split(arg, "--region")
        colour = parse_colour(name, f"--region {arg!r}")
        if colour in parsed:
            raise ValueError(f"--region {arg!r}: colour {name} is given twice")
        parsed[colour] = RegionArg(name, colour, None if style.lower() == "none" else style)
    for arg in style_masks:
        name, file = _split(arg, "--style-mask")
        colour = parse_colour(name, f"--style-mask {arg!r}")
        region = parsed.get(colour)
        if region is None or region.style is None:
            raise ValueError(f"--style-mask {arg!r}: no --region of colour {name} with a style image")
        parsed[colour] = RegionArg(region.name, colour, region.style, file)
    return list(parsed.values())


def _labels(file: str, size: Sequence[int], read: Callable[[str], bytes] = read_bytes) -> torch.Tensor:
    """A label image, checked to have the proportions of the image of ``size`` (H, W) it marks."""
    labels = to_tensor(decode_image(read(file), file))
    h, w = labels.shape[-2:]
    if abs(w / h - size[1] / size[0]) > ASPECT_TOLERANCE * size[1] / size[0]:
        raise ValueError(
            f"{file}: the mask is {w}x{h} px, not in the proportions of its image ({size[1]}x{size[0]} px)"
        )
    return labels


def _fit(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(mask, size=tuple(size), mode="area")


def load_regions(
    mask_file: str,
    args: Sequence[RegionArg],
    content_size: Sequence[int],
    style_size: int,
    read: Callable[[str], bytes] = read_bytes,
) -> tuple[list[torch.Tensor], list[Region]]:
    """(the style images, once each, in first use order; the regions on a content of
    ``content_size`` (H, W)), from the files ``args`` name, their bytes got by ``read``."""
    labels = _labels(mask_file, content_size, read)
    try:
        masks = label_masks(labels, [a.colour for a in args])
    except ValueError as exc:
        raise ValueError(f"{mask_file}: {exc}") from None
    files: list[str] = []
    styles: list[torch.Tensor] = []
    regions = []
    for arg, mask in zip(args, masks, strict=True):
        index = style_mask = None
        if arg.style is not None:
            if arg.style not in files:
                files.append(arg.style)
                styles.append(to_tensor(decode_image(read(arg.style), arg.style, max_side=style_size)))
            index = files.index(arg.style)
            if arg.style_mask is not None:
                style = styles[index]
                own = colour_mask(_labels(arg.style_mask, style.shape[-2:], read), arg.colour)
                style_mask = _fit(own, style.shape[-2:])
        regions.append(Region(_fit(mask, content_size), index, style_mask, arg.name))
    return styles, regions


def job_regions(
    job, data: Mapping[str, bytes], content_size: Sequence[int]
) -> tuple[list[torch.Tensor], list[Region]]:
    """``load_regions`` for a sweep's spatially controlled job (``jobs.Job.regions``), from the
    bytes the driver shipped, by path."""
    args = [RegionArg(r.colour, parse_colour(r.colour, job.mask), r.style, r.style_mask) for r in job.regions]
    return load_regions(job.mask, args, content_size, job.style_size, data.__getitem__)

"""Spatial control in sweeps: the spec's ``regions`` entries -> jobs.

Each entry is one photo, its label image and a style image (or ``none``) per colour. Every
algorithm parameter set of the spec whose algorithm has spatial control runs it (the others are
left out and named: ``Expansion.without_regions``), with the spec's seeds where the parameters
use them. A job's id hashes the label image's bytes and every region's colour, style and style
mask beside what any job's id holds, so editing the mask or a region makes new jobs. The job's
``style`` is its first styled region's image (what its rows' style and the quality measures
refer to); its variant carries ``regions=<name>``. Everything is checked here, before any job
runs: the files exist, the colours are colours, the mask has the photo's proportions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageColor
from stylegrid.algorithms import get_algorithm

from ..specs.loading import SpecError, resolve_path, spec_dir
from ..specs.sweep import RegionSetSpec, SweepSpec
from .jobs import Job, ParameterSet, RegionRef, file_sha256, make_job_id, spec_job

ASPECT_TOLERANCE = 0.02  # a mask may differ from its image's width / height by this (rounding when resized)


def parse_colour(text: str, where: str) -> tuple[int, int, int]:
    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a colour (#rrggbb, #rgb or a name such as red)") from None
    return tuple(rgb[:3])  # type: ignore[return-value]


def _file(value: str, base: Path, where: str) -> Path:
    path = resolve_path(value, base)
    if not path.is_file():
        raise SpecError(f"{where} {value!r}: no such file")
    return path.resolve()


def _size(path: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise SpecError(f"{where} {path}: not a readable image ({type(exc).__name__}: {exc})") from None


def resolve_region_set(
    entry: RegionSetSpec, i: int, base: Path, spec_path: str
) -> tuple[str, Path, Path, list[RegionRef]]:
    """(name, content, mask, regions) of the spec's ``regions[i]``; ``SpecError`` names the field."""
    where = f"{spec_path}: regions[{i}]"
    content = _file(entry.content, base, f"{where}.content")
    mask = _file(entry.mask, base, f"{where}.mask")
    (w, h), (mw, mh) = _size(content, f"{where}.content"), _size(mask, f"{where}.mask")
    if abs(mw / mh - w / h) > ASPECT_TOLERANCE * w / h:
        raise SpecError(
            f"{where}.mask {mask}: {mw}x{mh} px, not in the proportions of the photo ({w}x{h} px)"
        )
    seen: dict[tuple[int, int, int], str] = {}
    regions = []
    for colour, value in entry.styles.items():
        rgb = _colour(colour, f"{where}.styles")
        if rgb in seen:
            raise SpecError(f"{where}.styles: {colour!r} and {seen[rgb]!r} are the same colour")
        seen[rgb] = colour
        style = None if value.strip().lower() == "none" else _file(value, base, f"{where}.styles[{colour!r}]")
        regions.append(
            RegionRef(colour, str(style) if style else None, file_sha256(style) if style else None)
        )
    if all(r.style is None for r in regions):
        raise SpecError(f"{where}.styles: every colour keeps the photo (none): name a style image for one")
    by_rgb = {_colour(r.colour, ""): k for k, r in enumerate(regions)}
    for colour, value in entry.style_masks.items():
        k = by_rgb.get(_colour(colour, f"{where}.style_masks"))
        if k is None or regions[k].style is None:
            raise SpecError(f"{where}.style_masks: {colour!r} is not a colour of styles with a style image")
        path = _file(value, base, f"{where}.style_masks[{colour!r}]")
        regions[k] = RegionRef(
            regions[k].colour, regions[k].style, regions[k].style_sha256, str(path), file_sha256(path)
        )
    return entry.name or mask.stem, content, mask, regions


def _colour(text: str, where: str) -> tuple[int, int, int]:
    try:
        return parse_colour(text, where)
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def region_jobs(
    spec: SweepSpec, spec_path: str, sets: Sequence[ParameterSet], varied: dict[str, list[str]]
) -> tuple[list[Job], tuple[str, ...]]:
    """(the jobs of the spec's ``regions``, the spec's algorithms left out of them)."""
    if not spec.regions:
        return [], ()
    base = spec_dir(spec_path)
    able = [s for s in sets if get_algorithm(s.algorithm).spatial_control]
    left_out = tuple(dict.fromkeys(s.algorithm for s in sets if s not in able))
    jobs = []
    for i, entry in enumerate(spec.regions):
        name, content, mask, regions = resolve_region_set(entry, i, base, spec_path)
        first = next(r for r in regions if r.style is not None)
        content_sha, mask_sha = file_sha256(content), file_sha256(mask)
        key = [mask_sha, [[r.colour.lower(), r.style_sha256, r.style_mask_sha256] for r in regions]]
        for pset in able:
            seeds = list(spec.seeds) if pset.uses_seed else [None]
            for seed in seeds:
                jid = make_job_id(content_sha, first.style_sha256, pset.algorithm, {**pset.params, "regions": key},
                                  seed, spec.size, spec.style_size)  # fmt: skip
                jobs.append(
                    spec_job(
                        spec,
                        pset,
                        seed,
                        varied,
                        base,
                        also_shown={"regions": name},
                        job_id=jid,
                        content=str(content),
                        style=first.style,
                        content_sha256=content_sha,
                        style_sha256=first.style_sha256,
                        mask=str(mask),
                        mask_sha256=mask_sha,
                        regions=tuple(regions),
                        regions_name=name,
                    )  # fmt: skip
                )
    return jobs, left_out

"""Grid expansion: a validated spec -> the list of Jobs, each with a deterministic id.

A job id is a hash of the content and style files' bytes, the algorithm, every resolved parameter
that applies (defaults included), the seed where the parameters use it, and the sizes. Renaming
or moving an image keeps its jobs' ids; editing its pixels, a parameter or a default makes new
ones. Two files with the same bytes are two images (each name gets its rows): the second, in
path order, adds its name to its ids. Re-running a spec therefore skips exactly the jobs whose results exist. Jobs that could not
differ (seeds the parameters do not use, grid points equal once unused parameters are left out)
are folded into one.

A parameter added after results existed is left out of the id at the value that does what was
done before it existed (``ID_NEUTRAL``: ``memory_budget: auto``), so adding it does not make every
existing job new; any other value of it is part of the id.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.shared.parameters import file_fields

from ..params import ParameterError, build_params, params_to_dict
from ..specs.loading import SpecError, spec_dir
from ..specs.sweep import SweepSpec


@dataclass(frozen=True)
class RegionRef:
    """One region of a spatially controlled job: its colour in the label image and its style
    image (None: the photo is kept there), optionally with a label image of that style."""

    colour: str  # as the spec writes it
    style: str | None  # absolute path
    style_sha256: str | None = None
    style_mask: str | None = None
    style_mask_sha256: str | None = None


@dataclass(frozen=True)
class Job:
    """One unit of work; crosses the process boundary to a Ray worker as is."""

    job_id: str
    algorithm: str
    content: str  # absolute path (where the driver reads the file)
    style: str
    content_sha256: str
    style_sha256: str
    params: dict[str, Any]  # every parameter that applies, resolved (JSON-able)
    seed: int | None  # None: with these parameters the output does not depend on the seed
    size: int
    style_size: int
    num_cpus: float
    num_gpus: float
    snapshot_every: int | None = None  # also log the image every N steps (not part of the id)
    # what tells this job apart from the other jobs of its algorithm in the spec: the parameters
    # (and the seed) whose values differ between them; names the variant in files and reports
    varied: dict[str, Any] = field(default_factory=dict)
    spec_folder: str = ""  # the folder of the spec that named the images (their references' base)
    # spatial control (the spec's ``regions``): the label image of the content and its regions;
    # ``style`` is then the first region's style image (what the quality measures compare with)
    mask: str | None = None
    mask_sha256: str | None = None
    regions: tuple[RegionRef, ...] = ()
    regions_name: str = ""

    def region_files(self) -> dict[str, str]:
        """path -> SHA-256 of the files of the regions: the mask, the styles, the style masks."""
        files = {self.mask: self.mask_sha256} if self.mask else {}
        for r in self.regions:
            files.update({r.style: r.style_sha256} if r.style else {})
            files.update({r.style_mask: r.style_mask_sha256} if r.style_mask else {})
        return files

    def extra_files(self) -> list[tuple[str, str]]:
        """(path, SHA-256) of the files besides the content and style a worker needs (the
        regions' other files), one per content."""
        seen, out = {self.style_sha256}, []
        for path, sha in self.region_files().items():
            if sha not in seen:
                seen.add(sha)
                out.append((path, sha))
        return out

    def regions_record(self) -> str:
        """The regions as the results table records them (JSON, files relative to the spec's
        folder); "" for a job without."""
        if not self.regions:
            return ""
        ref = lambda p: source_ref(p, self.spec_folder) if p else None  # noqa: E731
        return json.dumps({
            "name": self.regions_name,
            "mask": ref(self.mask),
            "mask_sha256": self.mask_sha256,
            "styles": {r.colour: ref(r.style) or "none" for r in self.regions},
            "style_masks": {r.colour: ref(r.style_mask) for r in self.regions if r.style_mask},
        })  # fmt: skip

    @property
    def content_ref(self) -> str:
        """The content image as recorded: relative to the spec's folder (``source_ref``)."""
        return source_ref(self.content, self.spec_folder)

    @property
    def style_ref(self) -> str:
        return source_ref(self.style, self.spec_folder)

    def variant_items(self) -> list[tuple[str, str]]:
        return [(k, _short(v)) for k, v in self.varied.items()]

    @property
    def variant(self) -> str:
        """``style_weight=5 seed=1``; empty when the spec runs this algorithm one way."""
        return " ".join(f"{k}={v}" for k, v in self.variant_items())

    @property
    def label(self) -> str:
        names = f"{self.algorithm} {Path(self.content).stem} x {Path(self.style).stem}"
        return f"{names} {self.variant}".rstrip()


def source_ref(path: str, spec_folder: str) -> str:
    """How a result records an image file: its path relative to the spec's folder, with ``/``
    (``../photos/a.jpg``), so that nothing in an output folder depends on where the machine kept
    the files; the path as it is without a spec folder or where no relative path exists (another
    drive)."""
    if not spec_folder:
        return path
    try:
        return Path(os.path.relpath(path, spec_folder)).as_posix()
    except ValueError:
        return path


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_short(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


ID_NEUTRAL = {"memory_budget": "auto"}


def make_job_id(
    content_sha: str,
    style_sha: str,
    algorithm: str,
    params: dict[str, Any],
    seed: int | None,
    size: int,
    style_size: int,
) -> str:
    key = json.dumps(
        {
            "content": content_sha,
            "style": style_sha,
            "algorithm": algorithm,
            "params": {k: v for k, v in params.items() if k not in ID_NEUTRAL or ID_NEUTRAL[k] != v},
            "seed": seed,
            "size": size,
            "style_size": style_size,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ParameterSet:
    algorithm: str
    params: dict[str, Any]  # the parameters that apply
    uses_seed: bool
    styles: tuple[str, ...] | None = None  # only the style images these name (AlgorithmSpec.styles)


def parameter_sets(spec: SweepSpec, spec_path: str) -> list[ParameterSet]:
    """Every algorithm x grid point, validated, with only the parameters that apply."""
    out = []
    for i, algo in enumerate(spec.algorithms):
        params_type = get_algorithm(algo.name).params_type
        keys = list(algo.grid)
        for values in itertools.product(*(algo.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            fixed = dict(algo.params)
            fields = {f.name for f in dataclasses.fields(params_type)}
            if spec.steps is not None and "steps" in fields:
                fixed.setdefault("steps", spec.steps)
            if spec.memory_budget is not None and "memory_budget" in fields:
                fixed.setdefault("memory_budget", spec.memory_budget)
            where = f"{spec_path}: algorithms[{i}] ({algo.name}) {point or ''}: "
            values = relative_to_spec({**fixed, **point}, file_fields(params_type), spec_dir(spec_path))
            try:
                params = build_params(params_type, values, where)
            except ParameterError as exc:
                raise SpecError(str(exc)) from None
            out.append(
                ParameterSet(
                    algo.name, params_to_dict(params, active_only=True), params.uses_seed(),
                    tuple(algo.styles) if algo.styles is not None else None,
                )
            )  # fmt: skip
    return out


def relative_to_spec(values: dict[str, Any], files: frozenset[str], base: Path) -> dict[str, Any]:
    """File parameters (a decoder, a network, an init image) given relative to the spec's folder,
    as the images are: a relative value that names a file there becomes that file's path (other
    values, ``default``, ``caffe`` or a models:/ URI, are left as written)."""
    out = dict(values)
    for k in files & out.keys():
        v = out[k]
        if isinstance(v, str) and v and not os.path.isabs(v) and "://" not in v and ":/" not in v:
            candidate = base / v
            if candidate.is_file():
                out[k] = str(candidate.resolve())
    return out


def varied_keys(sets: list[ParameterSet]) -> dict[str, list[str]]:
    """Per algorithm, the parameters whose values differ between its parameter sets."""
    keys: dict[str, list[str]] = {}
    for name in dict.fromkeys(s.algorithm for s in sets):
        mine = [s.params for s in sets if s.algorithm == name]
        names = list(dict.fromkeys(k for p in mine for k in p))
        keys[name] = [k for k in names if len({json.dumps(p.get(k), sort_keys=True) for p in mine}) > 1]
    return keys


def image_keys(paths: list[Path], shas: dict[Path, str]) -> dict[Path, str]:
    """What identifies each image in job ids: its bytes' hash, so that a renamed file keeps its
    results; files listed with the same bytes as an earlier one (in path order) add their name,
    so each name gets its own job and row."""
    keys: dict[Path, str] = {}
    seen: set[str] = set()
    for p in sorted(paths):
        keys[p] = shas[p] if shas[p] not in seen else f"{shas[p]}:{p.name}"
        seen.add(shas[p])
    return keys


def grid_settings(spec: SweepSpec) -> int:
    """(algorithm, grid point) pairs of the spec, counted as a product (nothing is expanded)."""
    return sum(math.prod(len(v) for v in a.grid.values()) for a in spec.algorithms)


def grid_size(spec: SweepSpec, contents: int, styles: int) -> int:
    """Jobs of the grid before any folding."""
    return contents * styles * grid_settings(spec) * len(spec.seeds)


def check_grid_size(spec: SweepSpec, spec_path: str, contents: int, styles: int) -> None:
    n = grid_size(spec, contents, styles)
    if n > spec.max_jobs:
        raise SpecError(
            f"{spec_path}: the grid has {n:,} jobs ({contents} content x {styles} style images x "
            f"{grid_settings(spec):,} algorithm settings x {len(spec.seeds)} seeds), more than max_jobs="
            f"{spec.max_jobs:,}; set max_jobs in the spec if you mean it"
        )


def style_named(path: Path, names: tuple[str, ...]) -> bool:
    """Whether a style image is one of ``names``: file names, stems or glob patterns of them."""
    return any(fnmatch.fnmatchcase(path.name, n) or fnmatch.fnmatchcase(path.stem, n) for n in names)


def check_style_names(spec: SweepSpec, spec_path: str, styles: list[Path]) -> None:
    """Each name of an algorithm's ``styles`` matches one of the sweep's style images."""
    for i, algo in enumerate(spec.algorithms):
        for name in algo.styles or ():
            if not any(style_named(p, (name,)) for p in styles):
                raise SpecError(
                    f"{spec_path}: algorithms[{i}] ({algo.name}) styles: {name!r} is none of the sweep's "
                    f"style images ({', '.join(sorted(p.name for p in styles))})"
                )


def spec_job(spec: SweepSpec, pset: ParameterSet, seed: int | None, varied: dict[str, list[str]], base: Path,
             *, also_shown: dict[str, Any] | None = None, **fields: Any) -> Job:  # fmt: skip
    """The Job of ``pset`` at ``seed`` with the spec's sizes, resources and snapshots; its variant
    shows the parameters ``varied`` lists for its algorithm (and the seed where the spec has
    several), then ``also_shown``; ``fields``: the id, the images and anything else of this job."""
    shown = {k: pset.params.get(k) for k in varied[pset.algorithm]}
    if seed is not None and len(spec.seeds) > 1:
        shown["seed"] = seed
    shown.update(also_shown or {})
    return Job(
        algorithm=pset.algorithm, params=pset.params, seed=seed, size=spec.size, style_size=spec.style_size,
        num_cpus=spec.resources.num_cpus, num_gpus=spec.resources.num_gpus, snapshot_every=spec.snapshot_every,
        varied=shown, spec_folder=str(base), **fields,
    )  # fmt: skip

"""The three YAML specs stylegrid reads, validated by pydantic, and their path rules:
``SweepSpec`` (``stylegrid sweep``), ``CatalogSpec`` (``stylegrid stylize-catalog``) and
the training specs (``train_spec.py``, same rules). Every error names the file, the field and what is
allowed; relative paths in a file are taken from the file's folder. A sweep spec:

    name: demo
    content: [../samples/content/tubingen.jpg, ../samples/content/*.jpg, ../samples/content/]
    style: [../samples/style/starry_night.jpg]
    algorithms:
      - name: gatys
        params: {tv_weight: 0.0}          # fixed values
        grid: {style_weight: [1, 2.5, 5]} # lists expand as a product
    seeds: [0]
    size: 128
    steps: 40
    resources: {num_cpus: 1, num_gpus: 0}
    output: null                          # default: runs/<name> in the current folder
    tracking_uri: null                    # default: sqlite:///<output>/mlflow.db
    retries: 2                            # re-runs of a job whose worker died or timed out
    timeout_s: null                       # seconds a job may run (default: no limit)
    max_jobs: 100000                      # grids larger than this are refused before expansion
    max_concurrent: null                  # default: as many as the cluster's current resources allow;
                                          # set it on an autoscaling cluster to make it grow

Relative image and output paths are relative to the spec file's folder; without ``output`` the
results go to ``runs/<name>`` in the current folder (``--output`` overrides both). Every error names the
file, the field and what is allowed.

Why this module is long (about 420 lines): the sweep and catalog specs (with their spatial-control
entries) share the YAML reading, the path rules and the error wording; the field declarations,
each with its description for the reference pages, are most of it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from stylegrid.algorithms import ALGORITHMS, get_algorithm
from stylegrid.algorithms.names import (
    DEFAULT_SIZE,
    DEFAULT_STYLE_SIZE,
    MAX_STEPS,
    did_you_mean,
    unknown_algorithm,
)

from ..limits import check_size
from ..params import (
    ParameterError,
    apply_model_settings,
    check_names,
    field_names,
    parse_assignment,
    parse_cli_value,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class SpecError(ValueError):
    """An invalid experiment spec; the message names the file, the field and what is allowed."""


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per job (torch threads follow it)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per job; fractions share a GPU")


class EarlyStoppingSpec(BaseModel):
    """Successive halving (``halving.py``): jobs measured at rungs, the hopeless ones stopped."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    measure: str | list[str] = Field(
        "style_distance",
        description="the quality measure compared at each rung, or two (compared by Pareto rank), "
        "e.g. [content_distance, style_distance]",
    )
    rungs: list[float] = Field(
        default_factory=lambda: [0.1, 0.3],
        min_length=1,
        description="when jobs are compared: fractions of each job's steps, each in (0, 1)",
    )
    reduction_factor: float = Field(
        3.0, gt=1, description="at each rung the best 1/reduction_factor of a group's jobs go on"
    )
    min_results: int = Field(
        3, ge=1, description="a rung stops no job before it has this many results in the job's group"
    )

    @field_validator("rungs")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in value):
            raise ValueError(f"each rung is a fraction of the steps in (0, 1), got {value}")
        return sorted(set(value))

    @field_validator("measure")
    @classmethod
    def _known(cls, value: str | list[str]) -> str | list[str]:
        from stylegrid.algorithms.shared.metrics import MEASURES

        names = [value] if isinstance(value, str) else value
        known = [m.name for m in MEASURES]
        if not 1 <= len(names) <= 2 or len(set(names)) != len(names):
            raise ValueError(f"one measure or two different ones, got {value}")
        for name in names:
            if name not in known:
                raise ValueError(
                    f"unknown measure {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
                )
        return value

    @property
    def measures(self) -> tuple[str, ...]:
        return (self.measure,) if isinstance(self.measure, str) else tuple(self.measure)


class AlgorithmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict, description="fixed parameter values")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="lists expanded as a product")
    styles: list[str] | None = Field(
        None,
        min_length=1,
        description="only these of the sweep's style images (file names, stems or globs): e.g. the "
        "paintings a fast style network was trained on",
    )


class RegionSetSpec(BaseModel):
    """Spatial control in a sweep: one photo, a label image of it and, per colour, the style
    image of that region or ``none`` (keep the photo); run by every algorithm of the spec that
    has spatial control (``docs/regions.md``)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="how rows and files name it (default: the mask's stem)",
    )
    content: str = Field(description="the photo (a file, relative to the spec's folder)")
    mask: str = Field(description="its label image: each colour names a region")
    styles: dict[str, str] = Field(
        min_length=1, description="colour -> the region's style image, or none to keep the photo"
    )
    style_masks: dict[str, str] = Field(
        default_factory=dict,
        description="colour -> a label image of that region's style image (its pixels of the colour are the part drawn from)",
    )


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    content: list[str] = Field(
        default_factory=list,
        description="photos: files, globs, folders; the grid's (empty in a spec of regions only)",
    )
    style: list[str] = Field(
        default_factory=list,
        description="style images: files, globs, folders; the grid's (empty in a spec of regions only)",
    )
    algorithms: list[AlgorithmSpec] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    size: int = Field(DEFAULT_SIZE, description="output long side in pixels (16..8192)")
    style_size: int = Field(DEFAULT_STYLE_SIZE, description="maximum long side of style images (16..8192)")
    steps: int | None = Field(None, gt=0, le=MAX_STEPS, description="overrides every algorithm's steps")
    memory_budget: str | None = Field(
        None,
        description="the memory_budget of every algorithm that has one (auto, or a size such as 2GB): "
        "larger images are done in tiles",
    )
    resources: Resources = Field(default_factory=Resources)
    output: str | None = Field(
        None,
        description="results folder or object-store URI (s3://...); default runs/<name> in the current folder",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default a SQLite store in output"
    )
    retries: int = Field(2, ge=0, description="re-runs of a job whose worker process died or timed out")
    snapshot_every: int | None = Field(
        None, gt=0, description="also log each job's image to MLflow every N steps (a slider in the UI)"
    )
    max_concurrent: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(
        None, gt=0, description="a job running longer is stopped (its worker killed) and retried or failed"
    )
    max_jobs: int = Field(100_000, gt=0, description="refuse grids larger than this (a typo guard)")
    early_stopping: EarlyStoppingSpec | None = Field(
        None,
        description="successive halving: jobs compared at rungs (fractions of their steps) with the "
        "jobs of the same picture; the hopeless ones stop there with status `stopped`",
    )
    regions: list[RegionSetSpec] = Field(
        default_factory=list,
        description="spatial control: photos with label images and a style (or none) per colour, "
        "run by every algorithm with spatial control in addition to the grid",
    )

    @pydantic.field_validator("size", "style_size")
    @classmethod
    def _bounded(cls, value: int) -> int:
        return check_size(value, "size")

    @pydantic.model_validator(mode="after")
    def _grid_or_regions(self) -> SweepSpec:
        """A grid needs photos and styles; a spec of regions only (each with its photo and
        styles) needs neither, and half a grid is a mistake."""
        missing = [f for f in ("content", "style") if not getattr(self, f)]
        if missing and not self.regions:
            raise ValueError(
                f"{missing[0]}: give at least one image (or regions: each names its photo and styles)"
            )
        if len(missing) == 1:
            raise ValueError(f"{missing[0]}: empty while {'style' if missing[0] == 'content' else 'content'} is "
                             "not: give both (the whole-photo grid) or neither (regions only)")  # fmt: skip
        return self


def _format_validation_error(path: Path, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(f"{loc}: {msg}" if loc else msg)  # a whole-spec check names its fields itself
    return f"{path}: " + "; ".join(problems)


M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: YAML's own rule, which PyYAML
    does not enforce (it keeps the last value, so a repeated `steps:` would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.YAMLError(
                    f"the key {key!r} is given twice (lines {seen[key]} and {key_node.start_mark.line + 1})"
                )
            seen.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def read_model(path: Path, model: type[M], fields_hint: str) -> M:
    """A YAML file (safe loader) validated into a pydantic model; errors name the file and field."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of fields ({fields_hint})")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise SpecError(_format_validation_error(path, exc)) from None


def load_spec(path: str | os.PathLike, settings: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a spec (YAML read with the safe loader), with the command line's
    ``--set NAME=VALUE`` settings on top (``apply_sweep_settings``)."""
    p = Path(path)
    spec = read_model(p, SweepSpec, "name, content, style, algorithms, ...")
    spec = apply_sweep_settings(spec, settings)
    for i, algo in enumerate(spec.algorithms):
        where = f"{p}: algorithms[{i}]"
        if algo.name not in ALGORITHMS:
            raise SpecError(f"{where}.name: {unknown_algorithm(algo.name)}")
        params_type = get_algorithm(algo.name).params_type
        both = set(algo.params) & set(algo.grid)
        if both:
            raise SpecError(f"{where}: {sorted(both)} given both in params and in grid")
        for section in ("params", "grid"):
            try:
                check_names(params_type, getattr(algo, section), f"{where}.{section}: ")
            except ParameterError as exc:
                raise SpecError(str(exc)) from None
        for key, values in algo.grid.items():
            if not values:
                raise SpecError(f"{where}.grid.{key}: an empty list expands to no jobs")
    return spec


SWEEP_FIELDS_NOT_SET = ("name", "content", "style", "algorithms", "resources")  # edit the file for these


def _parameters(entry: AlgorithmSpec) -> tuple[type | None, list[str]]:
    """An algorithm entry's parameter dataclass and its field names (none for an unknown name)."""
    if entry.name not in ALGORITHMS:
        return None, []
    params_type = get_algorithm(entry.name).params_type
    return params_type, field_names(params_type)


def apply_sweep_settings(spec: SweepSpec, assignments: Sequence[str]) -> SweepSpec:
    """``--set NAME=VALUE`` on a sweep: a field of the spec (``size``, ``steps``, ``seeds``,
    ``tracking_uri``, ...), else a parameter of every algorithm of the spec that has it (fixed for
    all its jobs: out of the grid). A name that is neither is refused with the nearest one."""
    settable = [f for f in SweepSpec.model_fields if f not in SWEEP_FIELDS_NOT_SET]
    known = {f for entry in spec.algorithms for f in _parameters(entry)[1]}
    pairs = [parse_assignment(text) for text in assignments]
    for name, _ in pairs:
        if name not in settable and name not in known:
            raise ParameterError(
                f"--set: {name!r} is neither a setting of the spec nor a parameter of its algorithms"
                f"{did_you_mean(name, [*settable, *known])}; settings: {', '.join(settable)}"
            )
    spec = apply_model_settings(
        spec, [t for t, (n, _) in zip(assignments, pairs, strict=True) if n in settable]
    )
    per_algorithm = {n: v for n, v in pairs if n not in settable}
    if not per_algorithm:
        return spec
    entries = []
    for entry in spec.algorithms:
        params_type, names = _parameters(entry)
        mine = {k: parse_cli_value(params_type, k, v) for k, v in per_algorithm.items() if k in names}
        grid = {k: v for k, v in entry.grid.items() if k not in mine}
        entries.append(entry.model_copy(update={"params": {**entry.params, **mine}, "grid": grid}))
    return spec.model_copy(update={"algorithms": entries})


def spec_dir(path: str | os.PathLike) -> Path:
    return Path(path).resolve().parent


def resolve_path(path: str, base: Path) -> Path:
    """``path`` with ``~`` expanded, taken from ``base`` when relative."""
    full = Path(os.path.expanduser(path))
    return full if full.is_absolute() else base / full


def resolve_location(location: str, base: Path) -> str:
    """``resolve_path`` for a path that may also be a URI (``s3://bucket/prefix``), kept as it is."""
    from ..storage import locations as storage

    return location if storage.is_uri(location) else str(resolve_path(location, base))


def resolve_images(patterns: list[str], base: Path, field: str, spec_path: str | os.PathLike) -> list[Path]:
    """Files, globs and folders (their images, not recursive) -> sorted unique image paths."""
    found: list[Path] = []
    for i, pattern in enumerate(patterns):
        where = f"{spec_path}: {field}[{i}] {pattern!r}"
        full = resolve_path(pattern, base)
        if full.is_dir():
            matches = sorted(f for f in full.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not matches:
                raise SpecError(f"{where}: the folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
            found += matches
        elif full.is_file():  # a name that exists is taken literally, brackets and all
            found.append(full)
        elif glob.has_magic(str(full)):
            matches = sorted(Path(m) for m in glob_literal_dirs(full) if Path(m).is_file())
            if not matches:
                raise SpecError(f"{where}: no such file, and as a pattern it matches no file")
            found += matches
        else:
            raise SpecError(f"{where}: no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in found))


def resolve_image_locations(
    patterns: list[str], base: Path, field: str, spec_path: str | os.PathLike
) -> list[str]:
    """``resolve_images`` for patterns that may also be URIs (``s3://bucket/photos/``,
    ``gs://bucket/art/*.jpg``): their files are listed through the store (``storage``)."""
    from ..storage import locations as storage

    found: list[str] = []
    for i, pattern in enumerate(patterns):
        if not storage.is_uri(pattern):
            found += [str(p) for p in resolve_images([pattern], base, field, spec_path)]
            continue
        where = f"{spec_path}: {field}[{i}] {pattern!r}"
        try:
            if storage.has_magic(pattern):
                matches = [m for m in storage.glob_files(pattern) if _is_image_name(m)]
            elif storage.is_dir(pattern):
                matches = [m for m in storage.list_files(pattern) if _is_image_name(m)]
            elif storage.exists(pattern):
                matches = [pattern]
            else:
                raise SpecError(f"{where}: no such object or prefix")
        except (OSError, ValueError) as exc:
            raise SpecError(f"{where}: cannot list it ({' '.join(str(exc).split())[:200]})") from None
        if not matches:
            raise SpecError(f"{where}: no image files there ({', '.join(IMAGE_SUFFIXES)})")
        found += matches
    return list(dict.fromkeys(found))


def _is_image_name(location: str) -> bool:
    return os.path.splitext(location)[1].lower() in IMAGE_SUFFIXES


def glob_literal_dirs(pattern: Path, recursive: bool = False) -> list[str]:
    """``glob.glob`` where only the last path component is a pattern when the folders exist as
    written (``shoot [2024]/*.jpg`` looks in the folder ``shoot [2024]``)."""
    if pattern.parent.is_dir():
        return glob.glob(os.path.join(glob.escape(str(pattern.parent)), pattern.name), recursive=recursive)
    return glob.glob(str(pattern), recursive=recursive)


def output_location(spec: BaseModel, spec_path: str | os.PathLike, override: str | None = None) -> Path | str:
    """``output_dir``, or the URI of an object store (``s3://bucket/sweeps/demo``) as written."""
    from ..storage import locations as storage

    chosen = override or spec.output
    if chosen and storage.is_remote(chosen):
        return chosen.rstrip("/")
    return output_dir(spec, spec_path, override)


def output_dir(spec: BaseModel, spec_path: str | os.PathLike, override: str | None = None) -> Path:
    """The results folder of a sweep or training spec (any spec with ``name`` and ``output``)."""
    if override:
        return Path(override).expanduser().resolve()
    if spec.output:
        return resolve_path(spec.output, spec_dir(spec_path)).resolve()
    return (Path.cwd() / "runs" / spec.name).resolve()


class CatalogSpec(BaseModel):
    """``stylegrid stylize-catalog``'s options; the YAML file has the same fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    input: str = Field(
        description="a folder (searched recursively), a glob, or a .csv / .parquet manifest; "
        "a local path or a URI (s3://bucket/photos/, gs://...)"
    )
    style: list[str] = Field(
        min_length=1, description="style image files or URIs; every source gets each one"
    )
    out: str = Field(description="output folder or URI: images/, manifest/ (and the MLflow store when local)")
    algorithm: str = "adain"
    size: int | None = Field(
        DEFAULT_SIZE, description="long side of the outputs (16..8192); null keeps each image's size"
    )
    style_size: int = Field(
        DEFAULT_STYLE_SIZE, description="maximum long side of the style images (16..8192)"
    )
    alpha: float | None = Field(None, ge=0, le=1, description="style strength (the algorithm's default)")
    memory_budget: str | None = Field(
        None,
        description="memory one model pass may take (auto, or a size such as 2GB): larger images "
        "are done in overlapping tiles, recorded in the manifest's tiles column",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="other algorithm parameters")
    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(92, ge=1, le=100, description="JPEG quality")
    batch_size: int | None = Field(
        None, gt=0, description="images per model call; default 1 on CPUs, 8 on GPUs"
    )
    num_gpus: float | None = Field(None, ge=0, description="GPUs to use; default every GPU of the cluster")
    actors: int | None = Field(None, gt=0, description="model replicas; default from the cluster's resources")
    actor_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each model actor also needs, to pin the actors to the nodes "
        "that have them (e.g. {stylegrid_worker: 1} where the GPU nodes declare it)",
    )
    path_column: str = Field("path", description="the manifest column holding the image paths")
    engine: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="ray: a Ray Data pipeline over the cluster; local: this process (a thread decodes "
        "ahead of the model); auto: ray where a cluster is named (RAY_ADDRESS, `ray job submit`, a "
        "Ray already joined) or actors, actor_resources or num_gpus > 0 ask for Ray's scheduling, else local",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow; default MLFLOW_TRACKING_URI, else sqlite:///<out>/mlflow.db"
    )
    experiment: str = "stylize-catalog"

    @field_validator("size", "style_size")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        return value if value is None else check_size(value, "size")


def load_catalog_spec(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> CatalogSpec:
    """A YAML catalog spec with command-line ``overrides``; relative paths in the file are taken
    from the file's folder."""
    p = Path(path)
    spec = read_model(p, CatalogSpec, "input, style, out, algorithm, size, ...")
    base = p.resolve().parent
    rebased = {
        "input": resolve_location(spec.input, base),
        "out": resolve_location(spec.out, base),
        "style": [resolve_location(s, base) for s in spec.style],
    }
    return spec.model_copy(update={**rebased, **(overrides or {})})

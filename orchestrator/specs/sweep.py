"""The sweep spec (``stylegrid sweep``), validated by pydantic (the reading and path rules every
spec shares are ``loading.py``). Every error names the file, the field and what is allowed;
relative paths in a file are taken from the file's folder. A sweep spec:

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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic
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
from .loading import SpecError, read_model


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    num_cpus: float = Field(1.0, gt=0, description="CPUs per job (torch threads follow it)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per job; fractions share a GPU")


class EarlyStoppingSpec(BaseModel):
    """Successive halving (``sweep/halving.py``): jobs measured at rungs, the hopeless ones stopped."""

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

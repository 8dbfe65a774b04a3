"""Grid expansion: a validated spec -> the list of Jobs, each with a deterministic id.

A job id is a hash of the content and style files' bytes, the algorithm, every resolved parameter
(defaults included), the seed and the sizes. Renaming or moving an image keeps its jobs' ids;
editing its pixels, a parameter or a default makes new ones. Re-running a spec therefore skips
exactly the jobs whose results exist.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algorithms import get_algorithm

from .params import ParameterError, build_params, params_to_dict
from .spec import SpecError, SweepSpec, resolve_images, spec_dir


@dataclass(frozen=True)
class Job:
    """One unit of work; crosses the process boundary to a Ray worker as is."""

    job_id: str
    algorithm: str
    content: str  # absolute path
    style: str
    content_sha256: str
    style_sha256: str
    params: dict[str, Any]  # every parameter, resolved (JSON-able)
    seed: int
    size: int
    style_size: int
    num_cpus: float
    num_gpus: float

    @property
    def label(self) -> str:
        return f"{self.algorithm} {Path(self.content).stem} x {Path(self.style).stem} seed {self.seed}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_job_id(
    content_sha: str,
    style_sha: str,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    size: int,
    style_size: int,
) -> str:
    key = json.dumps(
        {
            "content": content_sha,
            "style": style_sha,
            "algorithm": algorithm,
            "params": params,
            "seed": seed,
            "size": size,
            "style_size": style_size,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def parameter_sets(spec: SweepSpec, spec_path: str) -> list[tuple[str, dict[str, Any]]]:
    """(algorithm, resolved parameters) for every algorithm x grid point, validated."""
    out = []
    for i, algo in enumerate(spec.algorithms):
        params_type = get_algorithm(algo.name).params_type
        keys = list(algo.grid)
        for values in itertools.product(*(algo.grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            fixed = dict(algo.params)
            if spec.steps is not None and "steps" in {f.name for f in dataclasses.fields(params_type)}:
                fixed.setdefault("steps", spec.steps)
            where = f"{spec_path}: algorithms[{i}] ({algo.name}) {point or ''}: "
            try:
                params = build_params(params_type, {**fixed, **point}, where)
            except ParameterError as exc:
                raise SpecError(str(exc)) from None
            out.append((algo.name, params_to_dict(params)))
    return out


def expand(spec: SweepSpec, spec_path: str) -> list[Job]:
    """Every content x style x (algorithm, grid point) x seed, in a stable order."""
    base = spec_dir(spec_path)
    contents = resolve_images(spec.content, base, "content", spec_path)
    styles = resolve_images(spec.style, base, "style", spec_path)
    shas = {p: file_sha256(p) for p in [*contents, *styles]}
    jobs = []
    for (algorithm, params), content, style, seed in itertools.product(
        parameter_sets(spec, spec_path), contents, styles, spec.seeds
    ):
        jid = make_job_id(shas[content], shas[style], algorithm, params, seed, spec.size, spec.style_size)
        jobs.append(
            Job(
                job_id=jid,
                algorithm=algorithm,
                content=str(content),
                style=str(style),
                content_sha256=shas[content],
                style_sha256=shas[style],
                params=params,
                seed=seed,
                size=spec.size,
                style_size=spec.style_size,
                num_cpus=spec.resources.num_cpus,
                num_gpus=spec.resources.num_gpus,
            )
        )
    return list({j.job_id: j for j in jobs}.values())  # the same image listed twice runs once

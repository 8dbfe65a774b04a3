"""A sweep spec expanded into its jobs: every content x style x (algorithm, grid point) x seed,
the jobs of its region sets, and what the expansion folded. The job record, its id and its
parameters are ``sweep/jobs.py``; the jobs of region sets ``sweep/region_jobs.py``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..specs.loading import resolve_images, spec_dir
from ..specs.sweep import SweepSpec
from .jobs import (
    Job,
    check_grid_size,
    check_style_names,
    file_sha256,
    image_keys,
    make_job_id,
    parameter_sets,
    spec_job,
    style_named,
    varied_keys,
)
from .region_jobs import region_jobs


@dataclass(frozen=True)
class Expansion:
    """A spec's jobs, and how many the expansion folded because they could not differ."""

    jobs: list[Job]
    folded_seeds: int  # seed copies of jobs whose parameters do not use the seed
    folded_duplicates: int  # grid points identical once unused parameters are left out, and
    # images listed twice
    without_regions: tuple[
        str, ...
    ] = ()  # algorithms of the spec left out of its regions (no spatial control)


def plan_jobs(spec: SweepSpec, spec_path: str) -> Expansion:
    """Every content x style x (algorithm, grid point) x seed, in a stable order; one job where
    the seed cannot matter (``Params.uses_seed``) and one per distinct set of parameters."""
    base = spec_dir(spec_path)
    contents = resolve_images(spec.content, base, "content", spec_path)
    styles = resolve_images(spec.style, base, "style", spec_path)
    check_grid_size(spec, spec_path, len(contents), len(styles))
    shas = {p: file_sha256(p) for p in [*contents, *styles]}
    keys = image_keys(contents, shas) | image_keys(styles, shas)
    sets = parameter_sets(spec, spec_path)
    check_style_names(spec, spec_path, styles)
    varied = varied_keys(sets)
    jobs: dict[str, Job] = {}
    folded_seeds = considered = 0
    for pset, content, style in itertools.product(sets, contents, styles):
        if pset.styles is not None and not style_named(style, pset.styles):
            continue
        seeds: list[int | None] = list(spec.seeds) if pset.uses_seed else [None]
        folded_seeds += len(spec.seeds) - len(seeds)
        for seed in seeds:
            considered += 1
            jid = make_job_id(
                keys[content], keys[style], pset.algorithm, pset.params, seed, spec.size, spec.style_size
            )
            jobs.setdefault(
                jid,
                spec_job(
                    spec,
                    pset,
                    seed,
                    varied,
                    base,
                    job_id=jid,
                    content=str(content),
                    style=str(style),
                    content_sha256=shas[content],
                    style_sha256=shas[style],
                ),  # fmt: skip
            )
    folded = considered - len(jobs)
    extra, left_out = region_jobs(spec, spec_path, sets, varied)
    for job in extra:
        jobs.setdefault(job.job_id, job)
    return Expansion(list(jobs.values()), folded_seeds, folded, left_out)


def expand(spec: SweepSpec, spec_path: str) -> list[Job]:
    """The jobs of ``plan_jobs``."""
    return plan_jobs(spec, spec_path).jobs

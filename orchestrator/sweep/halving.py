"""Early stopping in sweeps: asynchronous successive halving (Li et al., "A System for Massively
Parallel Hyperparameter Tuning", MLSys 2020 — ASHA, the rule behind Ray Tune's ASHAScheduler).

A job of a sweep with ``early_stopping`` measures its image at each rung (fractions of its steps),
tells the board (one small Ray actor the driver starts) and asks whether to go on. The board
compares the job with the jobs of its group (same content, style, size and regions: measures of
different pictures do not compare) that reached the same rung before it: the job goes on when it
is among the best ``1 / reduction_factor`` of them (ties kept), or while the rung has fewer than
``min_results`` results; else it stops there and keeps its row (status ``stopped``, its image and
measures at that step). Nothing waits at a rung: a job is never paused for others, so the workers
stay busy and a job that goes on runs exactly as it would without early stopping.

The measure is one quality measure (``algorithms.shared.metrics.MEASURES``) or two, compared by Pareto
rank (non-dominated sorting): the jobs on the best fronts go on, and the first front (every
trade-off no other job at the rung beats) always does.

This module is the maths (``rung_steps``, ``pareto_ranks``, ``decide``) and the board, plain
Python; ``sweep/worker.py`` asks it, ``sweep/driver.py`` starts it and seeds it with the rungs recorded in the
rows of earlier runs (a resumed sweep decides as if it had never stopped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stylegrid.algorithms.shared.metrics import MEASURES

BETTER = {m.name: m.better for m in MEASURES}


class StopAtRung(Exception):  # noqa: N818 - a signal, not an error: the job ends as `stopped`
    """Raised inside a job's step callback when the board stops it (``sweep/worker.py`` catches it):
    the job's image and measures at the rung, and its evaluations so far."""

    def __init__(self, reason: str, image: Any, evaluations: int, values: dict[str, float]) -> None:
        super().__init__(reason)
        self.reason, self.image, self.evaluations, self.values = reason, image, evaluations, values


@dataclass(frozen=True)
class Rungs:
    """What a worker needs for early stopping: the rungs (fractions of a job's steps) and the
    board to ask (a ``RungBoard``, or a Ray actor handle of one)."""

    fractions: tuple[float, ...]
    board: Any

    def steps(self, total_steps: int) -> list[int]:
        return rung_steps(total_steps, self.fractions)

    def ask(self, group: str, rung: int, job_id: str, values: Mapping[str, float]) -> tuple[bool, str]:
        report = self.board.report
        if hasattr(report, "remote"):  # a Ray actor: the board lives in its own process
            import ray

            return ray.get(report.remote(group, rung, job_id, dict(values)))
        return report(group, rung, job_id, values)


def rung_steps(total_steps: int, fractions: Sequence[float]) -> list[int]:
    """The steps (1-based) at which a job of ``total_steps`` steps reports: each fraction's step,
    rounded, at least 1 and before the last step (a rung at the end would stop nothing)."""
    steps = {max(1, round(f * total_steps)) for f in fractions}
    return sorted(s for s in steps if s < total_steps)


def oriented(values: Mapping[str, float], measures: Sequence[str]) -> tuple[float, ...]:
    """The job's values of ``measures``, each turned so that lower is better (NaN: the worst)."""
    out = []
    for name in measures:
        v = float(values[name])
        v = math.inf if math.isnan(v) else v
        out.append(-v if BETTER[name] == "higher" else v)
    return tuple(out)


def pareto_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting (lower is better on every axis): 0 for the points no other point
    dominates, 1 for those only rank-0 points dominate, and so on. Equal points share a rank."""
    n = len(points)
    dominated_by = [0] * n
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = points[i], points[j]
            if all(x <= y for x, y in zip(a, b, strict=True)) and a != b:
                dominates[i].append(j)
                dominated_by[j] += 1
            elif all(y <= x for x, y in zip(a, b, strict=True)) and a != b:
                dominates[j].append(i)
                dominated_by[i] += 1
    ranks = [0] * n
    front = [i for i in range(n) if dominated_by[i] == 0]
    rank = 0
    while front:
        nxt = []
        for i in front:
            ranks[i] = rank
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        front, rank = nxt, rank + 1
    return ranks


@dataclass(frozen=True)
class Decision:
    go_on: bool
    reason: str  # why, in words (a stopped job's note)
    results: int  # results at the rung, this one included


def decide(
    results: Mapping[str, tuple[float, ...]], job_id: str, reduction_factor: float, min_results: int
) -> Decision:
    """Whether ``job_id`` goes on past a rung where ``results`` (job id -> oriented values, its
    own included) were reported: it does when it is among the best ``ceil(n / reduction_factor)``
    (ties kept; by value for one measure, by Pareto rank for more), or when n < ``min_results``."""
    n = len(results)
    if n < min_results:
        return Decision(True, f"{n} of {min_results} results at this rung: too few to compare", n)
    ids = list(results)
    points = [results[i] for i in ids]
    scores = [p[0] for p in points] if len(points[0]) == 1 else pareto_ranks(points)
    keep = math.ceil(n / reduction_factor)
    cutoff = sorted(scores)[keep - 1]
    mine = scores[ids.index(job_id)]
    better = sum(1 for s in scores if s < mine)
    what = "value" if len(points[0]) == 1 else "Pareto rank"
    place = f"{ordinal(better + 1)} of {n} by {what}"
    if mine <= cutoff:
        return Decision(True, f"{place}: among the best {keep}", n)
    return Decision(False, f"{place}: not among the best {keep}", n)


def ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def group_of(content_sha256: str, style_sha256: str, size: int, mask_sha256: str | None) -> str:
    """The jobs whose measures compare: one picture (content, style, regions) at one size."""
    return f"{content_sha256[:16]}:{style_sha256[:16]}:{(mask_sha256 or '')[:16]}:{size}"


class RungBoard:
    """The results at each rung, by group; one per sweep (a Ray actor), asked by every job."""

    def __init__(self, measures: Sequence[str], reduction_factor: float, min_results: int) -> None:
        self.measures = tuple(measures)
        self.reduction_factor = reduction_factor
        self.min_results = min_results
        self.results: dict[tuple[str, int], dict[str, tuple[float, ...]]] = {}

    def seed(self, records: Sequence[tuple[str, str, Sequence[dict]]]) -> int:
        """Rungs recorded by earlier runs: (group, job id, the row's ``rungs`` list)."""
        count = 0
        for group, job_id, rungs in records:
            for rung in rungs:
                values = rung.get("values") or {}
                if all(m in values for m in self.measures):
                    self.results.setdefault((group, int(rung["rung"])), {})[job_id] = oriented(
                        values, self.measures
                    )
                    count += 1
        return count

    def report(self, group: str, rung: int, job_id: str, values: Mapping[str, float]) -> tuple[bool, str]:
        """Record the job's values at a rung (0-based) and say whether it goes on, and why."""
        at = self.results.setdefault((group, rung), {})
        at[job_id] = oriented(values, self.measures)
        d = decide(at, job_id, self.reduction_factor, self.min_results)
        return d.go_on, d.reason

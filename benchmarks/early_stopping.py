"""Early stopping (successive halving) against the full grid, side by side in one run.

The same grid of Gatys and histogram-loss jobs (128 px, 100 steps: several content x style
pictures, each with style weights, optimisers and poolings) runs twice through real sweeps: every
job to its last step, then with ``early_stopping``. Reported:

* the full grid's Pareto front of each picture (the jobs no other job of that picture beats on both
  content_distance and style_distance, at their last step) and the share of it that the run with
  early stopping found (ran to the end: a job that goes on runs exactly as in the full grid);
* the hypervolume of each picture's front (the area it dominates up to the worst values of the
  full grid), with early stopping over the full grid's: a front missing a job but close to it
  loses little area;
* the objective evaluations of each run and their ratio (the cost; seconds move with the machine).

The target (issue 33): at least 90 % of the front for at most 40 % of the evaluations.

    python benchmarks/early_stopping.py                      # 120 jobs, twice (about 25 minutes here)
    python benchmarks/early_stopping.py --reuse-full DIR     # the full grid from an earlier run's DIR
    python benchmarks/early_stopping.py --smoke-test         # a few tiny jobs: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONTENT = REPO / "samples" / "content"
STYLE = REPO / "samples" / "style"
# pictures the defaults were never tuned on would do as well: the rule compares jobs of one picture
PICTURES = (["tubingen.jpg", "chelsea.jpg", "flower.jpg"], ["the_scream.jpg"])
MEASURES = ("content_distance", "style_distance")
GRID = {
    "style_weight": [0.5, 1, 2.5, 5, 10],
    "optimizer": ["lbfgs", "adam"],
    "pooling": ["max", "avg"],
}


def grid_spec(path: Path, contents, styles, size: int, steps: int, grid: dict, stopping: dict | None) -> Path:
    lines = [
        f"name: {path.stem}",
        f"content: {json.dumps([str(c) for c in contents])}",
        f"style: {json.dumps([str(s) for s in styles])}",
        "algorithms:",
        *(f"  - {{name: {a}, grid: {json.dumps(grid)}}}" for a in ("gatys", "histogram")),
        f"size: {size}",
        f"style_size: {max(size, 64)}",
        f"steps: {steps}",
        "resources: {num_cpus: 1}",
    ]
    if stopping:
        lines.append(f"early_stopping: {json.dumps(stopping)}")
    path.write_text("\n".join(lines) + "\n")
    return path


# --- pure: fronts, hypervolume, the comparison ------------------------------------------------------


def fronts(df) -> dict[tuple[str, str], set[str]]:
    """(content, style) -> job ids on that picture's Pareto front of ``MEASURES`` (ok jobs)."""
    from orchestrator.halving import pareto_ranks

    out = {}
    ok = df[df.status == "ok"]
    for key, group in ok.groupby(["content_name", "style_name"]):
        points = [tuple(map(float, p)) for p in group[list(MEASURES)].to_numpy()]
        ranks = pareto_ranks(points)
        out[key] = {j for j, r in zip(group.job_id, ranks, strict=True) if r == 0}
    return out


def hypervolume(points, ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` (lower is better on both axes) up to ``ref``."""
    inside = [(x, y) for x, y in points if x < ref[0] and y < ref[1]]
    xs = sorted({x for x, _ in inside} | {ref[0]})
    area = 0.0
    for left, right in zip(xs, xs[1:], strict=False):  # vertical strips, each under its lowest y
        lowest = min((y for x, y in inside if x <= left), default=ref[1])
        area += (right - left) * (ref[1] - lowest)
    return area


def compare(full, halved) -> dict:
    """The share of the full grid's fronts that early stopping found, their hypervolumes, and
    the evaluations of both runs."""
    full_fronts, found, total = fronts(full), 0, 0
    hv_full = hv_halved = 0.0
    finished = set(halved[halved.status == "ok"].job_id)
    for key, front in full_fronts.items():
        total += len(front)
        found += len(front & finished)
        group = full[(full.content_name == key[0]) & (full.style_name == key[1]) & (full.status == "ok")]
        ref = tuple(float(group[m].max()) * 1.01 for m in MEASURES)
        points = [tuple(map(float, p)) for p in group[list(MEASURES)].to_numpy()]
        kept = [p for p, j in zip(points, group.job_id, strict=True) if j in finished]
        hv_full += hypervolume(points, ref)
        hv_halved += hypervolume(kept, ref)
    evals_full, evals_halved = int(full.evaluations.sum()), int(halved.evaluations.sum())
    return {
        "jobs": len(full),
        "front_jobs": total,
        "front_found": found,
        "front_share": found / total if total else float("nan"),
        "hypervolume_share": hv_halved / hv_full if hv_full else float("nan"),
        "evaluations_full": evals_full,
        "evaluations_halved": evals_halved,
        "evaluation_share": evals_halved / evals_full if evals_full else float("nan"),
        "stopped": int((halved.status == "stopped").sum()),
        "failed": int((full.status == "failed").sum() + (halved.status == "failed").sum()),
    }


# --- side effects: the two sweeps -------------------------------------------------------------------


def run(spec: Path, out: Path) -> tuple[object, float]:
    from orchestrator.results import read_results
    from orchestrator.sweep import run_sweep

    start = time.perf_counter()
    run_sweep(str(spec), output=str(out), quiet=True, ray_init_kwargs={})
    return read_results(out).to_pandas(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--measure", default="content_distance,style_distance",
                        help="the measure(s) compared at the rungs, comma-separated")  # fmt: skip
    parser.add_argument("--rungs", default="0.1,0.3", help="fractions of the steps")
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--min-results", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the sweeps' folders here")
    parser.add_argument("--reuse-full", type=Path, default=None, help="a full grid's output folder to reuse")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    contents = [CONTENT / c for c in PICTURES[0]]
    styles = [STYLE / s for s in PICTURES[1]]
    grid = GRID
    if args.smoke_test:
        args.size, args.steps, contents = 32, 6, contents[:1]
        grid = {"style_weight": [0.01, 10], "optimizer": ["lbfgs"]}
    measure = args.measure.split(",")
    stopping = {
        "measure": measure[0] if len(measure) == 1 else measure,
        "rungs": [float(r) for r in args.rungs.split(",")],
        "reduction_factor": args.reduction_factor,
        "min_results": args.min_results,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        full_spec = grid_spec(work / "full.yaml", contents, styles, args.size, args.steps, grid, None)
        halved_spec = grid_spec(
            work / "halving.yaml", contents, styles, args.size, args.steps, grid, stopping
        )
        if args.reuse_full:
            from orchestrator.results import read_results

            full, full_s = read_results(args.reuse_full).to_pandas(), float("nan")
        else:
            full, full_s = run(full_spec, work / "full")
        halved_out = work / f"halving-{int(time.time())}"
        halved, halved_s = run(halved_spec, halved_out)
    result = compare(full, halved)
    print(f"early stopping on {result['jobs']} jobs ({args.size} px, {args.steps} steps; "
          f"gatys and histogram; {len(contents) * len(styles)} pictures), in one run:")  # fmt: skip
    print(f"  rule: {json.dumps(stopping)}")
    print("  run              evaluations   seconds   stopped")
    print(f"  full grid        {result['evaluations_full']:>11}   {full_s:>7.0f}         0")
    print(
        f"  early stopping   {result['evaluations_halved']:>11}   {halved_s:>7.0f}   {result['stopped']:>7}"
    )
    print(f"  evaluations: {result['evaluation_share']:.1%} of the full grid's (target: at most 40 %)")
    print(f"  Pareto fronts ({', '.join(MEASURES)}, per picture): {result['front_found']} of "
          f"{result['front_jobs']} jobs found = {result['front_share']:.1%} (target: at least 90 %)")  # fmt: skip
    print(f"  hypervolume of the fronts: {result['hypervolume_share']:.1%} of the full grid's")
    if result["failed"]:
        print(f"  {result['failed']} jobs failed: see the sweeps' rows")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

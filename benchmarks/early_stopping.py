"""Early stopping (successive halving) against the full grid, side by side in one run.

The grid of ``experiments/early_stopping.yaml`` (Gatys and the histogram loss x style weight x
optimiser x pooling on three pictures, 128 px, 100 steps: 120 jobs) runs twice through real
sweeps: every job to its last step, then with the file's ``early_stopping`` (or the rule the
options give). Reported:

* the full grid's Pareto front of each picture (the jobs no other job of that picture beats on both
  content_distance and style_distance, at their last step) and the share of it that the run with
  early stopping found (ran to the end: a job that goes on runs exactly as in the full grid);
* the hypervolume of each picture's front (the area it dominates up to the worst values of the
  full grid), with early stopping over the full grid's: a front missing a job but close to it
  loses little area;
* the objective evaluations of each run and their ratio (the cost; seconds move with the machine).

The target (issue 33): at least 90 % of the front for at most 40 % of the evaluations.

    python benchmarks/early_stopping.py                      # 120 jobs, twice
    python benchmarks/early_stopping.py --reduction-factor 2 --rungs 0.2   # another rule
    python benchmarks/early_stopping.py --reuse-full DIR     # the full grid from an earlier run's DIR
    python benchmarks/early_stopping.py --record-rungs --workdir runs/es   # the full grid keeps its rungs
    python benchmarks/early_stopping.py --reuse-full runs/es/full --replay --rungs 0.2   # any rule, offline
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

EXPERIMENT = REPO / "experiments" / "early_stopping.yaml"
MEASURES = ("content_distance", "style_distance")


# With --record-rungs the full grid measures every job at these fractions of its steps without
# stopping any (a rung that decides only from a billion results), so that any rule on them can be
# replayed offline from its rows (``replay``).
RECORD_RUNGS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]


def specs(
    experiment: Path, work: Path, stopping: dict, smoke: bool, record: bool = False
) -> tuple[Path, Path]:
    """The experiment file without and with early stopping (``stopping``), its paths made
    absolute; ``smoke``: one photo, two style weights, 32 px, 6 steps; ``record``: the full grid
    measures its jobs at ``RECORD_RUNGS`` (stopping none)."""
    import yaml

    spec = yaml.safe_load(experiment.read_text())
    base = experiment.parent
    spec["content"] = [str((base / c).resolve()) for c in spec["content"]]
    spec["style"] = [str((base / s).resolve()) for s in spec["style"]]
    if smoke:
        spec["content"] = spec["content"][:1]
        spec.update(size=32, style_size=64, steps=6)
        for algorithm in spec["algorithms"]:
            algorithm["grid"] = {"style_weight": [0.01, 10]}
    spec.pop("output", None)
    full = {**spec, "name": "full"}
    full.pop("early_stopping", None)
    if record:
        full["early_stopping"] = {**stopping, "rungs": RECORD_RUNGS, "min_results": 10**9}
    halved = {**spec, "name": "halving", "early_stopping": stopping}
    paths = work / "full.yaml", work / "halving.yaml"
    for path, content in zip(paths, (full, halved), strict=True):
        path.write_text(yaml.safe_dump(content, sort_keys=False))
    return paths


# --- pure: fronts, hypervolume, the comparison ------------------------------------------------------


def fronts(df) -> dict[tuple[str, str], set[str]]:
    """(content, style) -> job ids on that picture's Pareto front of ``MEASURES`` (ok jobs)."""
    from stylegrid.orchestrator.sweep.halving import pareto_ranks

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
    finished = set(halved[halved.status == "ok"].job_id)
    stopped = int((halved.status == "stopped").sum())
    result = compare_sets(full, finished, int(halved.evaluations.sum()), stopped)
    result["failed"] += int((halved.status == "failed").sum())
    return result


def compare_sets(full, finished: set[str], evals_halved: int, stopped: int) -> dict:
    """``compare`` for the jobs that ran to their end (``finished``) and the evaluations spent."""
    full_fronts, found, total = fronts(full), 0, 0
    hv_full = hv_halved = 0.0
    for key, front in full_fronts.items():
        total += len(front)
        found += len(front & finished)
        group = full[(full.content_name == key[0]) & (full.style_name == key[1]) & (full.status == "ok")]
        ref = tuple(float(group[m].max()) * 1.01 for m in MEASURES)
        points = [tuple(map(float, p)) for p in group[list(MEASURES)].to_numpy()]
        kept = [p for p, j in zip(points, group.job_id, strict=True) if j in finished]
        hv_full += hypervolume(points, ref)
        hv_halved += hypervolume(kept, ref)
    evals_full = int(full.evaluations.sum())
    return {
        "jobs": len(full),
        "front_jobs": total,
        "front_found": found,
        "front_share": found / total if total else float("nan"),
        "hypervolume_share": hv_halved / hv_full if hv_full else float("nan"),
        "evaluations_full": evals_full,
        "evaluations_halved": evals_halved,
        "evaluation_share": evals_halved / evals_full if evals_full else float("nan"),
        "stopped": stopped,
        "failed": int((full.status == "failed").sum()),
    }


def replay(full, stopping: dict) -> tuple[set[str], int]:
    """``stopping`` replayed on a full grid that recorded its rungs (--record-rungs): the jobs
    taken one at a time in the order they started, each reporting its recorded measures at the
    rule's rungs to a board and stopping where the board says so. Returns the jobs that would
    have run to the end and the evaluations spent (a stopped job's, up to its rung)."""
    from stylegrid.orchestrator.results.schema import parse_rungs
    from stylegrid.orchestrator.sweep.halving import RungBoard, group_of, rung_steps

    measure = stopping["measure"]
    board = RungBoard([measure] if isinstance(measure, str) else measure, stopping["reduction_factor"],
                      stopping["min_results"])  # fmt: skip
    kept, spent = set(), 0
    for row in full.sort_values("started_at").itertuples():
        recorded = {int(r["step"]): r for r in parse_rungs(row.rungs)}
        group = group_of(row.content_sha256, row.style_sha256, int(row.size), None)
        cost, going = int(row.evaluations), True
        for k, step in enumerate(rung_steps(int(row.steps), stopping["rungs"])):
            if step not in recorded:
                raise SystemExit(f"the full grid has no measures at step {step}: run it with --record-rungs")
            go_on, _ = board.report(group, k, row.job_id, recorded[step]["values"])
            if not go_on:
                cost, going = int(recorded[step]["evaluations"]), False
                break
        spent += cost
        if going:
            kept.add(row.job_id)
    return kept, spent


# --- side effects: the two sweeps -------------------------------------------------------------------


def run(spec: Path, out: Path) -> tuple[object, float]:
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import run_sweep

    start = time.perf_counter()
    run_sweep(str(spec), output=str(out), quiet=True, ray_init_kwargs={})
    return read_results(out).to_pandas(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    parser.add_argument(
        "--measure", default=None, help="the measure(s) compared at the rungs, comma-separated"
    )
    parser.add_argument("--rungs", default=None, help="fractions of the steps, comma-separated")
    parser.add_argument("--reduction-factor", type=float, default=None)
    parser.add_argument("--min-results", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the sweeps' folders here")
    parser.add_argument("--reuse-full", type=Path, default=None, help="a full grid's output folder to reuse")
    parser.add_argument(
        "--record-rungs",
        action="store_true",
        help=f"the full grid also measures its jobs at {RECORD_RUNGS} of their steps (stopping none)",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="no second sweep: the rule replayed on the full grid's recorded rungs",
    )
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    import yaml

    stopping = dict(yaml.safe_load(args.experiment.read_text()).get("early_stopping") or {})
    if args.measure:
        measure = args.measure.split(",")
        stopping["measure"] = measure[0] if len(measure) == 1 else measure
    if args.rungs:
        stopping["rungs"] = [float(r) for r in args.rungs.split(",")]
    if args.reduction_factor:
        stopping["reduction_factor"] = args.reduction_factor
    if args.min_results:
        stopping["min_results"] = args.min_results
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        record = args.record_rungs or args.smoke_test
        full_spec, halved_spec = specs(args.experiment, work, stopping, args.smoke_test, record)
        if args.reuse_full:
            from stylegrid.orchestrator.results.rows import read_results

            full, full_s = read_results(args.reuse_full).to_pandas(), float("nan")
        else:
            full, full_s = run(full_spec, work / "full")
        if args.replay:
            kept, spent = replay(full, stopping)
            result, halved_s = compare_sets(full, kept, spent, len(full) - len(kept)), float("nan")
        else:
            halved, halved_s = run(halved_spec, work / f"halving-{int(time.time())}")
            result = compare(full, halved)
        setup = yaml.safe_load(full_spec.read_text())
    if "rungs" in full and full.rungs.notna().any() and not args.replay:
        kept, spent = replay(full, stopping)
        replayed = compare_sets(full, kept, spent, len(full) - len(kept))
        result["replayed"] = {k: replayed[k] for k in ("front_share", "evaluation_share")}
    pictures = len(setup["content"]) * len(setup["style"])
    algorithms = " and ".join(a["name"] for a in setup["algorithms"])
    print(f"early stopping on {result['jobs']} jobs ({setup['size']} px, {setup['steps']} steps; "
          f"{algorithms}; {pictures} pictures), in one run:")  # fmt: skip
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
    if args.replay:
        print("  (replayed on the full grid's recorded rungs, the jobs one at a time in their start order)")
    elif "replayed" in result:
        r = result["replayed"]
        print(f"  the same rule replayed on the full grid's recorded rungs: {r['front_share']:.1%} of the "
              f"fronts for {r['evaluation_share']:.1%} of the evaluations")  # fmt: skip
    if result["failed"]:
        print(f"  {result['failed']} jobs failed: see the sweeps' rows")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

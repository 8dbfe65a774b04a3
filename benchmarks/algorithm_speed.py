"""Seconds per evaluation and peak memory of ``mrf`` and ``histogram`` beside ``gatys``, in one run.

Each algorithm runs in its own process (peak resident memory read with os.wait4) on tubingen x
starry_night, on one scale (every evaluation at full size) with its default parameters otherwise
(bf16 activations where the CPU has them). Seconds per evaluation are measured from the first
step to the last (the style targets, built before the first step, are left out), so they compare
what one L-BFGS evaluation costs. The goals (issue 4): at 512 px MRF under 4 GB peak and under 3x
Gatys's time per evaluation; histogram under 1.5x Gatys.

    python benchmarks/algorithm_speed.py                  # 256 and 512 px, 40 steps (about 6 minutes)
    python benchmarks/algorithm_speed.py --sizes 512      # one size
    python benchmarks/algorithm_speed.py --smoke-test     # 64 px, 3 steps: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import last_row, load_pair, spawn  # noqa: E402

ALGORITHMS = ("gatys", "mrf", "histogram")
GOALS = {"mrf": (3.0, 4096), "histogram": (1.5, None)}  # (max ratio to gatys, max peak MB) at 512 px


def worker(algorithm: str, size: int, steps: int, out: Path) -> dict:
    """Runs in the child process: one stylize call, timed from its callback."""
    from stylegrid.algorithms import get_algorithm
    from stylegrid.orchestrator.images import save_png

    algo = get_algorithm(algorithm)
    content, style = load_pair(size)
    marks: list[tuple[float, int]] = []
    result = algo.stylize(
        content,
        [style],
        algo.params_type(scales=1, steps=steps),
        callback=lambda i: marks.append((i.elapsed, i.evaluations)),
    )
    save_png(result.image, out)
    (t0, e0), (t1, e1) = marks[0], marks[-1]
    return {
        "evaluations": result.evaluations,
        "sec_per_eval": (t1 - t0) / max(1, e1 - e0),
        "setup_s": t0,  # to the end of the first step: encoder, targets and one evaluation
        "precision": result.precision,
    }


def run(algorithm: str, size: int, steps: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", algorithm, "--sizes", str(size), "--steps", str(steps)]
    proc, peak = spawn([*cmd, "--out", str(out)])
    if proc["returncode"] != 0:
        raise RuntimeError(f"{algorithm} at {size} px failed: {proc['stderr'][-2000:]}")
    row = last_row(proc, " ".join(cmd[1:3]))
    row.update(algorithm=algorithm, size=size, peak_mb=peak, wall=proc["wall"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=40, help="steps (one scale) per algorithm")
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    ap.add_argument("--out-dir", type=Path, default=REPO / "out" / "benchmarks" / "algorithm_speed")
    ap.add_argument("--smoke-test", action="store_true", help="64 px, 3 steps: only checks that it runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes[0], args.steps, args.out)))
        return
    if args.smoke_test:
        args.sizes, args.steps = [64], 3

    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.orchestrator.images import load_image

    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    start = time.perf_counter()
    for size in args.sizes:
        for algorithm in args.algorithms:
            out = args.out_dir / f"{algorithm}_{size}.png"
            row = run(algorithm, size, args.steps, out)
            d = quality(load_image(out), *load_pair(size))
            row.update(content_distance=d.content_distance, style_distance=d.style_distance)
            rows.append(row)
            print(json.dumps(row), flush=True)

    print()
    header = (
        f"{'algorithm':<10} {'size':>5} {'evals':>6} {'s/eval':>7} {'vs gatys':>9} {'peak MB':>8} "
        f"{'content':>8} {'style':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        base = next((g for g in rows if g["algorithm"] == "gatys" and g["size"] == r["size"]), None)
        r["ratio"] = r["sec_per_eval"] / base["sec_per_eval"] if base else None
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        print(
            f"{r['algorithm']:<10} {r['size']:>5} {r['evaluations']:>6} {r['sec_per_eval']:>7.3f} "
            f"{ratio:>9} {r['peak_mb']:>8.0f} {r['content_distance']:>8.3f} {r['style_distance']:>6.3f}"
        )
    print(
        "\n'vs gatys' = this algorithm's seconds per evaluation / gatys's at the same size (lower is faster)."
    )
    for r in rows:
        goal = GOALS.get(r["algorithm"])
        if goal is None or r["size"] != 512 or r["ratio"] is None:
            continue
        max_ratio, max_mb = goal
        ok = r["ratio"] < max_ratio and (max_mb is None or r["peak_mb"] < max_mb)
        limit = f"< {max_ratio}x gatys" + (f", < {max_mb} MB" if max_mb else "")
        print(f"goal {r['algorithm']} at 512 px ({limit}): {'met' if ok else 'NOT met'}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

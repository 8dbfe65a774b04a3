"""High resolution within a memory budget: peak memory and seconds per megapixel of AdaIN (one
decoder pass) and Gatys (image optimisation, one pyramid level) at 512, 1024, 2048 and 4096 px,
in tiles under a budget against one pass without one, side by side in one run on this machine.

Every measurement runs in a child process of its own: it loads the models and warms them up on a
64 px image, resets the kernel's peak-memory mark (``/proc/self/clear_refs``), runs, and reports
the peak resident memory above what it held before (``VmHWM - VmRSS``), so the numbers are what
the run itself took. The one-pass variant is skipped where its estimated peak (the algorithm's
bytes per pixel) would exceed half of this machine's RAM.

* AdaIN: ``stylize_batch`` of one image (the call a catalog makes), budget ``--adain-budget``.
* Gatys: ``--gatys-steps`` L-BFGS steps on one pyramid level (``scales=1``), budget
  ``--gatys-budget``; seconds per megapixel are per step, the halo's recomputation included.

    python benchmarks/tiled.py                  # about 20 minutes on 2 cores
    python benchmarks/tiled.py --smoke-test     # 384 px in tiles for tiny budgets: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import last_row, load_pair, spawn  # noqa: E402

UNLIMITED = "1000GB"


def _status(key: str) -> float:
    line = next(ln for ln in open("/proc/self/status") if ln.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def child(algorithm: str, size: int, budget: str, steps: int) -> None:
    """One measurement; prints {seconds, peak_mb, tiles, megapixels} as JSON."""
    import torch
    from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch
    from stylegrid.algorithms.feedforward.adain.network import AdaINParams
    from stylegrid.algorithms.optimization.gatys import GatysParams
    from stylegrid.algorithms.optimization.gatys import stylize as gatys

    content, style = load_pair(size)
    small, _ = load_pair(64)

    def run(image, budget_text, n):
        if algorithm == "adain":
            params = AdaINParams(memory_budget=budget_text)
            from stylegrid.algorithms.feedforward.adain.algorithm import tile_layout

            return stylize_batch(image, [style], params), tile_layout(params, image.shape, "cpu")
        result = gatys(image, [style], GatysParams(steps=n, scales=1, memory_budget=budget_text))
        return result.image, result.tiles

    run(small, UNLIMITED, 2)  # models loaded, kernels warm
    open("/proc/self/clear_refs", "w").write("5")
    before = _status("VmRSS")
    start = time.perf_counter()
    _, tiles = run(content, budget, steps)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "peak_mb": _status("VmHWM") - before, "tiles": tiles,
        "megapixels": content.shape[-2] * content.shape[-1] / 1e6, "threads": torch.get_num_threads(),
    }))  # fmt: skip


def fits_in_ram(algorithm: str, size: int) -> bool:
    """Whether one pass at ``size`` (4:3) is estimated to fit half of this machine's RAM."""
    from stylegrid.algorithms.feedforward.adain.network import BYTES_PER_PIXEL as ADAIN
    from stylegrid.algorithms.optimization.tiles import BYTES_PER_PIXEL as OPTIM

    per_pixel = ADAIN if algorithm == "adain" else OPTIM
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return per_pixel * size * size * 3 / 4 <= ram / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--algorithms", nargs="+", default=["adain", "gatys"], choices=["adain", "gatys"])
    ap.add_argument("--adain-budget", default="256MB")
    ap.add_argument("--gatys-budget", default="1GB")
    ap.add_argument("--gatys-steps", type=int, default=4)
    ap.add_argument("--smoke-test", action="store_true")
    ap.add_argument(
        "--child", nargs=4, metavar=("ALGORITHM", "SIZE", "BUDGET", "STEPS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        algorithm, size, budget, steps = args.child
        child(algorithm, int(size), budget, int(steps))
        return
    if args.smoke_test:
        args.sizes, args.adain_budget, args.gatys_budget, args.gatys_steps = [384], "80MB", "250MB", 1

    budgets = {"adain": args.adain_budget, "gatys": args.gatys_budget}
    print(f"{'algorithm':<9} {'size':>5} {'variant':<14} {'peak MB':>8} {'seconds':>8} {'s/MP':>7}  layout")
    for algorithm in args.algorithms:
        for size in args.sizes:
            variants = [(f"budget {budgets[algorithm]}", budgets[algorithm])]
            if fits_in_ram(algorithm, size) and not args.smoke_test:
                variants.append(("one pass", UNLIMITED))
            for name, budget in variants:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    algorithm,
                    str(size),
                    budget,
                    str(args.gatys_steps),
                ]
                proc, _ = spawn(cmd)
                if proc["returncode"] != 0:
                    raise SystemExit(f"{algorithm} {size} {name} failed:\n{proc['stderr'][-3000:]}")
                row = last_row(proc, " ".join(cmd[1:3]))
                per = row["seconds"] / row["megapixels"] / (args.gatys_steps if algorithm == "gatys" else 1)
                print(f"{algorithm:<9} {size:>5} {name:<14} {row['peak_mb']:>8.0f} {row['seconds']:>8.1f} "
                      f"{per:>7.2f}  {row['tiles'] or 'one pass'}", flush=True)  # fmt: skip
    print("(s/MP: seconds per megapixel, per L-BFGS step for gatys; peak MB: above the loaded models)")


if __name__ == "__main__":
    main()

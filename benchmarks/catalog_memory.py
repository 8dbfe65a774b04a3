"""Memory of ``stylegrid stylize-catalog`` as the catalog grows: it streams, so 10x the images must
not take 10x the memory.

Makes catalogs of N small JPEGs (48-96 px crops of the sample photos, so that a large N runs in
minutes) and stylizes each at 32 px with the shipped AdaIN decoder, in a child process, sampling
every 0.5 s the resident memory of the whole process tree (the driver, and with ``--engines ray``
the local Ray it starts: its services, the decode workers and the model actors) and of the driver
alone. Each engine of ``--engines`` is measured: ``local`` (in the driver's process, what one
machine runs) and ``ray`` (Ray Data). Prints the peaks per engine and N and their ratio to the
smallest N.

    python benchmarks/catalog_memory.py                       # 1,000 and 10,000 images, both engines (about 15 minutes)
    python benchmarks/catalog_memory.py --images 200 2000 --engines local
    python benchmarks/catalog_memory.py --smoke-test          # 6 images, the local engine: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.catalog_throughput import make_catalog  # noqa: E402
from benchmarks.common import STYLE  # noqa: E402


def tree_rss(pid: int) -> tuple[float, float]:
    """(resident MB of the process and all its descendants, resident MB of the process alone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    rss = []  # the root first
    for p in procs:
        try:
            rss.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            rss.append(0)
    return sum(rss) / 2**20, rss[0] / 2**20


def measure(catalog: Path, out: Path, size: int, engine: str) -> dict:
    """One catalog run's seconds and peak memory: the driver's, and the whole process tree's
    (on the ``ray`` engine the local Ray it starts is in that tree)."""
    cmd = [sys.executable, "-m", "stylegrid", "stylize-catalog", "--input", str(catalog),
           "--style", str(STYLE), "--out", str(out), "--size", str(size), "--engine", engine,
           "--quiet"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)  # a Ray of its own: its processes are in the measured tree
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak_tree = peak_driver = 0.0
        while proc.poll() is None:
            tree, own = tree_rss(proc.pid)
            peak_tree, peak_driver = max(peak_tree, tree), max(peak_driver, own)
            time.sleep(0.5)
        log.seek(0)
        text = log.read()
    if proc.returncode not in (0, 3):  # 3: some images failed (at 32 px, wide ones are too thin)
        raise RuntimeError(f"stylize-catalog failed:\n{text[-3000:]}")
    return {"seconds": time.perf_counter() - start, "peak_tree_mb": peak_tree, "peak_driver_mb": peak_driver,
            "summary": next((ln for ln in text.splitlines() if ln.startswith("done:")), "")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--smoke-test", action="store_true")
    args = ap.parse_args()
    if args.smoke_test:
        args.images, args.engines = [6], ["local"]  # one small catalog: the suite checks that the script runs
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.images):
            catalog = Path(tmp) / f"catalog{n}"
            make_catalog(catalog, n, long_sides=(48, 96))
            for engine in args.engines:
                row = measure(catalog, Path(tmp) / f"out{n}-{engine}", args.size, engine)
                rows[engine, n] = row
                print(json.dumps({"engine": engine, "images": n, **row}), flush=True)
    print(
        f"\n{'engine':<7s} {'images':>7s} {'seconds':>8s} {'tree MB':>8s} {'x':>6s} {'driver MB':>10s} {'x':>6s}"
    )
    for (engine, n), r in rows.items():
        base = rows[engine, min(args.images)]
        print(
            f"{engine:<7s} {n:7d} {r['seconds']:8.1f} {r['peak_tree_mb']:8.0f} "
            f"{r['peak_tree_mb'] / base['peak_tree_mb']:5.2f}x {r['peak_driver_mb']:10.0f} "
            f"{r['peak_driver_mb'] / base['peak_driver_mb']:5.2f}x"
        )


if __name__ == "__main__":
    main()

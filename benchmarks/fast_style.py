"""The shipped fast style network (``johnson``) against AdaIN with its shipped decoder, side by side
in one run on this machine: images per second and peak memory at 256 and 512 px for batches of 1
and 8, then the report's quality measures (``algorithms/shared/metrics.py``) on sample pairs beside Gatys.

* speed: each (algorithm, size, batch) runs in a child process of its own, so that its peak
  resident memory (``os.wait4``) is its own; a child loads the model, runs one warm-up batch,
  then times ``--images`` images through ``stylize_batch`` (the call a catalog's actors make);
  the ratio column is johnson's images/s (and memory) over AdaIN's at the same size and batch.
* quality: every content photo of ``--contents`` with every painting of the shipped network,
  at ``--quality-size`` px; johnson and adain in one pass, gatys with its defaults. The photos
  the network was trained on (``experiments/train_johnson_default.yaml``) and the held-out ones
  are averaged apart.

    python benchmarks/fast_style.py                  # about 10 minutes on 2 cores
    python benchmarks/fast_style.py --smoke-test     # 32 px, batch 2, one pair, 2 Gatys steps
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import last_row, spawn  # noqa: E402

SAMPLES = REPO / "samples"
TRAINED_ON = {"astronaut", "chelsea", "coffee", "flower", "rocket"}


def child(algorithm: str, size: int, batch: int, images: int) -> None:
    """Time ``images`` images through one algorithm's ``stylize_batch``; print images/s as JSON."""
    import torch
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.shared.device import resolve_precision

    from benchmarks.common import load_pair

    image, _ = load_pair(size)
    style = load_style("starry_night")
    contents = image.expand(batch, -1, -1, -1).contiguous()
    if algorithm == "baseline":  # the imports and the images only: what every child holds anyway
        print(json.dumps({"images_per_s": 0.0, "precision": ""}))
        return
    algo = get_algorithm(algorithm)
    params = algo.default_params()
    cache: dict = {}
    algo.stylize_batch(contents, [style], params, cache=cache)  # warm-up (loads the model)
    repeats = max(1, images // batch)
    start = time.perf_counter()
    for _ in range(repeats):
        algo.stylize_batch(contents, [style], params, cache=cache)
    seconds = time.perf_counter() - start
    precision = resolve_precision(params.precision, torch.device("cpu"))
    print(json.dumps({"images_per_s": batch * repeats / seconds, "precision": precision}))


def load_style(name: str, size: int | None = None):
    from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE
    from stylegrid.orchestrator.images import load_image

    return load_image(SAMPLES / "style" / f"{name}.jpg", max_side=size or DEFAULT_STYLE_SIZE)


def speed(sizes, batches, images) -> list[dict]:
    rows = []
    for size in sizes:
        for batch in batches:
            for algorithm in ("baseline", "johnson", "adain"):
                cmd = [sys.executable, __file__, "--child", algorithm, str(size), str(batch), str(images)]
                out, peak = spawn(cmd)
                if out["returncode"] != 0:
                    raise SystemExit(f"{algorithm} {size} px batch {batch} failed:\n{out['stderr'][-2000:]}")
                row = {"algorithm": algorithm, "size": size, "batch": batch, "peak_mb": peak,
                       **last_row(out, " ".join(cmd[1:3]))}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def quality_table(contents, styles, size, gatys_steps) -> list[dict]:
    import dataclasses

    import torch
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.orchestrator.images import read_image, resize_to, to_tensor

    torch.set_num_threads(2)
    rows = []
    for c in contents:
        content = to_tensor(resize_to(read_image(SAMPLES / "content" / f"{c}.jpg"), size))
        for s in styles:
            style = load_style(s)
            for name in ("johnson", "adain", "gatys"):
                algo = get_algorithm(name)
                params = algo.default_params()
                if name == "gatys" and gatys_steps:
                    params = dataclasses.replace(params, steps=gatys_steps)
                start = time.perf_counter()
                image = algo.stylize(content, [style], params).image
                seconds = time.perf_counter() - start
                q = quality(image, content, style).as_dict()
                rows.append({"algorithm": name, "content": c, "style": s, "seconds": seconds,
                             "held_out": c not in TRAINED_ON, **q})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--images", type=int, default=16, help="images per speed measurement")
    ap.add_argument("--contents", nargs="+", default=["chelsea", "china", "tubingen"])
    ap.add_argument("--quality-size", type=int, default=256)
    ap.add_argument("--gatys-steps", type=int, default=None, help="default: Gatys's own default")
    ap.add_argument("--smoke-test", action="store_true")
    args = ap.parse_args()
    if args.child:
        algorithm, size, batch, images = args.child
        return child(algorithm, int(size), int(batch), int(images))
    from stylegrid.algorithms.feedforward.johnson.algorithm import DEFAULT_NETWORK

    styles = [s["name"] for s in json.loads(DEFAULT_NETWORK.with_suffix(".json").read_text())["styles"]]
    if args.smoke_test:
        args.sizes, args.batches, args.images = [32], [2], 2
        args.contents, styles, args.quality_size, args.gatys_steps = ["tubingen"], styles[:1], 32, 2

    rows = speed(args.sizes, args.batches, args.images)
    measures = quality_table(args.contents, styles, args.quality_size, args.gatys_steps)

    print(
        "\npeak MB: the child's peak resident memory; +MB: above a child that imports and loads the same images"
    )
    print(f"{'size':>5} {'batch':>6} {'johnson img/s':>14} {'adain img/s':>12} {'ratio':>7} "
          f"{'johnson +MB':>12} {'adain +MB':>10} {'ratio':>6} {'peak MB j/a':>12}")  # fmt: skip
    for size in args.sizes:
        for batch in args.batches:
            b, j, a = (next(r for r in rows if (r["algorithm"], r["size"], r["batch"]) == (n, size, batch))
                       for n in ("baseline", "johnson", "adain"))  # fmt: skip
            jm, am = j["peak_mb"] - b["peak_mb"], a["peak_mb"] - b["peak_mb"]
            print(f"{size:>5} {batch:>6} {j['images_per_s']:>14.2f} {a['images_per_s']:>12.2f} "
                  f"{j['images_per_s'] / a['images_per_s']:>6.2f}x {jm:>12.0f} {am:>10.0f} "
                  f"{jm / am:>5.2f}x {j['peak_mb']:>6.0f}/{a['peak_mb']:.0f}")  # fmt: skip
    keys = ["content_distance", "content_ssim", "style_distance", "style_swd", "color_swd", "seconds"]
    print(f"\nquality at {args.quality_size} px (means; lower is better except content_ssim)")
    print(f"{'algorithm':<9} {'photos':<9} {'n':>3} " + " ".join(f"{k:>16}" for k in keys))
    for name in ("johnson", "adain", "gatys"):
        for label, held in (("trained", False), ("held-out", True)):
            sel = [r for r in measures if r["algorithm"] == name and r["held_out"] == held]
            if sel:
                means = [sum(r[k] for r in sel) / len(sel) for k in keys]
                print(f"{name:<9} {label:<9} {len(sel):>3} " + " ".join(f"{m:>16.4f}" for m in means))


if __name__ == "__main__":
    main()

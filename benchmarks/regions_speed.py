"""What spatial control costs: each algorithm that takes regions, with three regions (half the
photo in The Starry Night, an ellipse in The Scream, the rest kept) beside the same algorithm
with one style on the whole photo, in one run, one process, the same threads.

    python benchmarks/regions_speed.py                     # 256 px, 60 steps (about 12 minutes here)
    python benchmarks/regions_speed.py --out docs/regions_example.jpg   # also the docs' picture
    python benchmarks/regions_speed.py --gallery docs/regions_gallery.jpg   # and every algorithm's
    python benchmarks/regions_speed.py --smoke-test        # 64 px, 2 steps, 64 px styles: checks that it runs

The feed-forward algorithms (adain, wct) have no steps: one pass each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import CONTENT, STYLE  # noqa: E402

SECOND_STYLE = REPO / "samples" / "style" / "the_scream.jpg"
ALGORITHMS = ("gatys", "mrf", "histogram", "adain_optimize", "adain", "wct")  # every one with spatial control


def label_regions(height: int, width: int, first: int, second: int):
    """The left half (style ``first``), an ellipse in the upper right (style ``second``), the
    rest kept as the photo."""
    from stylegrid.algorithms.shared.regions import Region

    ys = torch.arange(height).float().reshape(-1, 1)
    xs = torch.arange(width).float().reshape(1, -1)
    left = (xs < width / 2).float().expand(height, width)
    ellipse = ((xs - 0.76 * width) / (0.18 * width)) ** 2 + ((ys - 0.31 * height) / (0.21 * height)) ** 2 <= 1
    ellipse = ellipse.float() * (1 - left)
    rest = 1 - left - ellipse
    as_mask = lambda m: m.reshape(1, 1, height, width)  # noqa: E731
    return [Region(as_mask(left), first, name="left"), Region(as_mask(ellipse), second, name="ellipse"),
            Region(as_mask(rest), None, name="rest")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--style-size", type=int, help="style images' long side (default: the algorithms' default)"
    )
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    parser.add_argument("--out", type=Path, help="write photo | regions result (histogram) as an image here")
    parser.add_argument("--gallery", type=Path, help="write photo | one regions result per algorithm here")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    if args.smoke_test:
        args.size, args.steps, args.style_size = 64, 2, 64  # 64 px: MRF needs 3x3 patches of relu4_1

    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE
    from stylegrid.orchestrator.images import load_image, read_image, resize_to, save_image, to_tensor

    content = to_tensor(resize_to(read_image(CONTENT), args.size))
    styles = [load_image(s, max_side=args.style_size or DEFAULT_STYLE_SIZE) for s in (STYLE, SECOND_STYLE)]
    regions = label_regions(*content.shape[-2:], 0, 1)
    print(
        f"{content.shape[-1]}x{content.shape[-2]} px, {args.steps} steps, {torch.get_num_threads()} threads"
    )
    print(f"{'algorithm':<15} {'whole s':>8} {'regions s':>10} {'ratio':>6}")
    results = []
    for name in args.algorithms:
        algorithm = get_algorithm(name)
        steps = {"steps": args.steps} if algorithm.kind == "optimization" else {}
        params = algorithm.params_type(**steps)
        start = time.perf_counter()
        algorithm.stylize(content, styles[:1], params)
        whole = time.perf_counter() - start
        start = time.perf_counter()
        result = algorithm.stylize(content, styles, params, regions=regions)
        masked = time.perf_counter() - start
        print(f"{name:<15} {whole:>8.1f} {masked:>10.1f} {masked / whole:>6.2f}")
        results.append(result.image)
        if args.out and name == "histogram":
            save_image(torch.cat([content, result.image], dim=-1), args.out)
    if args.gallery:
        save_image(torch.cat([content, *results], dim=-1), args.gallery)
        print(f"photo | {' | '.join(args.algorithms)} -> {args.gallery}")


if __name__ == "__main__":
    main()

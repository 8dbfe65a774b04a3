"""Render the side-by-side gallery in docs/: content | style | one column per variant.

    python docs/make_gallery.py                       # docs/gatys_512.jpg (about 9 minutes here)
    python docs/make_gallery.py --size 128 --out /tmp/g.png --pairs tubingen:starry_night
    python docs/make_gallery.py --size 384 --out docs/algorithms_384.jpg \
        --variants "gatys (defaults)" "mrf (defaults)" "histogram (defaults)" --pairs \
        tubingen:starry_night chelsea:the_scream astronaut:woman_with_hat coffee:en_campo_gris
    python docs/make_gallery.py --size 384 --out docs/adain_384.jpg \
        --variants "gatys (defaults)" "adain (defaults)" "adain alpha=0.6" --pairs \
        tubingen:starry_night chelsea:the_scream astronaut:woman_with_hat coffee:en_campo_gris
    python docs/make_gallery.py --size 256 --out docs/style_swap_256.jpg \
        --variants "style_swap (shipped)" "style_swap, WCT relu3_1 decoder" style_swap_optimize --pairs \
        tubingen:starry_night chelsea:the_scream astronaut:woman_with_hat
    python docs/make_gallery.py --size 256 --out docs/every_algorithm_256.jpg --variants \
        "gatys (defaults)" "mrf (defaults)" "histogram (defaults)" "adain_optimize (defaults)" \
        "style_swap_optimize" "adain (defaults)" "wct (defaults)" "style_swap (shipped)" \
        "johnson (shipped)" --pairs tubingen:starry_night astronaut:woman_with_hat
    python docs/make_gallery.py --size 384 --out docs/johnson_384.jpg \
        --variants "gatys (defaults)" "adain (defaults)" "johnson (shipped)" "johnson blend with shipwreck" \
        --pairs tubingen:starry_night china:the_scream tubingen:woman_with_hat china:starry_night

Each variant is an algorithm with parameter overrides; the distances of algorithms/shared/metrics.py
are printed under every output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stylegrid.algorithms import get_algorithm  # noqa: E402
from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE  # noqa: E402
from stylegrid.algorithms.shared.metrics import quality  # noqa: E402
from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_pil, to_tensor  # noqa: E402
from stylegrid.orchestrator.params import build_params  # noqa: E402

VARIANTS = {
    "gatys (defaults)": ("gatys", {}),
    "gatys style_weight=5": ("gatys", {"style_weight": 5.0}),
    "gatys preserve_color": ("gatys", {"preserve_color": True}),
    "histogram (defaults)": ("histogram", {}),
    "mrf (defaults)": ("mrf", {}),
    "adain (defaults)": ("adain", {}),
    "adain alpha=0.6": ("adain", {"alpha": 0.6}),
    "johnson (shipped)": ("johnson", {}),
    "johnson blend with shipwreck": ("johnson", {"style": "{style}:0.5,shipwreck:0.5"}),
    "adain_optimize (defaults)": ("adain_optimize", {}),
    "wct (defaults)": ("wct", {}),
    "style_swap (shipped)": ("style_swap", {}),
    "style_swap, WCT relu3_1 decoder": (
        "style_swap",
        {"inverse": str(REPO / "algorithms/weights/wct_decoders.pth")},
    ),
    "style_swap_optimize": ("style_swap_optimize", {}),
}
DEFAULT_VARIANTS = ["gatys (defaults)", "gatys style_weight=5", "gatys preserve_color"]
PAIRS = ["tubingen:starry_night", "chelsea:the_scream", "astronaut:woman_with_hat"]


def render(pairs: list[str], size: int, variants: dict, steps: int | None = None) -> Image.Image:
    cells: list[list[tuple[Image.Image, str]]] = []
    for pair in pairs:
        c_name, s_name = pair.split(":")
        content = to_tensor(resize_to(read_image(REPO / "samples" / "content" / f"{c_name}.jpg"), size))
        style = load_image(REPO / "samples" / "style" / f"{s_name}.jpg", max_side=DEFAULT_STYLE_SIZE)
        row = [(to_pil(content), c_name), (to_pil(style), s_name)]
        for label, (algo_name, overrides) in variants.items():
            algo = get_algorithm(algo_name)
            if steps is not None and algo.kind != "feedforward":
                overrides = {**overrides, "steps": steps}
            overrides = {
                k: v.replace("{style}", s_name) if isinstance(v, str) else v for k, v in overrides.items()
            }
            result = algo.stylize(content, [style], build_params(algo.params_type, overrides))
            d = quality(result.image, content, style)
            row.append(
                (
                    to_pil(result.image),
                    f"{label}\ncontent {d.content_distance:.2f} style {d.style_distance:.2f}",
                )
            )
            print(
                f"{pair} {label}: {result.elapsed:.1f}s content {d.content_distance:.3f} style {d.style_distance:.3f}",
                flush=True,
            )
        cells.append(row)
    cell_w, cell_h, label_h = size, size, 30
    grid = Image.new("RGB", (cell_w * len(cells[0]), (cell_h + label_h) * len(cells)), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(cells):
        for c, (img, label) in enumerate(row):
            img = img.copy()
            img.thumbnail((cell_w, cell_h))
            x, y = c * cell_w, r * (cell_h + label_h)
            grid.paste(img, (x + (cell_w - img.width) // 2, y + (cell_h - img.height) // 2))
            draw.multiline_text((x + 4, y + cell_h + 2), label, fill="black", spacing=1)
    return grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, help="optimisation steps (default: each algorithm's own)")
    ap.add_argument("--pairs", nargs="+", default=PAIRS, help="content:style names from samples/")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "gatys_512.jpg")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    args = ap.parse_args()
    render(args.pairs, args.size, {k: VARIANTS[k] for k in args.variants}, args.steps).save(
        args.out, quality=88
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

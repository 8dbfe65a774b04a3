"""The held-out gallery in docs/, composed from a finished ``experiments/held_out.yaml`` sweep (its
pictures, nothing recomputed): a row per held-out pair, content | style | one column per
algorithm or network, with content_distance / style_distance under each picture.

    python benchmarks/held_out.py                                    # the sweep: runs/held_out
    python docs/held_out_gallery.py runs/held_out --out docs/held_out_adain.jpg \
        --columns "adain (previous)" adain
    python docs/held_out_gallery.py runs/held_out --out docs/held_out_johnson.jpg \
        --columns "johnson (previous)" johnson
    python docs/held_out_gallery.py runs/held_out --out docs/held_out_optimisers.jpg \
        --columns gatys mrf histogram adain_optimize

A row is a (content, style) pair that every column has (the AdaIN decoders and the fast networks
paint different paintings, so they go in two galleries); ``--pairs content:style ...`` (file
stems) chooses some.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stylegrid.orchestrator.images import read_image  # noqa: E402
from stylegrid.orchestrator.results.rows import read_results, source_file  # noqa: E402

from benchmarks.held_out import label  # noqa: E402

CELL = 200  # px, the long side of every picture
CAPTION = 28  # px under each


def cell(path: Path, caption: str) -> Image.Image:
    img = read_image(path)
    img.thumbnail((CELL, CELL))
    out = Image.new("RGB", (CELL, CELL + CAPTION), "white")
    out.paste(img, ((CELL - img.width) // 2, (CELL - img.height) // 2))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(caption.split("\n")):
        draw.text((4, CELL + 2 + 12 * i), line, fill="black")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the held-out sweep's folder")
    parser.add_argument("--out", required=True, help="the JPEG to write")
    parser.add_argument(
        "--columns", nargs="+", required=True, help="labels as benchmarks/held_out.py prints them"
    )
    parser.add_argument(
        "--pairs", nargs="*", help="content:style stems (default: every pair all columns have)"
    )
    args = parser.parse_args()
    folder = Path(args.output)
    df = read_results(folder).to_pandas()
    df = df[df["status"] == "ok"].copy()
    df["label"] = df.apply(label, axis=1)
    df = df[df["label"].isin(args.columns)]
    keys = df.groupby(["content_name", "style_name"])["label"].nunique()
    pairs = [k for k, n in keys.items() if n == len(args.columns)]
    if args.pairs:
        by_stem = {(Path(c).stem, Path(s).stem): (c, s) for c, s in pairs}
        pairs = [by_stem[w] for w in (tuple(p.split(":")) for p in args.pairs) if w in by_stem]
    if not pairs:
        print(f"{folder}: no pair has every column {args.columns}", file=sys.stderr)
        return 1
    rows = []
    for content, style in pairs:
        part = df[(df["content_name"] == content) & (df["style_name"] == style)].set_index("label")
        first = part.iloc[0]
        sources = [source_file(folder, first[kind]) for kind in ("content", "style")]
        row = [cell(sources[0], content[:30]), cell(sources[1], style[:30])]
        for col in args.columns:
            r = part.loc[col]
            caption = f"{col}\ncontent {r['content_distance']:.2f} style {r['style_distance']:.2f}"
            row.append(cell(folder / r["output_image"], caption))
        rows.append(row)
    sheet = Image.new("RGB", (CELL * len(rows[0]), (CELL + CAPTION) * len(rows)), "white")
    for y, row in enumerate(rows):
        for x, im in enumerate(row):
            sheet.paste(im, (x * CELL, y * (CELL + CAPTION)))
    sheet.save(args.out, quality=85)
    print(f"{len(rows)} pairs x {len(args.columns)} columns -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The rule that chose each image-optimisation algorithm's defaults, applied to the sweeps that
chose them (``experiments/tune_*.yaml``): per grid point, the mean quality measures over the
tuning pairs; the grid points on the Pareto front of mean content_distance and mean
style_distance (lower is better on both); of those that stylize visibly, closing at least a
third of the photos' own distance to the paintings (mean style_distance at most ``STYLIZED`` = 2/3
of the photos', each photo scored against its painting as if it were the output), the one with
the lowest sum of the two: the default. Both
measures are relative (1 = as far as all-zero features), so their sum weighs the photo's
structure and the painting's statistics alike; the table beside it shows what the neighbouring
points trade.

Why the stylization floor: without it the rule picked MRF's weakest grid point, whose outputs
are the photos with a faint texture (content_distance 0.11, style_distance 0.75, where the photos
themselves score 1.01 on the tuning pairs): the sum barely moves along MRF's front, so its lowest
point is the one nearest the photo. A default that returns the photo is of no use to anyone
comparing styles. The floor (a third of the way) is a judgement, made on those pictures; it
leaves the other algorithms' choices as the sum alone would make them.

    stylegrid sweep experiments/tune_mrf.yaml
    python benchmarks/choose_defaults.py runs/tune_mrf [runs/tune_gatys ...]   # markdown tables
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEASURES = ("content_distance", "content_ssim", "style_distance", "style_swd", "color_swd")
AXES = ("content_distance", "style_distance")
STYLIZED = 2 / 3  # a default's mean style_distance is at most this share of the photos' own


def grid_means(df: pd.DataFrame) -> pd.DataFrame:
    """Mean measures and seconds of each (algorithm, variant) over its ok jobs."""
    ok = df[df["status"] == "ok"]
    return ok.groupby(["algorithm", "variant"], sort=True, dropna=False).agg(
        pairs=("job_id", "count"), **{m: (m, "mean") for m in MEASURES}, seconds=("wall_seconds", "mean")
    )


def pareto_front(table: pd.DataFrame, axes=AXES) -> pd.Series:
    """Whether each row is on the front: no other row is at least as low on every axis and lower
    on one."""
    values = table[list(axes)].to_numpy()
    on = []
    for i, row in enumerate(values):
        dominated = any(
            (other <= row).all() and (other < row).any() for j, other in enumerate(values) if j != i
        )
        on.append(not dominated)
    return pd.Series(on, index=table.index)


def choose(table: pd.DataFrame, photo_style: float) -> pd.DataFrame:
    """``table`` with ``front`` and ``chosen`` columns: per algorithm, the lowest sum of the front's
    points whose style_distance is at most ``STYLIZED`` x ``photo_style`` (the front's lowest sum
    when none is)."""
    out = []
    for _, part in table.groupby(level="algorithm", sort=False):
        part = part.copy()
        part["front"] = pareto_front(part)
        score = part["content_distance"] + part["style_distance"]
        stylized = part["front"] & (part["style_distance"] <= STYLIZED * photo_style)
        part["chosen"] = False
        part.loc[score[stylized if stylized.any() else part["front"]].idxmin(), "chosen"] = True
        out.append(part)
    return pd.concat(out)


def photo_style_distance(df: pd.DataFrame, output: Path) -> float:
    """The mean style_distance of the photos themselves, each against its painting, over the
    sweep's pairs (the photo at the sweep's size, as a job's output would be). The rows name the
    images relative to the spec's folder: ``output``'s record finds them."""
    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor
    from stylegrid.orchestrator.results.rows import source_file

    pairs = df[["content", "style", "size"]].drop_duplicates()
    scores = []
    for content, style, size in pairs.itertuples(index=False):
        photo = to_tensor(resize_to(read_image(source_file(output, content)), int(size)))
        scores.append(quality(photo, photo, load_image(source_file(output, style))).style_distance)
    return sum(scores) / len(scores)


def markdown(table: pd.DataFrame) -> str:
    head = ["algorithm", "variant", "pairs", *MEASURES, "s/job", "front", "default"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (algo, variant), r in table.iterrows():
        cells = [
            algo,
            variant if isinstance(variant, str) and variant else "(defaults)",
            str(int(r["pairs"])),
        ]
        cells += [f"{r[m]:.3f}" if m != "color_swd" else f"{r[m]:.1f}" for m in MEASURES]
        cells += [f"{r['seconds']:.1f}", "yes" if r["front"] else "", "**chosen**" if r["chosen"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", help="sweep folders (runs/tune_mrf ...)")
    args = parser.parse_args()
    from stylegrid.orchestrator.results.rows import read_results

    for folder in args.outputs:
        df = read_results(Path(folder)).to_pandas()
        photo = photo_style_distance(df[df["status"] == "ok"], Path(folder))
        print(f"### {folder}\n")
        print(
            f"The photos themselves: style_distance {photo:.3f}; a default brings it to at most {STYLIZED * photo:.3f}.\n"
        )
        print(markdown(choose(grid_means(df), photo)))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

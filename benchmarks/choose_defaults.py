"""The rule that chose each image-optimisation algorithm's defaults, applied to the sweeps that
chose them (``experiments/tune_*.yaml``): per grid point, the mean quality measures over the
tuning pairs; the grid points on the Pareto front of mean content_distance and mean
style_distance (lower is better on both); and, of those, the one with the lowest sum of the two:
the default. Both measures are relative (1 = as far as all-zero features), so their sum weighs
the photo's structure and the painting's statistics alike; the table beside it shows what the
neighbouring points trade.

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


def grid_means(df: pd.DataFrame) -> pd.DataFrame:
    """Mean measures and seconds of each (algorithm, variant) over its ok jobs."""
    ok = df[df["status"] == "ok"]
    return ok.groupby(["algorithm", "variant"], sort=True).agg(
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


def choose(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``front`` and ``chosen`` columns: per algorithm, the front's lowest sum."""
    out = []
    for _, part in table.groupby(level="algorithm", sort=False):
        part = part.copy()
        part["front"] = pareto_front(part)
        score = part["content_distance"] + part["style_distance"]
        part["chosen"] = False
        part.loc[score[part["front"]].idxmin(), "chosen"] = True
        out.append(part)
    return pd.concat(out)


def markdown(table: pd.DataFrame) -> str:
    head = ["algorithm", "variant", "pairs", *MEASURES, "s/job", "front", "default"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (algo, variant), r in table.iterrows():
        cells = [algo, variant or "(defaults)", str(int(r["pairs"]))]
        cells += [f"{r[m]:.3f}" if m != "color_swd" else f"{r[m]:.1f}" for m in MEASURES]
        cells += [f"{r['seconds']:.1f}", "yes" if r["front"] else "", "**chosen**" if r["chosen"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outputs", nargs="+", help="sweep folders (runs/tune_mrf ...)")
    args = parser.parse_args()
    from orchestrator.results import read_results

    for folder in args.outputs:
        df = read_results(Path(folder)).to_pandas()
        print(f"### {folder}\n")
        print(markdown(choose(grid_means(df))))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every algorithm's defaults and every shipped network, with the previous shipped networks beside
them, on pairs none of them saw (``experiments/held_out.yaml``), in one run on this machine: the
mean of each quality measure (``algorithms/shared/metrics.py``) and the seconds per image, then the checks
the defaults and networks are held to:

* the shipped AdaIN decoder and fast network beat the previous ones on both content_distance and
  style_distance;
* MRF is not dominated by Gatys: better on content_distance or on style_swd.

Beside the measures, ``levels``: the share of the grey levels between an output's darkest and
lightest pixel that it uses, the lowest of an algorithm's outputs. Banding (posterised colours,
which networks trained on the corpus's 256-colour museum scans could learn) leaves levels unused;
a photograph uses nearly all of them.

The sweep is an ordinary stylegrid sweep (resumable: run the command again and only what is
missing runs), so its report, MLflow runs and Parquet table are there to look at afterwards.

    python benchmarks/held_out.py                    # about 15 minutes on 2 cores
    python benchmarks/held_out.py --only style_swap --output runs/held_out_swap   # some rows only
    python benchmarks/held_out.py --smoke-test       # the same on one sample pair at 64 px, 4 steps
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPEC = REPO / "experiments" / "held_out.yaml"
PREVIOUS = "previous_models"  # the folder of the previous shipped networks (benchmarks/fixtures/)
MEASURES = ("content_distance", "content_ssim", "style_distance", "style_swd", "color_swd")


def label(row) -> str:
    """The algorithm, `adain (previous)` for a network of the previous release; any other variant
    (parameters other than the network's file) after the name."""
    files = [row.get(k) for k in ("param.decoder", "param.model")]
    if any(isinstance(f, str) and PREVIOUS in f for f in files):
        return f"{row['algorithm']} (previous)"
    variant = row["variant"] if isinstance(row["variant"], str) else ""  # null where nothing varies
    rest = [p for p in variant.split() if not p.startswith(("decoder=", "model="))]
    return " ".join([row["algorithm"], *rest])


def level_coverage(path: Path) -> float:
    """The share of the 8-bit grey levels between the image's darkest and lightest that it uses."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(path).convert("L"))
    lo, hi = int(grey.min()), int(grey.max())
    return len(np.unique(grey)) / (hi - lo + 1)


def summary(df, output: Path):
    """Mean measures, level coverage and seconds per image, a row per algorithm and network, in
    the spec's order."""
    ok = df[df["status"] == "ok"].copy()
    ok["label"] = ok.apply(label, axis=1)
    ok["levels"] = [level_coverage(output / p) for p in ok["output_image"]]
    table = ok.groupby("label", sort=False).agg(
        jobs=("job_id", "count"),
        **{m: (m, "mean") for m in MEASURES},
        levels=("levels", "min"),
        seconds=("wall_seconds", "mean"),
    )
    return table


def verdicts(table) -> list[tuple[str, bool]]:
    """The checks of the module docstring, each with whether it holds."""
    out = []
    for algo in ("adain", "johnson"):
        new, old = algo, f"{algo} (previous)"
        if new in table.index and old in table.index:
            for m in ("content_distance", "style_distance"):
                a, b = table.loc[new, m], table.loc[old, m]
                out.append((f"{algo}: the shipped network's {m} {a:.3f} < the previous one's {b:.3f}", a < b))
    if "mrf" in table.index and "gatys" in table.index:
        mrf, gatys = table.loc["mrf"], table.loc["gatys"]
        better = [m for m in ("content_distance", "style_swd") if mrf[m] < gatys[m]]
        out.append(
            (
                f"mrf is not dominated by gatys (better on {', '.join(better) or 'neither'} of "
                f"content_distance {mrf['content_distance']:.3f} vs {gatys['content_distance']:.3f}, "
                f"style_swd {mrf['style_swd']:.3f} vs {gatys['style_swd']:.3f})",
                bool(better),
            )
        )
        out.append(
            (
                f"mrf's mean style_distance {mrf['style_distance']:.3f} <= 0.45 (gatys {gatys['style_distance']:.3f})",
                mrf["style_distance"] <= 0.45,
            )
        )
    return out


def absolute(spec: dict) -> dict:
    """``spec`` (held_out.yaml's) with its image and network paths absolute, to be written elsewhere."""
    for kind in ("content", "style"):
        spec[kind] = [str((SPEC.parent / p).resolve()) for p in spec[kind]]
    for entry in spec["algorithms"]:
        for key, value in entry.get("params", {}).items():
            if isinstance(value, str) and value.startswith(".."):
                entry["params"][key] = str((SPEC.parent / value).resolve())
    return spec


def only_spec(folder: Path, names: list[str]) -> Path:
    """held_out.yaml with only the entries of the algorithms ``names`` (a row measured alone)."""
    spec = absolute(yaml.safe_load(SPEC.read_text()))
    spec["algorithms"] = [e for e in spec["algorithms"] if e["name"] in names]
    if not spec["algorithms"]:
        raise SystemExit(f"{SPEC}: no entry for {', '.join(names)}")
    spec["name"] = "held_out_" + "_".join(names)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def smoke_spec(folder: Path) -> Path:
    """held_out.yaml on one sample photo and one painting per network, at 64 px and 4 steps."""
    spec = yaml.safe_load(SPEC.read_text())
    samples = REPO / "samples"
    spec["name"] = "held_out_smoke"
    spec["content"] = [str(samples / "content" / "tubingen.jpg")]
    spec["style"] = [
        str(samples / "style" / "en_campo_gris.jpg"),
        str(samples / "style" / "starry_night.jpg"),
    ]
    for entry in absolute(spec)["algorithms"]:
        entry["styles"] = ["starry_night"] if entry["name"] == "johnson" else ["en_campo_gris"]
    spec.update(size=64, style_size=64, steps=4)
    path = folder / "held_out_smoke.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(REPO / "runs" / "held_out"), help="the sweep's folder")
    parser.add_argument("--only", nargs="+", metavar="ALGORITHM", help="run only these algorithms' entries")
    parser.add_argument(
        "--smoke-test", action="store_true", help="one sample pair at 64 px, in a temporary folder"
    )
    args = parser.parse_args()

    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        spec, output = str(SPEC), args.output
        if args.only:
            spec = str(only_spec(Path(tmp), args.only))
        if args.smoke_test:
            spec, output = str(smoke_spec(Path(tmp))), str(Path(tmp) / "out")
        summary_ = run_sweep(spec, output=output, quiet=True)
        df = read_results(Path(output)).to_pandas()
        print(f"{spec}: {summary_.ok} ok, {summary_.failed} failed -> {output}")
        table = summary(df, Path(output))
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string())
    print()
    checks = verdicts(table)
    for text, holds in checks:
        print(("holds:  " if holds else "FAILS:  ") + text)
    if args.smoke_test:  # the machinery, not the verdicts: one tiny pair proves nothing either way
        labels = set(table.index)
        expected = {"gatys", "mrf", "histogram", "adain_optimize", "adain", "adain (previous)", "wct",
                    "style_swap", "style_swap_optimize", "johnson", "johnson (previous)"}  # fmt: skip
        missing = expected - labels
        if missing or summary_.failed:
            print(f"smoke test: missing {sorted(missing)}, {summary_.failed} failed", file=sys.stderr)
            return 1
        return 0
    return 0 if all(h for _, h in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

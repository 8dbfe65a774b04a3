"""Every picture stylegrid draws, as PNG bytes or PIL images, from plain data; the callers decide
where the files go.

* the loss curve of a job (``loss_curve_png``), drawn with Pillow: rendered by the sweep's
  workers, where a matplotlib figure costs a large part of a tiny job and this a few milliseconds
  (the per-job overhead ``benchmarks/sweep_overhead.py`` measures);
* the catalog's contact sheet (``contact_sheet``) and training's sample grids (``sample_grid``),
  pasted with Pillow;
* the report's charts (``trade_off``, ``parameter_effect``, ``seconds_by_algorithm``), drawn with
  matplotlib (Agg, no display). Colours are fixed per algorithm name (``colours``) so that an
  algorithm has the same colour in every chart of a report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from stylegrid.algorithms import StepLoss
from stylegrid.algorithms.shared.metrics import Measure

from ..images import png_bytes, to_pil
from ..storage import locations as storage

if TYPE_CHECKING:
    import torch

DPI = 100


# --- loss curves, contact sheets, sample grids (Pillow) ------------------------------------------


PLOT_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip


def loss_curve_png(history: list[StepLoss], title: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """Every loss term against the step on a log scale, drawn with Pillow, as PNG bytes.

    Rendered by the worker, not by the driver's single writer, which would spend it on every job
    (the per-job overhead ``benchmarks/sweep_overhead.py`` measures).
    """

    w, h = size
    left, right, top, bottom = 60, 150, 24, 30
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.text((left, 6), title[:80], fill="black")
    names = [
        n for n in (history[0].losses if history else {}) if any(s.losses.get(n, 0) > 0 for s in history)
    ]
    values = [v for s in history for n in names if (v := s.losses.get(n, 0)) > 0 and math.isfinite(v)]
    if not values:
        draw.text((left, h // 2), "no positive losses to plot", fill="black")
        return png_bytes(img)
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    hi = hi if hi > lo else lo + 1
    last = max(s.step for s in history)
    first = min(s.step for s in history)

    def xy(step: int, value: float) -> tuple[float, float]:
        fx = (step - first) / (last - first) if last > first else 0.5
        fy = (math.log10(value) - lo) / (hi - lo)
        return left + fx * (w - left - right), h - bottom - fy * (h - top - bottom)

    draw.rectangle((left, top, w - right, h - bottom), outline="black")
    for decade in range(lo, hi + 1):
        _, y = xy(first, 10.0**decade)
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((4, y - 6), f"1e{decade}", fill="black")
    draw.text((left, h - bottom + 4), f"step {first}", fill="black")
    draw.text((w - right - 60, h - bottom + 4), f"step {last}", fill="black")
    for i, name in enumerate(names):
        colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
        points = [xy(s.step, v) for s in history if (v := s.losses.get(name, 0)) > 0 and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3 if name == "total" else 1)
        else:  # one step (a feed-forward pass): a marker per term, spread so that none hides another
            x, y = points[0]
            x += (i + 1) * (w - left - right) / (len(names) + 1) - (w - left - right) / 2
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
        draw.text((w - right + 8, top + 14 * i), name, fill=colour)
    return png_bytes(img)


def contact_sheet(paths: Sequence[str], thumb: int = 160, columns: int = 4):
    """Thumbnails of ``paths`` (catalog outputs: paths or URIs) in a grid, each captioned with
    photo and style."""

    rows = max(1, math.ceil(len(paths) / columns))
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, p in enumerate(paths):
        x, y = (i % columns) * thumb, (i // columns) * (thumb + 14)
        try:
            with Image.open(io.BytesIO(storage.read_bytes(p))) as img:
                img.thumbnail((thumb, thumb))
                sheet.paste(img.convert("RGB"), (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        except (OSError, ValueError):
            pass  # a file removed since: leave its cell blank
        draw.text((x + 3, y + thumb), _caption(Path(p))[: thumb // 6], fill="black")
    return sheet


def _caption(output: Path) -> str:
    """``photo / style`` for an output ``images/<style>-<hash>/<photo>-<hash>.png``."""
    return f"{output.stem.rsplit('-', 1)[0]} / {output.parent.name.rsplit('-', 1)[0]}"


def sample_grid(
    content: torch.Tensor, style: torch.Tensor, output: torch.Tensor, rows: int = 4
) -> Image.Image:
    """Rows of content | style | output for the first ``rows`` items of a batch."""
    n, size = min(rows, content.shape[0]), content.shape[-1]
    grid = Image.new("RGB", (3 * size, n * size), "white")
    for r in range(n):
        for c, t in enumerate((content[r], style[r], output[r])):
            grid.paste(to_pil(t[None].clamp(0, 1)), (c * size, r * size))
    return grid


# --- the report's charts (matplotlib) ----------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def colours(algorithms: Sequence[str]) -> dict[str, str]:
    """A tab10 colour per algorithm, in sorted order of the names."""
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % 10] for i, name in enumerate(sorted(algorithms))}


def series_label(algorithm: str, variant: str | None) -> str:
    """What a chart calls one algorithm-and-variant series: ``gatys style_weight=5``."""
    return f"{algorithm} {variant}" if isinstance(variant, str) and variant else str(algorithm)


def series_colours(pairs: Sequence[tuple[str, str | None]]) -> dict[str, tuple[float, float, float]]:
    """A colour per (algorithm, variant) series: the algorithm's tab10 hue, its variants from the
    full colour to a lighter shade of it (so two variants never look like one series, and an
    algorithm's variants still read as a family)."""
    from matplotlib.colors import to_rgb

    base = colours(sorted({a for a, _ in pairs}))
    out = {}
    for algorithm in sorted(base):
        variants = sorted({v if isinstance(v, str) else "" for a, v in pairs if a == algorithm})
        for i, variant in enumerate(variants):
            mix = 0.6 * i / (len(variants) - 1) if len(variants) > 1 else 0.0
            r, g, b = to_rgb(base[algorithm])
            out[series_label(algorithm, variant)] = (r + (1 - r) * mix, g + (1 - g) * mix, b + (1 - b) * mix)
    return out


def pareto_front(x: np.ndarray, y: np.ndarray, x_higher: bool, y_higher: bool) -> np.ndarray:
    """Indices of the points no other point beats on both axes (ties kept), sorted by x: the
    trade-offs worth having. ``x_higher`` / ``y_higher``: whether larger is better on each axis."""
    sx = np.asarray(x, float) * (1 if x_higher else -1)  # larger is better on both, from here on
    sy = np.asarray(y, float) * (1 if y_higher else -1)
    order = np.lexsort((-sy, -sx))  # best x first; among equal x, best y first
    front, best_y = [], -np.inf
    for i in order:
        if sy[i] > best_y or (front and sx[i] == sx[front[-1]] and sy[i] == sy[front[-1]]):
            front.append(i)
            best_y = max(best_y, sy[i])
    return np.array(sorted(front, key=lambda i: x[i]), dtype=int)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _axis_label(m: Measure) -> str:
    return f"{m.name} ({m.better} is better)"


def trade_off(
    df: pd.DataFrame, content: Measure, style: Measure, palette: dict, by: str = "algorithm"
) -> bytes:
    """Every ok job as a point (content measure across, style measure up), coloured by its
    series (the ``by`` column: the algorithm, or the algorithm and variant), with each series'
    Pareto front as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for algorithm, group in df.groupby(by, sort=True):
        g = group.dropna(subset=[content.name, style.name])
        if g.empty:
            continue
        x, y = g[content.name].to_numpy(float), g[style.name].to_numpy(float)
        colour = palette[str(algorithm)]
        ax.scatter(x, y, s=18, alpha=0.6, color=colour, label=str(algorithm), edgecolors="none")
        front = pareto_front(x, y, content.better == "higher", style.better == "higher")
        ax.plot(x[front], y[front], color=colour, linewidth=1.5)
    ax.set_xlabel(_axis_label(content))
    ax.set_ylabel(_axis_label(style))
    ax.set_title(f"{style.name} against {content.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


def parameter_effect(
    df: pd.DataFrame, algorithm: str, parameter: str, measures: Sequence[Measure], colour: str
) -> bytes:
    """One panel per measure: every job of ``algorithm`` at its value of ``parameter`` (a
    numeric column ``param.<parameter>`` or the ``seed``), with the mean per value joined."""
    plt = _pyplot()
    column = parameter if parameter == "seed" else f"param.{parameter}"
    data = df[df["algorithm"] == algorithm].dropna(subset=[column])
    fig, axes = plt.subplots(1, len(measures), figsize=(2.6 * len(measures), 2.6), squeeze=False)
    for ax, m in zip(axes[0], measures, strict=True):
        ok = data.dropna(subset=[m.name])
        ax.scatter(ok[column], ok[m.name], s=14, alpha=0.5, color=colour, edgecolors="none")
        means = ok.groupby(column)[m.name].mean()
        ax.plot(means.index, means.to_numpy(), color=colour, marker="o", markersize=3)
        ax.set_xlabel(parameter)
        ax.set_title(m.name, fontsize=9)
        ax.grid(alpha=0.3)
        if m is measures[0]:
            ax.set_ylabel("value")
    fig.suptitle(f"{algorithm}: {parameter}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def seconds_by_algorithm(df: pd.DataFrame, palette: dict, by: str = "algorithm") -> bytes:
    """Seconds per job, one box per series (the ``by`` column; every job a dot over it)."""
    plt = _pyplot()
    names = sorted(df[by].unique())
    data = [df.loc[df[by] == n, "wall_seconds"].dropna().to_numpy(float) for n in names]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
    ax.boxplot(data, showfliers=False, widths=0.5)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    for i, (name, values) in enumerate(zip(names, data, strict=True), start=1):
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
        ax.scatter(i + jitter, values, s=10, alpha=0.6, color=palette[name], edgecolors="none")
    ax.set_yscale("log")
    ax.set_ylabel("seconds per job (log)")
    ax.set_title("time per job, worker side (model, measures and encoding)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)

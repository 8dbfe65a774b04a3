"""The report's charts, drawn with matplotlib (Agg, no display) and written as PNG bytes.

Each function takes plain data (a pandas DataFrame of results rows) and returns PNG bytes, so
the report decides where the files go. Colours are fixed per algorithm name (``colours``) so
that an algorithm has the same colour in every chart of a report.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from algorithms.metrics import Measure

DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def colours(algorithms: Sequence[str]) -> dict[str, str]:
    """A tab10 colour per algorithm, in sorted order of the names."""
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % 10] for i, name in enumerate(sorted(algorithms))}


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


def trade_off(df: pd.DataFrame, content: Measure, style: Measure, palette: dict[str, str]) -> bytes:
    """Every ok job as a point (content measure across, style measure up), coloured by
    algorithm, with each algorithm's Pareto front as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for algorithm, group in df.groupby("algorithm", sort=True):
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
    ax.legend(fontsize=8, loc="best")
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


def seconds_by_algorithm(df: pd.DataFrame, palette: dict[str, str]) -> bytes:
    """Seconds per job, one box per algorithm (every job a dot over it)."""
    plt = _pyplot()
    names = sorted(df["algorithm"].unique())
    data = [df.loc[df["algorithm"] == n, "wall_seconds"].dropna().to_numpy(float) for n in names]
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

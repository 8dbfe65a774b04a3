"""``stylegrid report OUT``: one self-contained HTML page of a sweep's results.

Written to ``OUT/report/index.html`` from the rows of ``OUT/rows/`` (so it works while a sweep
still runs, and on a finished one), with its thumbnails in ``OUT/report/thumbs/`` and its charts
in ``OUT/report/plots/``; every link is relative and nothing is fetched from the network, so the
folder can be opened from disk, copied, or logged to MLflow as it is. The page holds:

* per style, a grid: a row per content image, a column per algorithm and variant, each cell the
  output's thumbnail (a link to the full image) with its variant and quality measures;
* per pair of a content and a style measure, every job as a point coloured by algorithm, with
  each algorithm's Pareto front;
* per algorithm and varied parameter, the parameter's value against every measure;
* seconds per job by algorithm; a summary table (mean and spread per algorithm and variant);
* the failed jobs with their errors.

The sweep writes it at its end from the rows of the spec's jobs as it stands (and logs it to the
parent MLflow run); the command regenerates it at any time, from every row of the folder or,
with ``--spec``, from the rows of that spec's jobs.

The page's style sheet, script and one-file form are ``page.py``; the charts ``pictures.py``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from stylegrid.algorithms.shared.metrics import MEASURES, Measure

from ..images import ImageError, read_image, resize_to
from ..results.rows import curve_path, read_results, rows_dir, source_file
from ..results.schema import parse_rungs
from ..storage.files import safe_name, write_atomic
from ..tracking.ui import run_page
from . import pictures
from .page import STANDALONE, escape, page_html, standalone, table_html

THUMB_SIDE = 200  # px, long side of the grid's thumbnails (shown at up to 160 px)
MAX_GRID_ROWS = 60  # content images per style grid; the rest are counted, not shown
MAX_GRID_COLUMNS = 40  # algorithm variants per grid
CONTENT_MEASURES = [m for m in MEASURES if m.kind == "content"]
STYLE_MEASURES = [m for m in MEASURES if m.kind == "style"]


class ReportError(ValueError):
    """The folder cannot be reported on; the message names it."""


@dataclass(frozen=True)
class Report:
    path: Path  # index.html
    jobs: int
    ok: int
    failed: int
    not_shown: int = 0  # rows of jobs the spec no longer has
    stopped: int = 0  # jobs early stopping ended at a rung


# --- pure helpers ---------------------------------------------------------------------------------


def column_label(algorithm: str, variant: str) -> str:
    return f"{algorithm} {variant}".strip()


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm and variant: ok jobs, and mean and standard deviation of every measure and
    of the seconds per job."""
    ok = df[df["status"] == "ok"]
    columns = [m.name for m in MEASURES] + ["wall_seconds"]
    if ok.empty:
        return pd.DataFrame(columns=["algorithm", "variant", "jobs"])
    grouped = ok.groupby(["algorithm", "variant"], sort=True, dropna=False)
    table = grouped[columns].agg(["mean", "std"])
    table.columns = [f"{c} {stat}" for c, stat in table.columns]
    table.insert(0, "jobs", grouped.size())
    return table.reset_index()


def varied_parameters(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(algorithm, parameter) for every numeric parameter (and the seed) that takes at least two
    values among an algorithm's ok jobs: what the parameter charts show."""
    out = []
    ok = df[df["status"] == "ok"]
    for algorithm, group in ok.groupby("algorithm", sort=True):
        candidates = ["seed"] + sorted(c.removeprefix("param.") for c in group if c.startswith("param."))
        for name in candidates:
            column = name if name == "seed" else f"param.{name}"
            values = group[column].dropna()
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                if values.nunique() >= 2:
                    out.append((str(algorithm), name))
    return out


def measures_line(row: pd.Series) -> str:
    """The measures of one job, short, content then style: ``c 0.31 ssim 0.52\ns 0.29 swd 0.21 col 8.1``."""
    short = {"content_distance": "c", "content_ssim": "ssim", "style_distance": "s", "style_swd": "swd",
             "color_swd": "col"}  # fmt: skip

    def part(ms: list[Measure]) -> str:
        return " ".join(
            f"{short.get(m.name, m.name)} {row[m.name]:.{1 if m.name == 'color_swd' else 2}f}"
            for m in ms
            if pd.notna(row.get(m.name))
        )

    return f"{part(CONTENT_MEASURES)}\n{part(STYLE_MEASURES)}"


# --- side effects: thumbnails, charts, the page ---------------------------------------------------


def _thumbnail(source: Path, target: Path) -> bool:
    """A JPEG thumbnail of ``source`` at ``target`` (made once); False if the source is unreadable.
    A thumbnail whose source is not here is kept (a sweep's local copy of an object-store output
    has the report's thumbnails, not every image)."""
    if target.is_file() and (not source.is_file() or target.stat().st_mtime >= source.stat().st_mtime):
        return True
    try:
        img = resize_to(read_image(source), THUMB_SIDE)  # small outputs are enlarged, to compare
    except ImageError:
        return False
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    write_atomic(target, buf.getvalue())
    return True


def _source_thumb(ref: str, sha: str, kind: str, report: Path) -> str | None:
    """The relative URL of a content or style image's thumbnail: made from the file a row names
    (``results.source_file``), or the one an earlier report made of the same bytes when the
    file is not there (a folder moved without its spec); None when there is neither."""
    source = source_file(report.parent, ref)
    name = f"thumbs/{kind}-{safe_name(source.stem)}-{sha[:8]}.jpg"
    return name if _thumbnail(source, report / name) else None


def _grid_html(df: pd.DataFrame, out: Path, report: Path, ui: str | None = None) -> list[str]:
    parts: list[str] = []
    ok = df[df["status"].isin(("ok", "stopped"))]  # a stopped job shows its picture at its rung
    for style, by_style in ok.groupby("style", sort=True):
        first = by_style.iloc[0]
        labels = sorted({(r.algorithm, r.variant) for r in by_style.itertuples()})
        shown_labels = labels[:MAX_GRID_COLUMNS]
        style_thumb = _source_thumb(str(style), first.style_sha256, "style", report)
        parts.append(f'<h3 id="style-{escape(safe_name(first.style_name))}">{escape(first.style_name)}</h3>')
        if style_thumb:
            parts.append(f'<p><img class="source" src="{style_thumb}" alt="{escape(first.style_name)}"></p>')
        parts.append('<div class="scroll"><table class="grid"><tr><th>content</th>')
        parts += [f"<th>{escape(column_label(a, v))}</th>" for a, v in shown_labels]
        parts.append("</tr>")
        contents = sorted(by_style["content"].unique())
        for content in contents[:MAX_GRID_ROWS]:
            cells = by_style[by_style["content"] == content]
            row0 = cells.iloc[0]
            thumb = _source_thumb(str(content), row0.content_sha256, "content", report)
            head = (
                f'<img class="source" src="{thumb}" alt="{escape(row0.content_name)}"><br>' if thumb else ""
            )
            parts.append(f"<tr><th>{head}{escape(row0.content_name)}</th>")
            for algorithm, variant in shown_labels:
                match = cells[(cells["algorithm"] == algorithm) & (cells["variant"] == variant)]
                parts.append(_cell_html(match, out, report, (thumb, style_thumb), ui))
            parts.append("</tr>")
        parts.append("</table></div>")
        hidden_rows, hidden_cols = len(contents) - MAX_GRID_ROWS, len(labels) - MAX_GRID_COLUMNS
        if hidden_rows > 0 or hidden_cols > 0:
            parts.append(
                f"<p>Not shown: {max(0, hidden_rows)} content images, {max(0, hidden_cols)} variants "
                "(the table of results has them all).</p>"
            )
    return parts


def _cell_html(
    match: pd.DataFrame, out: Path, report: Path, sources: tuple = (None, None), ui: str | None = None
) -> str:
    """A grid cell: the output's thumbnail, a link to the full image (opened by the page beside
    its content and style, ``sources``' thumbnails, and its loss curve), the measures under it
    and a link to the job's MLflow run (in the UI at ``ui``)."""
    if match.empty:
        return '<td class="empty">-</td>'
    pieces = []
    for _, row in match.sort_values("finished_at").tail(1).iterrows():  # the newest run of the job
        image = out / row.output_image
        thumb = f"thumbs/{row.job_id}.jpg"
        if not row.output_image or not _thumbnail(image, report / thumb):
            pieces.append(f"<td>missing image<br><small>{escape(row.job_id)}</small></td>")
            continue
        link = Path("..") / row.output_image
        title = f"{row.algorithm} {row.variant} | {row.content_name} x {row.style_name} | job {row.job_id}"
        content_thumb, style_thumb = sources
        regions, regions_line = _regions(row, report)
        style_thumb = regions or style_thumb  # a regional job is shown beside its label image
        stopped = ""
        if row.status == "stopped":
            step = stopped_step(row)
            stopped = f'<b class="stopped">stopped early{f" at step {step}" if step else ""}</b><br>'
        curve = curve_path(out, row.job_id)
        curve_link = (Path("..") / curve.relative_to(out)).as_posix() if curve.is_file() else ""
        run = (
            run_page(ui, row.mlflow_run_id, row.get("mlflow_experiment_id"))
            if ui and isinstance(row.mlflow_run_id, str) and row.mlflow_run_id
            else ""
        )
        run_link = (
            f' <a class="run" href="{escape(run)}" target="_blank" rel="noopener">MLflow run</a>'
            if run
            else ""
        )
        pieces.append(
            f'<td><a class="full" href="{escape(link.as_posix())}" data-content="{escape(content_thumb or "")}" '
            f'data-style="{escape(style_thumb or "")}" data-curve="{escape(curve_link)}" data-run="{escape(run)}" '
            f'data-title="{escape(title)}"><img src="{thumb}" alt="{escape(title)}" title="{escape(title)}">'
            f"</a><br><small>{stopped}{regions_line}{escape(measures_line(row)).replace(chr(10), '<br>')}{run_link}</small></td>"
        )
    return "".join(pieces)


def _regions(row, report: Path) -> tuple[str | None, str]:
    """(the label image's thumbnail, a line naming each colour's painting) of a regional job's
    row (``jobs.Job.regions_record``); (None, "") for any other row."""
    record = getattr(row, "regions", None)
    if not isinstance(record, str) or not record:
        return None, ""
    try:
        regions = json.loads(record)
        styles = ", ".join(f"{c} {Path(s).stem}" for c, s in regions["styles"].items())
        thumb = _source_thumb(regions["mask"], regions.get("mask_sha256") or "0" * 8, "mask", report)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, ""
    image = f'<img src="{escape(thumb)}" alt="label image" style="max-height:48px"><br>' if thumb else ""
    return thumb, f"{image}regions: {escape(styles)}<br>"


def _plots_html(df: pd.DataFrame, report: Path) -> list[str]:
    ok = df[df["status"] == "ok"]
    if ok.empty:
        return ["<p>No finished job yet.</p>"]
    palette = pictures.colours(ok["algorithm"].unique())
    pairs = list(zip(ok["algorithm"], ok["variant"], strict=True))
    ok = ok.assign(series=[pictures.series_label(a, v) for a, v in pairs])
    shades = pictures.series_colours(pairs)  # each variant its own series, an algorithm's in one hue
    parts = ["<h2>Trade-offs</h2>", "<p>Each point a job; lines join each algorithm's and variant's Pareto "
             "front (the jobs no other job of that series beats on both measures).</p>", '<div class="plots">']  # fmt: skip
    for c in CONTENT_MEASURES:
        for s in STYLE_MEASURES:
            name = f"plots/tradeoff_{c.name}_{s.name}.png"
            write_atomic(report / name, pictures.trade_off(ok, c, s, shades, by="series"))
            parts.append(f'<img src="{name}" alt="{escape(s.name)} against {escape(c.name)}">')
    parts.append("</div>")
    varied = varied_parameters(df)
    if varied:
        parts += ["<h2>Parameters</h2>", '<div class="plots">']
        for algorithm, parameter in varied:
            name = f"plots/param_{safe_name(algorithm)}_{safe_name(parameter)}.png"
            write_atomic(
                report / name,
                pictures.parameter_effect(ok, algorithm, parameter, MEASURES, palette[algorithm]),
            )
            parts.append(f'<img src="{name}" alt="{escape(algorithm)}: {escape(parameter)}">')
        parts.append("</div>")
    write_atomic(report / "plots/seconds.png", pictures.seconds_by_algorithm(ok, shades, by="series"))
    parts += ["<h2>Time</h2>", '<img src="plots/seconds.png" alt="seconds per job by algorithm and variant">']
    return parts


def write_report(
    out: Path, job_ids: Collection[str] | None = None, strict: bool = False, ui: str | None = None
) -> Report:
    """Write ``out/report/index.html`` (and its thumbnails and charts) from ``out``'s rows;
    with ``job_ids`` (a spec's jobs as it stands), only their rows: rows of jobs an edited spec
    no longer has are counted, not shown. ``strict`` (``stylegrid report``): an unreadable row
    file is an error (``results.UnreadableRows``) and the report on disk is left as it was.
    ``ui``: the MLflow UI's address (``tracking.ui_base``), for a link from each picture to its run."""
    out = Path(out)
    if not rows_dir(out).is_dir():
        raise ReportError(f"{out}: not a sweep results folder (no {rows_dir(out).name}/ inside)")
    df = read_results(out, strict=strict).to_pandas()
    hidden = 0
    if job_ids is not None:
        keep = df["job_id"].isin(set(job_ids))
        hidden, df = int((~keep).sum()), df[keep].copy()
    report = out / "report"
    df["variant"] = df["variant"].fillna("")
    ok, failed = int((df["status"] == "ok").sum()), int((df["status"] == "failed").sum())
    stopped = int((df["status"] == "stopped").sum())
    stopped_text = (
        f"{stopped} stopped early (successive halving; their pictures are at the step they stopped), "
        if stopped
        else ""
    )
    names = ", ".join(sorted(df["spec_name"].dropna().unique())) or out.name
    versions = ", ".join(sorted(df["code_version"].dropna().unique()))
    older = f" {hidden} rows of jobs the spec no longer has are not shown." if hidden else ""
    body = [
        f"<h1>stylegrid report: {escape(names)}</h1>",
        f"<p>{len(df)} jobs: {ok} ok, {stopped_text}{failed} failed. Folder {escape(out)}. Code {escape(versions or 'unknown')}. "
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.{older}</p>",
        "<p>Measures (algorithms/shared/metrics.py): "
        + "; ".join(f"<b>{m.name}</b> {escape(m.summary)}, {m.better} is better" for m in MEASURES)
        + ". Under each picture: <i>c</i> content_distance, <i>ssim</i> content_ssim, "
        "<i>s</i> style_distance, <i>swd</i> style_swd, <i>col</i> color_swd.</p>",
        "<h2>Outputs</h2>",
        *_grid_html(df, out, report, ui),
        *_plots_html(df, report),
        "<h2>Summary</h2>",
        table_html(summary_table(df)),
    ]
    if stopped:
        body += _stopped_html(df[df["status"] == "stopped"])
    failures = df[df["status"] == "failed"]
    body.append(f"<h2>Failed jobs ({len(failures)})</h2>")
    if len(failures):
        table = failures[["algorithm", "variant", "content_name", "style_name", "error", "job_id"]]
        body.append(table_html(table.sort_values(["algorithm", "content_name"])))
    else:
        body.append("<p>None.</p>")
    page = page_html(f"stylegrid report: {names}", body)
    index = write_atomic(report / "index.html", page.encode())
    write_atomic(report / STANDALONE, standalone(page, report).encode())
    summary = {"jobs": len(df), "ok": ok, "failed": failed, "stopped": stopped, "not_shown": hidden}
    write_atomic(report / "summary.json", json.dumps(summary).encode())
    return Report(index, len(df), ok, failed, hidden, stopped)


def stopped_step(row) -> int | None:
    """The step a stopped job's row stopped at (its last rung), or None."""
    rungs = parse_rungs(getattr(row, "rungs", None))
    return int(rungs[-1]["step"]) if rungs and "step" in rungs[-1] else None


def _stopped_html(stopped: pd.DataFrame) -> list[str]:
    """The jobs early stopping ended: where, on which measures, and why."""
    table = stopped.assign(step=[stopped_step(r) for r in stopped.itertuples()])[
        ["algorithm", "variant", "content_name", "style_name", "step", "steps",
         *[m.name for m in MEASURES], "error", "job_id"]
    ].rename(columns={"error": "why"})  # fmt: skip
    return [
        f"<h2>Stopped early ({len(stopped)})</h2>",
        "<p>Successive halving compared these jobs at a rung with the other jobs of their picture "
        "and stopped them there; their measures are at that step, so the summary and the charts "
        "leave them out.</p>",
        table_html(table.sort_values(["algorithm", "content_name", "style_name"])),
    ]

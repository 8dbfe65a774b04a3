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

Why this module is long (about 410 lines): the page is one self-contained file, so its style
sheet and its script (sorting, filtering, the full-size viewer: about 60 lines) live here beside
the HTML they serve; the charts are ``pictures.py``'s.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from stylegrid.algorithms.shared.metrics import MEASURES, Measure

from ..images import ImageError, read_image, resize_to
from ..results.rows import curve_path, parse_rungs, read_results, rows_dir, source_file
from ..storage.files import safe_name, write_atomic
from ..tracking.tracker import run_page
from . import pictures

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


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _grid_html(df: pd.DataFrame, out: Path, report: Path, ui: str | None = None) -> list[str]:
    parts: list[str] = []
    ok = df[df["status"].isin(("ok", "stopped"))]  # a stopped job shows its picture at its rung
    for style, by_style in ok.groupby("style", sort=True):
        first = by_style.iloc[0]
        labels = sorted({(r.algorithm, r.variant) for r in by_style.itertuples()})
        shown_labels = labels[:MAX_GRID_COLUMNS]
        style_thumb = _source_thumb(str(style), first.style_sha256, "style", report)
        parts.append(f'<h3 id="style-{_e(safe_name(first.style_name))}">{_e(first.style_name)}</h3>')
        if style_thumb:
            parts.append(f'<p><img class="source" src="{style_thumb}" alt="{_e(first.style_name)}"></p>')
        parts.append('<div class="scroll"><table class="grid"><tr><th>content</th>')
        parts += [f"<th>{_e(column_label(a, v))}</th>" for a, v in shown_labels]
        parts.append("</tr>")
        contents = sorted(by_style["content"].unique())
        for content in contents[:MAX_GRID_ROWS]:
            cells = by_style[by_style["content"] == content]
            row0 = cells.iloc[0]
            thumb = _source_thumb(str(content), row0.content_sha256, "content", report)
            head = f'<img class="source" src="{thumb}" alt="{_e(row0.content_name)}"><br>' if thumb else ""
            parts.append(f"<tr><th>{head}{_e(row0.content_name)}</th>")
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
            pieces.append(f"<td>missing image<br><small>{_e(row.job_id)}</small></td>")
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
            f' <a class="run" href="{_e(run)}" target="_blank" rel="noopener">MLflow run</a>' if run else ""
        )
        pieces.append(
            f'<td><a class="full" href="{_e(link.as_posix())}" data-content="{_e(content_thumb or "")}" '
            f'data-style="{_e(style_thumb or "")}" data-curve="{_e(curve_link)}" data-run="{_e(run)}" '
            f'data-title="{_e(title)}"><img src="{thumb}" alt="{_e(title)}" title="{_e(title)}">'
            f"</a><br><small>{stopped}{regions_line}{_e(measures_line(row)).replace(chr(10), '<br>')}{run_link}</small></td>"
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
    image = f'<img src="{_e(thumb)}" alt="label image" style="max-height:48px"><br>' if thumb else ""
    return thumb, f"{image}regions: {_e(styles)}<br>"


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
            parts.append(f'<img src="{name}" alt="{_e(s.name)} against {_e(c.name)}">')
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
            parts.append(f'<img src="{name}" alt="{_e(algorithm)}: {_e(parameter)}">')
        parts.append("</div>")
    write_atomic(report / "plots/seconds.png", pictures.seconds_by_algorithm(ok, shades, by="series"))
    parts += ["<h2>Time</h2>", '<img src="plots/seconds.png" alt="seconds per job by algorithm and variant">']
    return parts


def _table_html(table: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = []
    for record in table.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append(f"<td>{'' if pd.isna(value) else float_format.format(value)}</td>")
            else:
                cells.append(f"<td>{_e(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<input class="filter" type="search" placeholder="filter rows" aria-label="filter rows">'
        f'<div class="scroll"><table class="data sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px; vertical-align: top; text-align: center; }
table.data { font-size: 0.8em; width: 100%; }
table.data td { text-align: right; overflow-wrap: anywhere; }
table.data th { cursor: pointer; overflow-wrap: anywhere; }
table.data th.asc::after { content: " \\25B2"; } table.data th.desc::after { content: " \\25BC"; }
table.grid { table-layout: fixed; width: 100%; }
table.grid th, table.grid td { overflow-wrap: anywhere; }
table.grid img { width: 100%; max-width: 160px; height: auto; }
img.source { width: 100%; max-width: 120px; height: auto; }
small { font-size: 0.72em; color: #444; }
.plots img { margin: 4px; border: 1px solid #eee; max-width: 100%; height: auto; }
.scroll { overflow-x: auto; }
input.filter { margin: 0.4em 0; width: 20em; }
#viewer { display: none; position: fixed; inset: 0; background: rgba(0,0,0,0.85); color: #eee;
  z-index: 10; padding: 1em; overflow: auto; cursor: zoom-out; }
#viewer.open { display: flex; gap: 1em; align-items: flex-start; justify-content: center; flex-wrap: wrap; }
#viewer figure { margin: 0; text-align: center; }
#viewer img.side { width: 220px; height: auto; }
#viewer img.output { width: min(60vw, 1024px); height: auto; image-rendering: pixelated; }
#viewer img.curve { width: 360px; height: auto; background: #fff; }
#viewer a, a.run { color: #4af; }
td.empty { color: #aaa; }
b.stopped { color: #b35900; }
"""

# Sorting (click a column's header; again to reverse) and filtering (rows holding the typed
# text) of the report's tables, in the page itself: it works offline and from MLflow's viewer.
SCRIPT = """
// a picture of the grid opens full size (scaled up to the window when small) beside its content
// and style; a click or Escape closes it. Without the script the link opens the image file.
var viewer = document.createElement('div');
viewer.id = 'viewer';
document.body.appendChild(viewer);
function figure(src, cls, caption) {
  return src ? '<figure><img class="' + cls + '" src="' + src + '"><figcaption>' + caption
    + '</figcaption></figure>' : '';
}
document.querySelectorAll('a.full').forEach(function (a) {
  a.addEventListener('click', function (event) {
    event.preventDefault();
    var full = a.getAttribute('href') === '#' ? a.querySelector('img').src : a.getAttribute('href');
    var title = a.dataset.title.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    if (a.dataset.run) title += ' | <a href="' + a.dataset.run + '" target="_blank" rel="noopener">MLflow run</a>';
    viewer.innerHTML = figure(a.dataset.content, 'side', 'content') + figure(full, 'output', title)
      + figure(a.dataset.style, 'side', 'style') + figure(a.dataset.curve, 'curve', 'losses by step');
    viewer.classList.add('open');
  });
});
viewer.addEventListener('click', function () { viewer.classList.remove('open'); });
document.addEventListener('keydown', function (e) { if (e.key === 'Escape') viewer.classList.remove('open'); });
document.querySelectorAll('table.sortable').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('thead th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = !th.classList.contains('asc');
      table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent.trim(), y = b.cells[col].textContent.trim();
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        if (x === '' && y !== '') return 1;
        if (y === '' && x !== '') return -1;
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filter = table.parentNode.previousElementSibling;
  if (filter && filter.classList.contains('filter')) {
    filter.addEventListener('input', function () {
      var text = filter.value.toLowerCase();
      Array.prototype.forEach.call(body.rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
      });
    });
  }
});
"""


def _page(title: str, body: list[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


STANDALONE = "standalone.html"  # the report in one file: what the sweep's MLflow run shows
_RELATIVE_IMAGE = re.compile(r'src="((?:thumbs|plots)/[^"]+)"')


def standalone(page: str, report: Path) -> str:
    """``page`` with its thumbnails and charts inlined (data: URIs), so that it renders alone:
    in MLflow's artifact viewer, which shows one file, or mailed. The links to the full images
    (files of the results folder) open the thumbnail there instead."""

    def inline(match: re.Match) -> str:
        path = report / match.group(1)
        if not path.is_file():
            return match.group(0)
        kind = "image/png" if path.suffix == ".png" else "image/jpeg"
        return f'src="data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"'

    page = _RELATIVE_IMAGE.sub(inline, page)
    page = re.sub(r' data-curve="[^"]*"', ' data-curve=""', page)
    return re.sub(r'<a class="full" href="[^"]*"', '<a class="full" href="#"', page)


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
        f"<h1>stylegrid report: {_e(names)}</h1>",
        f"<p>{len(df)} jobs: {ok} ok, {stopped_text}{failed} failed. Folder {_e(out)}. Code {_e(versions or 'unknown')}. "
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.{older}</p>",
        "<p>Measures (algorithms/shared/metrics.py): "
        + "; ".join(f"<b>{m.name}</b> {_e(m.summary)}, {m.better} is better" for m in MEASURES)
        + ". Under each picture: <i>c</i> content_distance, <i>ssim</i> content_ssim, "
        "<i>s</i> style_distance, <i>swd</i> style_swd, <i>col</i> color_swd.</p>",
        "<h2>Outputs</h2>",
        *_grid_html(df, out, report, ui),
        *_plots_html(df, report),
        "<h2>Summary</h2>",
        _table_html(summary_table(df)),
    ]
    if stopped:
        body += _stopped_html(df[df["status"] == "stopped"])
    failures = df[df["status"] == "failed"]
    body.append(f"<h2>Failed jobs ({len(failures)})</h2>")
    if len(failures):
        table = failures[["algorithm", "variant", "content_name", "style_name", "error", "job_id"]]
        body.append(_table_html(table.sort_values(["algorithm", "content_name"])))
    else:
        body.append("<p>None.</p>")
    page = _page(f"stylegrid report: {names}", body)
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
        _table_html(table.sort_values(["algorithm", "content_name", "style_name"])),
    ]

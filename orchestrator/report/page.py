"""The report's page frame: its style sheet and script (sorting, filtering, the full-size viewer),
HTML escaping and tables, and the one-file form (``standalone``: every image inlined) that the
sweep's MLflow run shows. The page is one self-contained file, so these live beside the HTML
``html.py`` writes into them.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def table_html(table: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    rows = []
    for record in table.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append(f"<td>{'' if pd.isna(value) else float_format.format(value)}</td>")
            else:
                cells.append(f"<td>{escape(value)}</td>")
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


def page_html(title: str, body: list[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
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

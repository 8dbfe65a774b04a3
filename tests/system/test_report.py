"""`stylegrid report`: the pure pieces, then the page of a real sweep in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import REPO
from helpers import chromium

# --- the page of a real sweep ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_report_opens_in_chromium_with_every_picture(every_algorithm_sweep, tmp_path):
    out, summary = every_algorithm_sweep
    assert summary.report == out / "report" / "index.html"
    # the command regenerates it at any time (here into a copy of the folder)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report", "mlartifacts", "mlflow.db"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "stylegrid", "report", str(copy)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(str(copy / "report" / "index.html"))
    page = copy / "report" / "index.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing from the network

    browser = chromium()
    try:
        browser.get(page.as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        links = browser.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.href)")
        curves = browser.execute_script(
            "return Array.from(document.querySelectorAll('a.full')).map(a => [a.title || a.dataset.title, a.dataset.curve])"
        )
        heading = browser.find_element("tag name", "h1").text
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.save_screenshot(str(tmp_path / "report.png"))
        # at 1280 px nothing runs off the page's side
        browser.set_window_size(1280, 1000)
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        # the summary table sorts on a click on a column's header (again: the other way) and filters
        column = "return Array.from(document.querySelectorAll('table.sortable')[0].tBodies[0].rows)"
        column += ".filter(r => r.style.display !== 'none').map(r => r.cells[IDX].textContent)"
        heads = browser.find_elements("css selector", "table.sortable thead th")
        idx = [h.text for h in heads].index("style_distance mean")
        heads[idx].click()
        ascending = [float(v) for v in browser.execute_script(column.replace("IDX", str(idx)))]
        heads[idx].click()
        descending = [float(v) for v in browser.execute_script(column.replace("IDX", str(idx)))]
        browser.find_elements("css selector", "input.filter")[0].send_keys("mrf")
        filtered = browser.execute_script(column.replace("IDX", "0"))
        # a picture opens full size, scaled up to the window, beside its content and style
        browser.execute_script("window.scrollTo(0, 0)")
        browser.find_elements("css selector", "a.full")[0].click()
        time.sleep(0.5)
        viewer = browser.execute_script(
            "var v = document.getElementById('viewer'); return [getComputedStyle(v).display,"
            " Array.from(v.querySelectorAll('img')).map(i => [i.className, i.complete && i.naturalWidth > 0,"
            " i.naturalWidth, i.getBoundingClientRect().width])]"
        )
    finally:
        browser.quit()
    assert widths[0] <= widths[1], widths
    # the one-file copy (what the sweep's MLflow run shows) renders alone, every picture inline
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.copy(copy / "report" / "standalone.html", alone)
    assert 'src="thumbs/' not in alone.read_text() and 'src="plots/' not in alone.read_text()
    browser = chromium()
    try:
        browser.get(alone.as_uri())
        inline = browser.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        )
    finally:
        browser.quit()
    assert len(inline) == len(images) and all(inline)
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
    assert len(ascending) == summary.ok and filtered == ["mrf"]  # a row per algorithm and variant
    display, shown = viewer
    assert display == "flex" and [c for c, *_ in shown][:3] == ["side", "output", "side"]
    # each optimising job's loss curve (a file beside the images) opens with its picture
    with_curve = {title.split(" | ")[0].strip() for title, curve in curves if curve}
    assert {"gatys style_weight=2.5", "mrf", "histogram"} <= with_curve and "adain" not in with_curve
    assert all((copy / "report" / curve).resolve().is_file() for _, curve in curves if curve)
    assert all(loaded for _, loaded, *_ in shown)
    _, _, natural, width = shown[1]
    assert width >= 3 * natural  # a 64 px result is shown large, not smaller than its thumbnail
    assert heading == "stylegrid report: every"
    assert not errors, errors
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert not broken, broken
    srcs = [src for src, *_ in images]
    # a thumbnail per job, the content and the style, 6 trade-off charts, the parameter chart of
    # gatys's style_weight, the seconds per job
    assert sum(s.startswith("thumbs/") for s in srcs) == summary.ok + 2
    assert sum(s.startswith("plots/tradeoff_") for s in srcs) == 6
    assert "plots/param_gatys_style_weight.png" in srcs and "plots/seconds.png" in srcs
    # clicking a picture opens the full image: every link is a file of the results folder
    targets = [Path(unquote(urlparse(link).path)) for link in links]
    assert len(targets) == summary.ok and all(
        t.is_file() and t.is_relative_to(copy / "images") for t in targets
    )
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_of_a_folder_that_is_not_a_sweep_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "stylegrid", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "not a sweep results folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_report_of_the_spec_as_it_stands_leaves_older_rows_out(every_algorithm_sweep, tmp_path):
    from stylegrid.orchestrator.report.html import write_report
    from stylegrid.orchestrator.results.rows import read_results

    out, _ = every_algorithm_sweep
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report", "mlartifacts", "mlflow.db"))
    rows = read_results(copy).to_pandas()
    kept = set(rows.job_id[rows.algorithm == "gatys"])
    report = write_report(copy, kept)
    assert (report.jobs, report.not_shown) == (len(kept), len(rows) - len(kept))
    text = report.path.read_text()
    assert f"{len(rows) - len(kept)} rows of jobs the spec no longer has are not shown" in text
    assert "mrf" not in text.split("<h2>Outputs</h2>")[1].split("<h2>")[0]

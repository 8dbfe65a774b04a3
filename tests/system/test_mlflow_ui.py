"""The MLflow UI as a researcher opens it after a sweep: the real server on the sweep's store, the
page the summary prints, in a real headless Chromium."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import chromium
from stylegrid.orchestrator.sweep.runs import SWEEP_VIEW
from stylegrid.orchestrator.tracking.ui import runs_page, view_state, view_tag

pytestmark = pytest.mark.slow


def test_a_view_tag_holds_the_state_in_the_uis_format():
    key, value = view_tag(SWEEP_VIEW, 1_000)
    assert key == "mlflow.sharedViewState.stylegrid-jobs"
    state = view_state(value)
    assert "metrics.`style_distance`" in state["selectedColumns"]
    assert [k["groupByData"] for k in state["groupBy"]["groupByKeys"]] == ["series"]
    assert runs_page("http://h:5000", "3", SWEEP_VIEW.key).endswith(
        "/#/experiments/3/runs?viewStateShareKey=stylegrid-jobs&workflowType=machine_learning"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_printed_page_opens_on_the_runs_with_the_measures(every_algorithm_sweep, tmp_path):
    out, summary = every_algorithm_sweep
    mlflow_line = dict(summary.summary().places)["MLflow"]
    assert mlflow_line.startswith(f"mlflow ui --backend-store-uri sqlite:///{out}/mlflow.db, then open ")
    page = mlflow_line.rsplit("then open ", 1)[1]
    port = _free_port()
    page = page.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{out}/mlflow.db",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    browser = None
    try:
        deadline = time.monotonic() + 300  # a busy 2-core machine starts it slowly
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "mlflow server did not start"
                time.sleep(0.5)
        browser = chromium()
        browser.set_window_size(2600, 1000)  # the table renders only the columns in sight
        browser.get(page)
        text = ""
        for _ in range(60):  # the page renders as the runs arrive
            text = browser.find_element("tag name", "body").text
            if "Group: gatys style_weight=5" in text and "style_distance" in text:
                break
            time.sleep(0.5)
        browser.save_screenshot(str(tmp_path / "mlflow.png"))
        # the same view's charts: the measures as a scatter and parallel coordinates (no chart of
        # one point per measure), the jobs' pictures side by side
        browser.get(page + "&compareRunsMode=CHART")
        charts: list[str] = []
        pictures = 0
        for _ in range(120):  # the charts and the pictures load after the runs
            charts = browser.execute_script(
                "return Array.from(document.querySelectorAll('h4, [role=heading]'))"
                ".map(e => e.innerText.split('\\n')[0])"
            )
            pictures = browser.execute_script(
                "return Array.from(document.images)"
                ".filter(i => i.src.includes('output') && i.complete && i.naturalWidth > 0).length"
            )
            if "output" in charts and pictures:
                break
            time.sleep(0.5)
        browser.save_screenshot(str(tmp_path / "mlflow_charts.png"))
        # the report links each picture to its run: the UI's direct route opens the run's page
        report = (out / "report" / "index.html").read_text()
        run_link = re.search(r'<a class="run" href="([^"]+)"', report).group(1)
        run_id = re.search(r"/runs/([0-9a-f]+)\?workflowType=machine_learning$", run_link).group(1)
        browser.get(run_link.replace("127.0.0.1:5000", f"127.0.0.1:{port}"))
        run_text = ""
        for _ in range(60):
            run_text = browser.find_element("tag name", "body").text
            if run_id in browser.current_url and "content_distance" in run_text:
                break
            time.sleep(0.5)
        # the sweep's report as one file, in MLflow's own artifact viewer: every picture shows
        parent = next(r for r in _runs(out) if r.data.tags.get("stylegrid.kind") == "sweep")
        browser.get(
            f"http://127.0.0.1:{port}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
            "/artifacts/standalone.html"
        )
        viewer = (0, 0)
        for _ in range(60):
            frames = browser.find_elements("tag name", "iframe")
            if frames:
                browser.switch_to.frame(frames[0])
                viewer = browser.execute_script(
                    "return [document.images.length,"
                    " Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length]"
                )
                browser.switch_to.default_content()
                if viewer[0] and viewer[0] == viewer[1]:
                    break
            time.sleep(0.5)
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)
    assert "Model training" in text and "Runs" in text  # the model-training view, not GenAI's traces
    assert "No data available" not in text
    assert SWEEP_VIEW.name in text  # the saved view is applied
    for column in ("content_distance", "style_distance", "style_swd", "wall_seconds"):
        assert column in text, column
    # every algorithm and each Gatys variant is a group of its own
    assert "Group: gatys style_weight=2.5" in text and "Group: gatys style_weight=5" in text
    assert "Group: mrf" in text
    assert charts[:3] == ["content_distance vs. style_distance", "Parallel Coordinates", "output"], charts
    assert not {"content_distance", "style_distance", "style_swd", "wall_seconds"} & set(charts), charts
    assert pictures > 0  # the image grid shows the jobs' outputs
    assert "content_distance" in run_text and "Overview" in run_text  # the job's run page, its metrics
    assert "Observability" not in run_text  # ... in the model-training view, not GenAI's sidebar
    assert viewer[0] > 10 and viewer[0] == viewer[1], viewer  # every thumbnail and chart, inline


def _runs(out):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])

"""What a researcher opens in the MLflow UI: the runs page and a run's page (links that open in the
model-training view, not GenAI's), the command that serves a store, and the saved view a sweep's
runs page opens with (``RunsView``: columns, grouping, sorting; ``RunsCharts``: the chart view's
cards), stored as the experiment's shared-view tag the UI reads. Written by ``tracker.Tracker``.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass

from ..services import redact_uri

UI_LOCAL = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def runs_page(base: str, experiment: str | None, view: str | None = None) -> str:
    """The MLflow 3 UI's runs table of ``experiment`` in its model-training view (the UI ignores
    the experiment's kind tag and opens the GenAI view unless the URL names the workflow), with
    the saved view ``view`` applied."""
    if experiment is None:
        return f"{base.rstrip('/')}/#/experiments?workflowType=machine_learning"
    query = (
        f"viewStateShareKey={view}&workflowType=machine_learning" if view else "workflowType=machine_learning"
    )
    return f"{base.rstrip('/')}/#/experiments/{experiment}/runs?{query}"


def served_by_mlflow_ui(tracking_uri: str) -> bool:
    """A database or file store, which ``mlflow ui --backend-store-uri`` serves (not a server)."""
    return tracking_uri.startswith(("sqlite:", "postgresql:", "mysql:", "file:")) or "://" not in tracking_uri


def ui_base(tracking_uri: str | None) -> str | None:
    """The MLflow UI's address for a store: ``mlflow ui``'s default for a database or file store,
    the server itself (no password) for an HTTP one; None when unknown."""
    if not tracking_uri:
        return None
    if served_by_mlflow_ui(tracking_uri):
        return UI_LOCAL
    if tracking_uri.startswith(("http:", "https:")):
        return redact_uri(tracking_uri).rstrip("/")
    return None


def run_page(base: str, run_id: str, experiment: str | None = None) -> str:
    """A run's page in the MLflow UI: under its experiment in the model-training view (MLflow 3
    opens the direct route ``#/runs/<id>``, whose query it drops, in the GenAI view), or the
    direct route when the experiment is not known (rows of an older stylegrid)."""
    if experiment:
        return f"{base}/#/experiments/{experiment}/runs/{run_id}?workflowType=machine_learning"
    return f"{base}/#/runs/{run_id}"


def ui_command(tracking_uri: str, experiment: str | None = None, view: str | None = None) -> str:
    """How to open the runs: the command that serves a database store and the page to open, or
    the server's page."""
    shown = redact_uri(tracking_uri)
    if served_by_mlflow_ui(tracking_uri):
        return f"mlflow ui --backend-store-uri {shown}, then open {runs_page(UI_LOCAL, experiment, view)}"
    if tracking_uri.startswith(("http:", "https:")):
        return f"open {runs_page(shown, experiment, view)}"
    return f"open {shown} (the MLflow server)"


@dataclass(frozen=True)
class RunsView:
    """A saved view of an experiment's runs table (MLflow 3 "Views"): the columns in view, the
    runs grouped (each group a row of averages, its runs under it) and the order."""

    key: str  # the share key in the URL (viewStateShareKey)
    name: str  # as the Views menu lists it
    columns: tuple[str, ...]  # "metrics.`style_distance`", "tags.`variant`", "params.`lr`"
    group_by: tuple[tuple[str, str], ...] = ()  # (mode: param | tag, name)
    search: str = ""  # the runs filter
    charts: RunsCharts | None = None  # the chart view's cards; None: the UI's own


@dataclass(frozen=True)
class RunsCharts:
    """The chart view of a saved view: measures logged once per run compared across runs (a
    scatter of two, parallel coordinates of all), not as the one-point line or bar chart per
    measure the UI would make of each; metrics logged along the steps (losses) and logged images
    still get the UI's own line charts and image grids."""

    scatter: tuple[str, str]  # (x, y) metric keys
    parallel: tuple[str, ...]  # metric keys, one axis each
    once: tuple[str, ...]  # metric keys logged once per run: no chart of their own
    images: tuple[str, ...] = ()  # image keys (``log_image``) shown side by side, run by run


CHART_SECTION = "Model metrics"  # the section the UI puts metrics without a "/" prefix in


def chart_cards(charts: RunsCharts) -> tuple[list[dict], list[dict]]:
    """``compareRunCharts`` and ``compareRunSections`` of the UI's state for ``charts``. A metric
    the UI finds a card for (even a deleted one) gets no card of its own, so each measure logged
    once has a deleted card: the UI's "add chart" can still bring it back."""
    section = "stylegrid-measures"
    base = {"metricSectionId": section, "isGenerated": False, "deleted": False, "runsCountToCompare": 100}
    x, y = charts.scatter
    cards = [
        {**base, "uuid": "stylegrid-scatter", "type": "SCATTER", "displayName": f"{y} against {x}",
         "xaxis": {"key": x, "type": "METRIC"}, "yaxis": {"key": y, "type": "METRIC"}},
        {**base, "uuid": "stylegrid-parallel", "type": "PARALLEL", "displayName": "every measure",
         "selectedParams": [], "selectedMetrics": list(charts.parallel), "showAllRuns": True},
        *({**base, "uuid": f"stylegrid-images-{key}", "type": "IMAGE", "imageKeys": [key], "step": 0,
           "showRunParams": True} for key in charts.images),
        *({**base, "uuid": f"stylegrid-once-{key}", "type": "BAR", "metricKey": key, "displayName": key,
           "deleted": True} for key in charts.once),
    ]  # fmt: skip
    sections = [{"uuid": section, "name": CHART_SECTION, "display": True, "isReordered": False}]
    return cards, sections


SHARED_VIEW_PREFIX = "mlflow.sharedViewState."


def view_tag(view: RunsView, now_ms: int) -> tuple[str, str]:
    """The experiment tag that holds ``view``, in the MLflow UI's own format (what its "Save as
    new view" writes: the table state as deflated, base64 JSON)."""
    state = {
        "searchFilter": view.search, "orderByKey": "attributes.start_time", "orderByAsc": False,
        "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
        "selectedColumns": list(view.columns), "columnOrder": [], "columnWidths": {}, "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        # the charts show each job, not a group's average: a point per job in the scatter, and
        # the image grid has pictures (a group has none); the table keeps the groups
        "useGroupedValuesInCharts": False, "hideEmptyCharts": True,
        "groupBy": {"aggregateFunction": "average",
                    "groupByKeys": [{"mode": mode, "groupByData": name} for mode, name in view.group_by]}
        if view.group_by else None,
        "groupsExpanded": {}, "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }  # fmt: skip
    if view.charts is not None:
        state["compareRunCharts"], state["compareRunSections"] = chart_cards(view.charts)
    packed = base64.b64encode(zlib.compress(json.dumps(state, separators=(",", ":")).encode())).decode()
    value = {"name": view.name, "createdAt": now_ms, "updatedAt": now_ms, "state": f"deflate;{packed}"}
    return SHARED_VIEW_PREFIX + view.key, json.dumps(value, separators=(",", ":"))


def view_state(tag_value: str) -> dict:
    """The table state a view's tag holds (the inverse of ``view_tag``'s packing)."""
    packed = json.loads(tag_value)["state"].removeprefix("deflate;")
    return json.loads(zlib.decompress(base64.b64decode(packed)))

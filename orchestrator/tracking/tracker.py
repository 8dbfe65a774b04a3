"""MLflow: one tracking path for every workflow.

``Tracker`` wraps one experiment of one store and is the only code that talks to MLflow: runs
(parent and child), parameters and metrics in batches (MLflow's ``log_batch`` limits), artifacts
from bytes or folders, images by step, and the end of a run. Each workflow decides what it logs:
a sweep's single writer thread (``sweep/sink.py``) logs a child run per job under one parent run per
invocation; a catalog logs one run with its counts and a contact sheet; training's rank 0 logs the
losses, sample grids and checkpoints into the run its driver created.

Writes are retried a few times when the store is briefly unavailable: a SQLite store shared by a
driver and a training worker can answer "database is locked", a tracking server can drop a
connection. Every run is tagged with stylegrid's version and git commit (``provenance.py``).

The store: the spec's ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the embedded
``sqlite:///<output>/mlflow.db`` with artifacts in ``<output>/mlartifacts`` (``mlflow ui
--backend-store-uri sqlite:///<output>/mlflow.db`` opens it). Passwords in a URI are never
printed or logged (``redact_uri``).

The links into the MLflow UI and the saved view of a sweep's runs are ``ui.py``; the MLflow model
URIs algorithms take as parameters ``model_uris.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import UserError
from ..provenance import provenance
from ..services import check_tracking_store
from ..storage.location import Location
from .ui import RunsView, view_state, view_tag

MAX_BATCH_METRICS = 1000  # MLflow's log_batch limits
MAX_BATCH_PARAMS = 100
PARAM_CHARS = 6000  # MLflow's limit on a parameter's value
RETRIES = 3  # attempts of a write that met a transient store error
RETRY_WAIT_S = 0.5  # doubled after each attempt
T = TypeVar("T")


def default_tracking_uri(output: Path) -> str:
    return f"sqlite:///{output / 'mlflow.db'}"


def tracking_setting(uri: str) -> str:
    """Where a tracking URI comes from, named as the setting that changes it."""
    if uri == os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return "MLFLOW_TRACKING_URI"
    if uri.startswith("sqlite:///") and uri.endswith("/mlflow.db"):
        return "the default store in the output folder"
    return "the spec's tracking_uri or --tracking-uri"


@dataclass(frozen=True)
class Store:
    """Where a workflow's MLflow runs go: the store's URI and, for the embedded SQLite store in
    the output folder, the folder beside it that holds its artifacts (None: the store keeps its
    own, e.g. a tracking server)."""

    uri: str
    artifacts: Path | None

    def tracker(self, experiment: str, view: RunsView | None = None) -> Tracker:
        return Tracker(self.uri, experiment, self.artifacts, view=view)


def tracking_store(spec_uri: str | None, output: str | os.PathLike) -> Store:
    """Every workflow's preamble: the spec's ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else
    the embedded store in the output folder (artifacts in ``<output>/mlartifacts``). An output in
    an object store cannot hold the embedded store: ``UserError`` saying what to set."""
    uri, embedded = resolve_tracking_uri(spec_uri, Path(output))
    if embedded and Location.of(output).remote:
        raise UserError(
            f"output {output}: the MLflow store cannot live in an object store; set the tracking URI "
            "(the spec's tracking_uri, --tracking-uri or MLFLOW_TRACKING_URI), e.g. the tracking "
            "server on the cluster's head"
        )
    return Store(uri, Path(output) / "mlartifacts" if embedded else None)


def resolve_tracking_uri(spec_uri: str | None, output: Path) -> tuple[str, bool]:
    """(tracking URI, embedded): the spec's ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else
    the embedded SQLite store in the output folder (``embedded`` True: artifacts go beside it)."""
    if spec_uri:
        return spec_uri, False
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env, False
    return default_tracking_uri(output), True


def quiet_mlflow() -> None:
    """MLflow, alembic and SQLAlchemy at WARNING (call after importing mlflow, which sets its own
    logger's level), and no "View run ... at: <URI>" lines: two per run across a progress bar,
    with the URI's password in them. The summaries say where the runs are."""
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # its store logs every failed statement with a traceback (a full disk: hundreds of lines);
    # the error itself reaches stylegrid, which says it in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # MLflow's HTTP client retries 7 times with doubling waits (about 4 minutes of silence for a
    # server that is gone); 3 quick retries still ride out a restart, and the user's settings win
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


EXPERIMENT_KIND = "custom_model_development"  # the MLflow UI's model-training view, not GenAI's


# (table, column) of an MLflow SQL store that hold artifact locations
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"), ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
    ("model_versions", "source"), ("model_versions", "storage_location"),
)  # fmt: skip


def relocate_store(tracking_uri: str, artifact_root: Path) -> int:
    """Point an output folder's own SQLite store at the folder where it now is: after the folder
    was moved or copied, its store still names the old ``<old>/mlartifacts``, and MLflow would
    write new artifacts there (re-creating the old folder) and look for the old ones there.
    Only a store inside the folder itself (``<folder>/mlflow.db`` with ``<folder>/mlartifacts``)
    is rewritten, and only locations under an ``mlartifacts`` folder. Returns the rows changed."""
    import sqlite3

    if not tracking_uri.startswith("sqlite:///"):
        return 0
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    if not db.is_file() or db.parent != artifact_root.parent:
        return 0
    new = artifact_root.as_uri()
    changed = 0
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" not in tables:
            return 0  # not yet an MLflow store: nothing recorded
        olds = {
            loc.split("/mlartifacts", 1)[0] + "/mlartifacts"
            for (loc,) in conn.execute("SELECT artifact_location FROM experiments")
            if loc and "/mlartifacts" in loc and not loc.startswith(new)
        }
        for old in olds:
            for table, column in ARTIFACT_COLUMNS:
                if table not in tables:
                    continue
                columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if column in columns:
                    cursor = conn.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                        (new, len(old) + 1, len(old), old),
                    )
                    changed += cursor.rowcount
    return changed


def experiment_id(client, name: str, artifact_root: Path | None, view: RunsView | None = None) -> str:
    """The id of experiment ``name``, created (artifacts under ``artifact_root``) if missing,
    tagged as model development (what the experiments list shows) and holding ``view`` as a saved
    view of its runs (rewritten when stylegrid's view changed, never a user's own views)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        location = artifact_root.as_uri() if artifact_root is not None else None
        ident = client.create_experiment(
            name, artifact_location=location, tags={"mlflow.experimentKind": EXPERIMENT_KIND}
        )
        tags: dict[str, str] = {}
    else:
        ident, tags = found.experiment_id, found.tags
        if tags.get("mlflow.experimentKind") != EXPERIMENT_KIND:
            client.set_experiment_tag(ident, "mlflow.experimentKind", EXPERIMENT_KIND)
    if view is not None:
        key, value = view_tag(view, ms(time.time()))
        old = tags.get(key)
        if old is None or view_state(old) != view_state(value) or json.loads(old)["name"] != view.name:
            client.set_experiment_tag(ident, key, value)
    return ident


def ms(seconds: float) -> int:
    """MLflow's timestamps: integer milliseconds."""
    return int(seconds * 1000)


def transient(exc: BaseException) -> bool:
    """A store error worth retrying: SQLite busy, or a connection that dropped."""
    text = str(exc).lower()
    return isinstance(exc, ConnectionError) or "database is locked" in text or "connection reset" in text


def retried(call: Callable[[], T], attempts: int = RETRIES, wait: float = RETRY_WAIT_S) -> T:
    """``call()``, again after ``wait``, ``2 wait``, ... when it fails with a ``transient`` error."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not transient(exc):
                raise
            time.sleep(wait * 2**attempt)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def working_dir(folder: Path):
    """Work in ``folder`` for the block, and back where we were if that still exists. MLflow reads
    the working directory when it logs a model (requirement files, a uv project), and a job's can
    be gone by the end of a long job: a `ray job submit` working directory that Ray cleaned up
    after a lost node (seen in tests/system/test_multinode.py), where ``contextlib.chdir`` fails too."""
    try:
        previous = os.getcwd()
    except FileNotFoundError:
        previous = None
    os.chdir(folder)
    try:
        yield
    finally:
        if previous is not None and os.path.isdir(previous):
            os.chdir(previous)


class Tracker:
    """One MLflow experiment (``experiment`` None: only runs that already exist are written)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str | None = None,
        artifact_root: Path | None = None,
        view: RunsView | None = None,
    ):
        from mlflow.tracking import MlflowClient

        quiet_mlflow()
        check_tracking_store(tracking_uri, tracking_setting(tracking_uri))
        if artifact_root is not None:  # the output folder's own store, perhaps in a moved folder
            relocate_store(tracking_uri, artifact_root)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = (
            retried(lambda: experiment_id(self.client, experiment, artifact_root, view))
            if experiment
            else None
        )
        self.base_tags = provenance().tags()

    def start_run(
        self,
        name: str,
        tags: Mapping[str, str] | None = None,
        parent: str | None = None,
        start_time: float | None = None,
    ) -> str:
        """A new RUNNING run (a child of ``parent`` when given) tagged with the provenance."""
        all_tags = {**self.base_tags, "stylegrid.host": provenance().host, **(tags or {})}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        start = None if start_time is None else ms(start_time)
        run = retried(
            lambda: self.client.create_run(self.experiment_id, start_time=start, run_name=name, tags=all_tags)
        )
        return run.info.run_id

    def resume_run(self, run_id: str) -> None:
        retried(lambda: self.client.update_run(run_id, status="RUNNING"))

    def log_params(self, run_id: str, values: Mapping[str, Any], limit: int = PARAM_CHARS) -> None:
        from mlflow.entities import Param

        params = [Param(k, (v if isinstance(v, str) else str(v))[:limit]) for k, v in values.items()]
        for i in range(0, len(params), MAX_BATCH_PARAMS):
            batch = params[i : i + MAX_BATCH_PARAMS]
            retried(lambda b=batch: self.client.log_batch(run_id, params=b))

    def log_images_as_datasets(self, run_id: str, context: str, images: Mapping[str, str]) -> None:
        """``images`` (name -> SHA-256) as one MLflow dataset input of the run, named for the image
        (or for how many there are), its digest the images' content hash, tagged with ``context``
        (content or style): what the runs table's Dataset column shows."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        names = sorted(images)
        digest = hashlib.sha256("".join(images[n] for n in names).encode()).hexdigest()[:8]
        name = names[0] if len(names) == 1 else f"{len(names)} {context} images"
        source = json.dumps({"images": {n: images[n] for n in names[:200]}, "count": len(names)})
        dataset = Dataset(
            name, digest, "local", source[:6000], profile=json.dumps({"num_images": len(names)})
        )
        tags = [InputTag("mlflow.data.context", context)]
        retried(lambda: self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags)]))

    def log_metrics(
        self, run_id: str, values: Mapping[str, float], step: int = 0, timestamp: float | None = None
    ) -> None:
        """One value per metric at ``step`` (None values are left out)."""
        from mlflow.entities import Metric

        now = ms(time.time() if timestamp is None else timestamp)
        self.log_history(run_id, [Metric(k, float(v), now, step) for k, v in values.items() if v is not None])

    def log_history(self, run_id: str, metrics: Iterable) -> None:
        """``mlflow.entities.Metric`` values (each with its own step and time), in batches."""
        metrics = list(metrics)
        for i in range(0, len(metrics), MAX_BATCH_METRICS):
            batch = metrics[i : i + MAX_BATCH_METRICS]
            retried(lambda b=batch: self.client.log_batch(run_id, metrics=b))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        retried(lambda: self.client.set_tag(run_id, key, value))

    def log_bytes(self, run_id: str, name: str, data: bytes, folder: str | None = None) -> None:
        """``data`` as the artifact ``folder/name``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            retried(lambda: self.client.log_artifact(run_id, str(path), folder))

    def log_file(self, run_id: str, path: Path, folder: str | None = None) -> None:
        retried(lambda: self.client.log_artifact(run_id, str(path), folder))

    def log_model(self, run_id: str, model: Any, files: Sequence[Path], register_as: str | None) -> str:
        """``model`` (a torch module) as the run's MLflow model ``model`` (``mlflow.pytorch``), with
        ``files`` inside it (``extra_files``); registered under ``register_as`` when given.
        Returns its URI: ``models:/<name>/<version>`` when registered, else ``models:/<model id>``."""
        import mlflow.pytorch
        import torch

        from .model_uris import mlflow_at

        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # the pickle format's advice
        torch_version = torch.__version__.split("+")[0]
        with (
            working_dir(files[0].parent),
            mlflow_at(self.tracking_uri) as mlflow,
            mlflow.start_run(run_id=run_id, log_system_metrics=False),
        ):
            info = mlflow.pytorch.log_model(
                model, name="model", extra_files=[str(f) for f in files],
                pip_requirements=[f"torch=={torch_version}"],  # not inferred: that imports the model in a subprocess
                registered_model_name=register_as, await_registration_for=60,
                serialization_format="pickle",  # the class is importable where stylegrid is installed
            )  # fmt: skip
        version = getattr(info, "registered_model_version", None)
        return f"models:/{register_as}/{version}" if register_as and version else info.model_uri

    def log_folder(self, run_id: str, folder: Path, dest: str) -> None:
        retried(lambda: self.client.log_artifacts(run_id, str(folder), dest))

    def log_table(self, run_id: str, frame: Any, name: str) -> None:
        retried(lambda: self.client.log_table(run_id, data=frame, artifact_file=name))

    def log_image(self, run_id: str, image: Any, key: str, step: int, timestamp: float) -> None:
        """A PIL image under ``key`` at ``step``: the MLflow UI shows a key's images with a slider."""
        retried(lambda: self.client.log_image(run_id, image, key=key, step=step, timestamp=ms(timestamp)))

    def end_run(self, run_id: str, status: str = "FINISHED", end_time: float | None = None) -> None:
        end = None if end_time is None else ms(end_time)
        retried(lambda: self.client.set_terminated(run_id, status=status, end_time=end))

    def runs(self, view_active_only: bool = True) -> Iterable:
        """Every run of the experiment, page by page."""
        from mlflow.entities import ViewType

        view = ViewType.ACTIVE_ONLY if view_active_only else ViewType.ALL
        token = None
        while True:
            page = retried(
                lambda t=token: self.client.search_runs(
                    [self.experiment_id], run_view_type=view, max_results=1000, page_token=t
                )
            )
            yield from page
            token = page.token
            if not token:
                return

    def delete_run(self, run_id: str) -> None:
        retried(lambda: self.client.delete_run(run_id))

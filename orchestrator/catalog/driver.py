"""Bulk stylization of image catalogs with a feed-forward model, on Ray Data or in this process:
the driver.

    stylegrid stylize-catalog --input photos/ --style starry.jpg --out styled/
    stylegrid stylize-catalog experiments/catalog.yaml            # the same as a YAML file
    python -m stylegrid stylize-catalog ...                    # the `ray job submit` entrypoint

The pipeline streams; nothing holds the catalog's pixels at once. The driver lists the sources (a
folder, recursively; a glob; or the ``path`` column of a CSV or Parquet manifest; each a local
path or a URI such as ``s3://bucket/photos/``, read through ``storage``), drops the
(source, style) pairs the manifest already has as ``ok``, runs the Ray Data pipeline of
``catalog/pipeline.py`` (read and decode tasks, a pool of model actors that write the images) on
a cluster, or the same stages in this process on one machine (``catalog/local.py``: ``engine``),
appends the rows it yields to ``OUT/manifest/part-*.parquet`` every few seconds, shows images
done, failed and the rate, and logs one MLflow run with a contact sheet.

Re-running the same command resumes: pairs the manifest has as ``ok`` are skipped, and pairs
that failed (a bad file since replaced, a folder that was read-only) are tried again; the latest
row of a pair is its result.

``--out`` may be a URI too (``s3://bucket/styled``): the model actors write the images and the
driver the manifest parts there, each object uploaded whole. An object store has no lock, so two
runs into one URI at once are not refused (each writes whole files; the latest row of a pair
wins), and MLflow needs a store of its own (``tracking_uri`` or ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import io
import posixpath
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stylegrid.algorithms.base import Algorithm

from ..errors import UserError
from ..images import read_checked_images
from ..params import ParameterError, build_params
from ..report.pictures import contact_sheet
from ..runtime import Console, Summary, cluster_named, start_ray
from ..services import ClusterLost, cluster_watch, watched
from ..specs.catalog import CatalogSpec
from ..storage import locations as storage
from ..storage.lock import claim_output, sigterm_as_interrupt
from ..tracking.model_uris import model_uris, resolve_locations
from ..tracking.tracker import Store, tracking_store
from ..tracking.ui import ui_command
from .local import local_batches
from .manifest import (
    ManifestWriter,
    done_pairs,
    list_sources,
    manifest_dir,
    out_location,
    own_outputs,
)
from .pipeline import CatalogError, PoolPlan, build_pipeline

CONTACT_SHEET_SAMPLES = 16


# --- the driver -----------------------------------------------------------------------------------


@dataclass
class CatalogSummary:
    out: str
    sources: int
    pairs: int  # (source, style) pairs in the catalog
    skipped: int  # already in the manifest
    ok: int
    failed: int
    seconds: float
    interrupted: bool
    tracking_uri: str
    run_id: str
    plan: PoolPlan | None
    experiment_id: str | None = None
    cluster_lost: str | None = None  # the line that says the Ray cluster went away mid-catalog

    @property
    def images_per_second(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> Summary:
        headline = (
            f"{'interrupted' if self.interrupted else 'done'}: {self.ok} ok, {self.failed} failed, "
            f"{self.skipped} skipped (already in the manifest) of {self.pairs} in {self.seconds:.1f}s "
            f"({self.images_per_second:.2f} img/s)"
        )
        places = [
            ("manifest", f"{manifest_dir(self.out)} (pandas.read_parquet)"),
            ("images", storage.join(self.out, "images")),
            ("MLflow", f"run {self.run_id}: {ui_command(self.tracking_uri, self.experiment_id)}"),
        ]
        return Summary(headline, places, [self.cluster_lost] if self.cluster_lost else [], self.interrupted)


def check_algorithm(spec: CatalogSpec):
    """The algorithm and its parameters, or a clear refusal for image-optimisation algorithms."""
    from stylegrid.algorithms import ALGORITHMS, get_algorithm

    if spec.algorithm not in ALGORITHMS:
        raise CatalogError(
            f"--algorithm {spec.algorithm}: unknown; available: {', '.join(sorted(ALGORITHMS))}"
        )
    algo = get_algorithm(spec.algorithm)
    values = dict(spec.params)
    if spec.alpha is not None:
        if "alpha" not in {f for f, *_ in algo.parameter_table()}:
            raise CatalogError(f"--alpha: algorithm {algo.name} has no alpha parameter")
        values["alpha"] = spec.alpha
    if spec.memory_budget is not None:
        if "memory_budget" not in {f for f, *_ in algo.parameter_table()}:
            raise CatalogError(f"--memory-budget: algorithm {algo.name} has no memory_budget parameter")
        values["memory_budget"] = spec.memory_budget
    try:
        params = build_params(algo.params_type, values, "")
    except ParameterError as exc:
        raise CatalogError(f"--algorithm {algo.name}: {exc}") from None
    if algo.kind != "feedforward":
        feedforward = sorted(n for n, a in ALGORITHMS.items() if a.kind == "feedforward")
        raise CatalogError(
            f"--algorithm {algo.name}: it optimises every image (minutes each), which a catalog of "
            f"thousands cannot afford; run it on a few images with `stylegrid sweep` (see "
            f"experiments/demo.yaml). Catalogs take feed-forward models: {', '.join(feedforward)}"
        )
    return algo, params, values


def choose_engine(spec: CatalogSpec, ray_init_kwargs: dict | None = None) -> str:
    """``spec.engine``, with ``auto`` resolved: Ray Data where a Ray cluster is named
    (``RAY_ADDRESS``, as ``ray job submit`` and ``ray start`` set it; an address in
    ``ray_init_kwargs``; a Ray this process has joined) or where the spec asks for what only Ray
    schedules (actors, actor_resources, a number of GPUs); this process otherwise (catalog_local.py,
    where ``num_gpus: 0`` keeps the model on the CPU)."""
    if spec.engine != "auto":
        return spec.engine
    scheduled = spec.actors is not None or bool(spec.actor_resources) or (spec.num_gpus or 0) > 0
    return "ray" if scheduled or cluster_named(ray_init_kwargs) else "local"


def describe_plan(plan: PoolPlan) -> str:
    device = f" + {plan.gpus_per_actor:g} GPU" if plan.gpus_per_actor else ""
    if plan.engine == "local":
        return (
            f"in this process (no Ray cluster named; --engine ray for Ray Data): {plan.threads_per_actor} "
            f"torch thread(s){device}, batch {plan.batch_size}, decoding in a thread ahead of the model"
        )
    return (
        f"{plan.actors} model actor(s) x {plan.cpus_per_actor:g} CPU{device}, "
        f"{plan.threads_per_actor} torch thread(s) each, batch {plan.batch_size}"
    )


def read_styles(spec: CatalogSpec) -> list[tuple[str, bytes]]:
    """(absolute path or URI, bytes) per distinct style, each checked to decode."""
    return list(dict(read_checked_images(spec.style, spec.style_size)).items())


def stylize_catalog(
    spec: CatalogSpec, *, quiet: bool = False, ray_init_kwargs: dict | None = None
) -> CatalogSummary:
    """Run (or resume) a catalog job; see the module docstring."""
    algo, params, param_values = check_algorithm(spec)
    styles = read_styles(spec)
    out = out_location(spec.out)
    try:
        store = tracking_store(spec.tracking_uri, out)  # refused before anything is listed or read
    except UserError as exc:
        raise CatalogError(f"--out: {exc}") from None
    run = CatalogRun(spec, algo, param_values, styles, [], out, store, quiet, ray_init_kwargs or {})
    run.sources = list_sources(spec.input, spec.path_column, exclude=own_outputs(out))
    with claim_output(out, "stylegrid stylize-catalog", ("images", "manifest")), sigterm_as_interrupt():
        return _stylize(run)


@dataclass
class CatalogRun:
    """What one catalog run works with, decided before it starts."""

    spec: CatalogSpec
    algo: Algorithm
    param_values: dict[str, Any]  # the algorithm's parameters as the spec gives them
    styles: list[tuple[str, bytes]]  # (location, bytes) of each style image, read and checked
    sources: list[str]  # the images to stylize, absolute paths or URIs
    out: str  # the output folder: an absolute path or an object store's URI
    store: Store  # where the MLflow run goes
    quiet: bool
    ray_init_kwargs: dict[str, Any]


def _stylize(run: CatalogRun) -> CatalogSummary:
    spec, algo, param_values, styles, sources, out = (
        run.spec, run.algo, run.param_values, run.styles, run.sources, run.out
    )  # fmt: skip
    quiet, ray_init_kwargs = run.quiet, run.ray_init_kwargs
    try:  # model=models:/<name>/<version>: found once here, where the tracking store is reachable
        locations = resolve_locations(model_uris([param_values]), run.store.uri)
    except ValueError as exc:
        raise CatalogError(f"--algorithm {algo.name}: {exc}") from None
    done = done_pairs(out)
    style_paths = [p for p, _ in styles]
    todo = []
    for source in sources:
        missing = [str(i) for i, st in enumerate(style_paths) if (source, st) not in done]
        if missing:
            todo.append({"source": source, "todo": " ".join(missing)})
    pairs = len(sources) * len(styles)
    remaining = sum(len(t["todo"].split()) for t in todo)
    console = Console(quiet)
    console.say(
        f"stylize-catalog: {len(sources)} images x {len(styles)} style(s) = {pairs}; "
        f"{pairs - remaining} already in {manifest_dir(out)}, {remaining} to do"
    )
    tracker = run.store.tracker(spec.experiment)
    run_id = tracker.start_run(
        f"catalog {posixpath.basename(out)}", {"stylegrid.kind": "catalog", "stylegrid.out": out}
    )
    values = {**spec.model_dump(exclude={"params", "style"}), "styles": " ".join(spec.style)}
    values.update({f"param.{k}": v for k, v in param_values.items()})
    values.update(algorithm=algo.name, sources=len(sources), pairs=pairs, skipped=pairs - remaining)
    tracker.log_params(run_id, values, limit=500)
    counts = {"ok": 0, "error": 0}
    samples: list[str] = []
    plan, interrupted, cluster_lost, start = None, False, None, time.perf_counter()
    writer = ManifestWriter(out, f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")

    def end(status: str) -> None:
        seconds = time.perf_counter() - start
        done = counts["ok"] + counts["error"]
        tracker.log_metrics(
            run_id,
            {
                "images_ok": counts["ok"],
                "images_failed": counts["error"],
                "seconds": seconds,
                "images_per_second": done / seconds if seconds > 0 else 0.0,
            },
        )
        if samples:
            buf = io.BytesIO()
            contact_sheet(samples[:CONTACT_SHEET_SAMPLES]).save(buf, format="JPEG", quality=90)
            tracker.log_bytes(run_id, "contact_sheet.jpg", buf.getvalue())
        tracker.end_run(run_id, status)

    try:
        if todo:
            if choose_engine(spec, ray_init_kwargs) == "local":
                plan, batches = local_batches(
                    spec, algo.name, param_values, styles, out, todo, run_id, locations
                )
            else:
                start_ray(ray_init_kwargs, quiet=quiet)
                plan, batches = build_pipeline(
                    spec, algo.name, param_values, styles, out, todo, run_id, locations
                )
                batches = watched(batches, cluster_watch(ray_init_kwargs))
            console.say(describe_plan(plan))
            shown = lambda: {"ok": counts["ok"], "failed": counts["error"]}  # noqa: E731
            for table in console.track(batches, remaining, "img", lambda t: t.num_rows, shown):
                writer.add(table)
                status = table.column("status").to_pylist()
                for s in ("ok", "error"):
                    counts[s] += status.count(s)
                if len(samples) < CONTACT_SHEET_SAMPLES:
                    outputs = table.column("output").to_pylist()
                    samples += [o for o, st in zip(outputs, status, strict=True) if st == "ok"]
                writer.maybe_flush()
    except KeyboardInterrupt:
        interrupted = True
    except ClusterLost as exc:  # what was written is kept, as for Ctrl-C; the line says why it stopped
        interrupted, cluster_lost = True, str(exc)
    except BaseException:
        writer.flush()
        end("FAILED")
        raise
    writer.flush()
    end("KILLED" if interrupted else "FINISHED")
    return CatalogSummary(
        out, len(sources), pairs, pairs - remaining, counts["ok"], counts["error"],
        time.perf_counter() - start, interrupted, run.store.uri, run_id, plan, tracker.experiment_id,
        cluster_lost,
    )  # fmt: skip

"""Bulk stylization of image catalogs with a feed-forward model, on Ray Data: the driver.

    stylegrid stylize-catalog --input photos/ --style starry.jpg --out styled/
    stylegrid stylize-catalog experiments/catalog.yaml            # the same as a YAML file
    python -m orchestrator stylize-catalog ...                    # the `ray job submit` entrypoint

The pipeline streams; nothing holds the catalog's pixels at once. The driver lists the sources (a
folder, recursively; a glob; or the ``path`` column of a CSV or Parquet manifest), drops the
(source, style) pairs the manifest already has as ``ok``, runs the Ray Data pipeline of
``catalog_pipeline.py`` (read and decode tasks, a pool of model actors that write the images),
appends the rows it yields to ``OUT/manifest/part-*.parquet`` every few seconds, shows images
done, failed and the rate, and logs one MLflow run with a contact sheet.

Re-running the same command resumes: pairs the manifest has as ``ok`` are skipped, and pairs
that failed (a bad file since replaced, a folder that was read-only) are tried again; the latest
row of a pair is its result.
"""

from __future__ import annotations

import glob
import io
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .catalog_pipeline import MANIFEST_COLUMNS, CatalogError, PoolPlan, build_pipeline, manifest_schema
from .files import WriteError, remove_partial_files, write_atomic
from .images import decode_image, read_bytes
from .lock import folder_lock, sigterm_as_interrupt
from .params import ParameterError, build_params
from .pictures import contact_sheet
from .runtime import Console, Summary, start_ray
from .spec import IMAGE_SUFFIXES, CatalogSpec, glob_literal_dirs
from .tracking import Tracker, resolve_tracking_uri, ui_command

FLUSH_SECONDS = 2.0  # the manifest is appended at least this often while rows arrive
CONTACT_SHEET_SAMPLES = 16


# --- sources and the manifest ---------------------------------------------------------------------


def list_sources(spec_input: str, path_column: str = "path") -> list[str]:
    """Absolute source paths, in a stable order, without duplicates. A manifest's paths are kept
    even when the file is missing (each becomes an error row); relative ones are taken from the
    manifest's folder."""
    raw = Path(os.path.expanduser(spec_input))
    if raw.suffix.lower() in (".csv", ".parquet") and raw.is_file():
        paths = _manifest_paths(raw, path_column)
    elif glob.has_magic(spec_input) and not raw.exists():  # an existing name is taken literally
        paths = sorted(m for m in glob_literal_dirs(raw, recursive=True) if Path(m).is_file())
        if not paths:
            raise CatalogError(f"--input {spec_input}: no such file, and as a pattern it matches no file")
    elif raw.is_dir():
        paths = sorted(str(f) for f in raw.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not paths:
            raise CatalogError(f"--input {raw}: the folder has no image files ({', '.join(IMAGE_SUFFIXES)})")
    elif raw.exists():
        raise CatalogError(f"--input {raw}: expected a folder, a glob or a .csv / .parquet manifest")
    else:
        raise CatalogError(f"--input {raw}: no such file or folder")
    return list(dict.fromkeys(str(Path(p).resolve()) for p in paths))


def _manifest_paths(path: Path, column: str) -> list[str]:
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise CatalogError(f"{path}: cannot read the manifest ({' '.join(str(exc).split())[:200]})") from None
    if column not in df.columns:
        raise CatalogError(f"{path}: no {column!r} column (columns: {', '.join(map(str, df.columns))})")
    values = df[column].dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        raise CatalogError(f"{path}: the {column!r} column has no paths")
    return [p if Path(p).is_absolute() else str(path.parent / p) for p in values]


def manifest_dir(out: Path) -> Path:
    return out / "manifest"


def read_manifest(out: Path, columns: Sequence[str] | None = None, history: bool = False):
    """The manifest as a pandas DataFrame (empty when there is none): one row per (source,
    style) pair, its latest attempt (a failed image that a later run wrote has its ``ok`` row
    here); ``history`` keeps every attempt in the order written."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(manifest_dir(out).glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=list(columns or MANIFEST_COLUMNS))
    wanted = None if columns is None else list(dict.fromkeys([*columns, "source", "style"]))
    df = pa.concat_tables([pq.read_table(p, columns=wanted) for p in parts]).to_pandas()
    if not history:
        df = df.drop_duplicates(["source", "style"], keep="last").reset_index(drop=True)
    return df if columns is None else df[list(columns)]


def done_pairs(out: Path) -> set[tuple[str, str]]:
    """The pairs whose latest attempt wrote an image; failed ones are tried again."""
    df = read_manifest(out, ["source", "style", "status"])
    ok = df[df["status"] == "ok"]
    return set(zip(ok["source"], ok["style"], strict=True))


@dataclass
class ManifestWriter:
    """Appends rows to ``OUT/manifest/part-<run>-<n>.parquet``, each part written atomically."""

    out: Path
    run_tag: str
    pending: list = field(default_factory=list)
    parts: int = 0
    last_flush: float = field(default_factory=time.monotonic)

    def add(self, table) -> None:
        """Keep a batch of rows, typed now: a batch of only bad files has all-null columns."""
        import pyarrow as pa

        if table.num_rows:
            typed = pa.schema(list(manifest_schema())[:-1])
            self.pending.append(table.select(typed.names).cast(typed))

    def maybe_flush(self) -> None:
        if self.pending and time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.last_flush = time.monotonic()
        if not self.pending:
            return
        schema = manifest_schema()
        table = pa.concat_tables(self.pending)
        finished = pa.array([datetime.now(UTC)] * table.num_rows, type=schema.field("finished_at").type)
        table = table.append_column(schema.field("finished_at"), finished)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        self.parts += 1
        write_atomic(
            manifest_dir(self.out) / f"part-{self.run_tag}-{self.parts:06d}.parquet",
            buf.getvalue().to_pybytes(),
        )
        self.pending = []


# --- the driver -----------------------------------------------------------------------------------


@dataclass
class CatalogSummary:
    out: Path
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
            ("images", str(self.out / "images")),
            ("MLflow", f"run {self.run_id}: {ui_command(self.tracking_uri)}"),
        ]
        return Summary(headline, places, [], self.interrupted)


def check_algorithm(spec: CatalogSpec):
    """The algorithm and its parameters, or a clear refusal for image-optimisation algorithms."""
    from algorithms import ALGORITHMS, get_algorithm

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


def read_styles(spec: CatalogSpec) -> list[tuple[str, bytes]]:
    """(absolute path, bytes) per style, each checked to decode (errors name the file)."""
    styles = []
    for s in spec.style:
        path = str(Path(os.path.expanduser(s)).resolve())
        data = read_bytes(path)
        decode_image(data, path, spec.style_size)
        styles.append((path, data))
    return list(dict(styles).items())


def stylize_catalog(
    spec: CatalogSpec, *, quiet: bool = False, ray_init_kwargs: dict | None = None
) -> CatalogSummary:
    """Run (or resume) a catalog job; see the module docstring."""
    algo, params, param_values = check_algorithm(spec)
    styles = read_styles(spec)
    out = Path(os.path.expanduser(spec.out)).resolve()
    if out.exists() and not out.is_dir():
        raise CatalogError(f"--out {out}: exists and is not a folder")
    sources = list_sources(spec.input, spec.path_column)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(out, exc) from None
    with folder_lock(out, "stylegrid stylize-catalog"), sigterm_as_interrupt():
        return _stylize_locked(spec, algo, param_values, styles, sources, out, quiet, ray_init_kwargs)


def _stylize_locked(spec, algo, param_values, styles, sources, out, quiet, ray_init_kwargs) -> CatalogSummary:
    remove_partial_files(out, [out / "images", manifest_dir(out)])
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
    tracking_uri, embedded = resolve_tracking_uri(spec.tracking_uri, out)
    tracker = Tracker(tracking_uri, spec.experiment, out / "mlartifacts" if embedded else None)
    run_id = tracker.start_run(
        f"catalog {out.name}", {"stylegrid.kind": "catalog", "stylegrid.out": str(out)}
    )
    values = {**spec.model_dump(exclude={"params", "style"}), "styles": " ".join(spec.style)}
    values.update({f"param.{k}": v for k, v in param_values.items()})
    values.update(algorithm=algo.name, sources=len(sources), pairs=pairs, skipped=pairs - remaining)
    tracker.log_params(run_id, values, limit=500)
    counts = {"ok": 0, "error": 0}
    samples: list[str] = []
    plan, interrupted, start = None, False, time.perf_counter()
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
            start_ray(ray_init_kwargs, quiet=quiet)
            plan, batches = build_pipeline(spec, algo.name, param_values, styles, out, todo, run_id)
            console.say(
                f"{plan.actors} model actor(s) x {plan.cpus_per_actor:g} CPU"
                + (f" + {plan.gpus_per_actor:g} GPU" if plan.gpus_per_actor else "")
                + f", {plan.threads_per_actor} torch thread(s) each, batch {plan.batch_size}"
            )
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
    except BaseException:
        writer.flush()
        end("FAILED")
        raise
    writer.flush()
    end("KILLED" if interrupted else "FINISHED")
    return CatalogSummary(
        out, len(sources), pairs, pairs - remaining, counts["ok"], counts["error"],
        time.perf_counter() - start, interrupted, tracking_uri, run_id, plan,
    )  # fmt: skip

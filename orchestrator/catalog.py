"""Bulk stylization of image catalogs with a feed-forward model, on Ray Data.

    stylegrid stylize-catalog --input photos/ --style starry.jpg --out styled/
    stylegrid stylize-catalog experiments/catalog.yaml            # the same as a YAML file
    python -m orchestrator stylize-catalog ...                    # the `ray job submit` entrypoint

The pipeline streams; nothing holds the catalog's pixels at once:

1. the driver lists the sources (a folder, recursively; a glob; or the ``path`` column of a CSV or
   Parquet manifest) and drops the (source, style) pairs the manifest already has;
2. CPU tasks read each file's bytes and decode and resize it; a missing, empty, truncated or
   otherwise bad file becomes an error row (status ``error`` and the reason) instead of failing;
3. a pool of actors, each loading the model once (on a GPU when it has one), stylizes batches of
   same-size images, encodes them and writes each file atomically (a temporary name, then a rename:
   an interrupted run leaves no half-written image);
4. the driver appends the rows to ``OUT/manifest/part-*.parquet`` every few seconds, shows images
   done, failed and the rate, and logs one MLflow run with a contact sheet.

Re-running the same command resumes: pairs the manifest has as ``ok`` are skipped, and pairs
that failed (a bad file since replaced, a folder that was read-only) are tried again; the latest
row of a pair is its result. The actor pool is sized from the cluster's resources so
that the read tasks always have a CPU (actors holding every CPU starve them and the run hangs).
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .files import WriteError, remove_partial_files, safe_name, write_atomic
from .images import ImageError, check_size, decode_image, read_bytes, resize_to
from .lock import arm_sigterm, folder_lock, sigterm_as_interrupt
from .params import ParameterError, build_params
from .spec import IMAGE_SUFFIXES, glob_literal_dirs, read_model, resolve_path

MANIFEST_COLUMNS = (
    "source", "style", "output", "status", "error", "in_width", "in_height", "out_width",
    "out_height", "seconds", "run_id", "finished_at",
)  # fmt: skip
FLUSH_SECONDS = 2.0  # the manifest is appended at least this often while rows arrive
CONTACT_SHEET_SAMPLES = 16
DECODE_MEMORY = 512 * 2**20  # bytes requested by each decode task (Ray measured 377 MB)


class CatalogError(ValueError):
    """A catalog job that cannot start; the message names the file or option and the reason."""


class CatalogSpec(BaseModel):
    """``stylegrid stylize-catalog``'s options; the YAML file has the same fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    input: str = Field(description="a folder (searched recursively), a glob, or a .csv / .parquet manifest")
    style: list[str] = Field(min_length=1, description="style image files; every source gets each one")
    out: str = Field(description="output folder: images/, manifest/ and the MLflow store")
    algorithm: str = "adain"
    size: int | None = Field(
        512, description="long side of the outputs (16..8192); null keeps each image's size"
    )
    style_size: int = Field(512, description="maximum long side of the style images (16..8192)")
    alpha: float | None = Field(None, ge=0, le=1, description="style strength (the algorithm's default)")
    params: dict[str, Any] = Field(default_factory=dict, description="other algorithm parameters")
    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(92, ge=1, le=100, description="JPEG quality")
    batch_size: int | None = Field(
        None, gt=0, description="images per model call; default 1 on CPUs, 8 on GPUs"
    )
    num_gpus: float | None = Field(None, ge=0, description="GPUs to use; default every GPU of the cluster")
    actors: int | None = Field(None, gt=0, description="model replicas; default from the cluster's resources")
    path_column: str = Field("path", description="the manifest column holding the image paths")
    tracking_uri: str | None = Field(
        None, description="MLflow; default MLFLOW_TRACKING_URI, else sqlite:///<out>/mlflow.db"
    )
    experiment: str = "stylize-catalog"

    @field_validator("size", "style_size")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        return value if value is None else check_size(value, "size")


def load_catalog_spec(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> CatalogSpec:
    """A YAML catalog spec with command-line ``overrides``; relative paths in the file are taken
    from the file's folder."""
    p = Path(path)
    spec = read_model(p, CatalogSpec, "input, style, out, algorithm, size, ...")
    base = p.resolve().parent
    rebased = {
        "input": str(resolve_path(spec.input, base)),
        "out": str(resolve_path(spec.out, base)),
        "style": [str(resolve_path(s, base)) for s in spec.style],
    }
    return spec.model_copy(update={**rebased, **(overrides or {})})


# --- sources, names and the manifest (pure or read-only) ------------------------------------------


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


def _short_hash(text: str, n: int) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def style_id(style_path: str) -> str:
    """A folder name per style: its file stem plus a hash of its path (two styles called
    ``starry.jpg`` in different folders do not share outputs)."""
    return f"{safe_name(Path(style_path).stem)}-{_short_hash(style_path, 6)}"


def output_path(out: Path, source: str, style_path: str, fmt: str) -> Path:
    """Where the stylized ``source`` goes: stable across runs and distinct for sources with the same
    base name in different folders (the name carries a hash of the full source path)."""
    ext = "jpg" if fmt == "jpeg" else "png"
    name = f"{safe_name(Path(source).stem, 60)}-{_short_hash(source, 10)}.{ext}"
    return out / "images" / style_id(style_path) / name


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


def manifest_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("source", pa.string()), ("style", pa.string()), ("output", pa.string()),
            ("status", pa.string()), ("error", pa.string()),
            ("in_width", pa.int32()), ("in_height", pa.int32()),
            ("out_width", pa.int32()), ("out_height", pa.int32()),
            ("seconds", pa.float64()), ("run_id", pa.string()),
            ("finished_at", pa.timestamp("us", tz="UTC")),
        ]
    )  # fmt: skip


# --- the pool's size -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolPlan:
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    threads_per_actor: int  # torch threads in each actor
    batch_size: int  # images per model call


def plan_pool(
    resources: Mapping[str, float], num_gpus: float | None, actors: int | None, batch_size: int | None
) -> PoolPlan:
    """Size the actor pool from the cluster's resources.

    GPUs: one actor per GPU (``num_gpus`` caps how many; a fraction shares one GPU), one CPU each
    for its host side. CPUs only: every core runs a torch thread of some actor (several small
    actors beat one large one: torch's CPU kernels scale poorly past a few threads), and the
    actors' CPU requests leave one CPU (half of a single one) to the read and decode tasks, which
    would otherwise starve and hang the run. On 2 CPUs: two actors of one thread, 0.5 CPU each.
    """
    cpus = float(resources.get("CPU", 1.0))
    gpus_available = float(resources.get("GPU", 0.0))
    gpus = gpus_available if num_gpus is None else num_gpus
    if gpus > gpus_available:
        raise CatalogError(f"--num-gpus {num_gpus:g}: the cluster has {gpus_available:g} GPU(s)")
    if gpus > 0:
        n = actors or max(1, math.floor(gpus))
        per_gpu = min(1.0, gpus / n)
        cpu_each = min(1.0, max(0.25, (cpus - 1) / n)) if cpus > 1 else 0.25
        return PoolPlan(n, cpu_each, per_gpu, max(1, math.floor(cpu_each)), batch_size or 8)
    cores = max(1, math.floor(cpus))
    if actors is not None and actors > cores:
        raise CatalogError(f"--actors {actors}: {cpus:g} CPUs cannot give each actor a core")
    threads = 1 if cores < 4 else 2 if cores < 32 else 4
    n = actors or max(1, cores // threads)
    threads = max(1, cores // n)
    cpu_each = (cpus - min(1.0, cpus / 2)) / n
    return PoolPlan(n, cpu_each, 0.0, threads, batch_size or 1)


def block_layout(n: int, plan: PoolPlan, max_rows: int = 8, max_blocks: int = 10_000) -> tuple[int, int]:
    """(rows per block, blocks) for ``n`` sources. An actor works through whole blocks, so small
    catalogs are cut into at least four blocks per actor (else one actor gets all the work); large
    ones into blocks of ``max_rows`` (one decode task each), fewer and larger past ``max_blocks``."""
    per_actor = math.ceil(n / (4 * plan.actors))
    rows = max(1, min(max(max_rows, plan.batch_size), per_actor), math.ceil(n / max_blocks))
    return rows, max(1, math.ceil(n / rows))


# --- the Ray Data stages (run in Ray tasks and actors) -----------------------------------------------


def load_batch(batch: Mapping[str, np.ndarray], size: int | None) -> dict[str, np.ndarray]:
    """Read, decode and resize each source. Pixels travel as raw RGB bytes with their shape; a
    file that cannot be used becomes a row with ``error`` set and no pixels."""
    cols: dict[str, list] = {k: [] for k in ("source", "todo", "pixels", "width", "height", "in_width",
                                              "in_height", "error", "load_seconds")}  # fmt: skip
    for source, todo in zip(batch["source"], batch["todo"], strict=True):
        start = time.perf_counter()
        pixels, w, h, iw, ih, error = b"", 0, 0, 0, 0, ""
        try:
            img = decode_image(read_bytes(source), source)
            iw, ih = img.size
            if size is not None:
                img = resize_to(img, size, source)
            w, h = img.size
            pixels = np.asarray(img, dtype=np.uint8).tobytes()
        except ImageError as exc:
            error = exc.reason
        for key, value in zip(
            cols, (source, todo, pixels, w, h, iw, ih, error, time.perf_counter() - start), strict=True
        ):
            cols[key].append(value)
    return {k: np.array(v, dtype=object if k in ("source", "todo", "pixels", "error") else None)
            for k, v in cols.items()}  # fmt: skip


def encode(image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=quality, optimize=False)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class CatalogStylizer:
    """A Ray Data actor: loads the model and the style images once, then stylizes, encodes and
    writes batches; returns one manifest row per (source, style) it was given."""

    def __init__(
        self,
        algorithm: str,
        params: dict[str, Any],
        out: str,
        fmt: str,
        quality: int,
        batch_size: int,
        threads: int,
        use_gpu: bool,
        style_size: int,
        run_id: str,
    ):
        import torch

        from algorithms import get_algorithm

        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.algo = get_algorithm(algorithm)
        self.params = build_params(self.algo.params_type, params)
        self.style_size = style_size
        self.styles: list = []  # (path, tensor) per style, loaded by the first call
        self.out, self.fmt, self.quality = Path(out), fmt, quality
        self.batch_size, self.run_id = batch_size, run_id
        self.cache: dict = {}

    def __call__(self, batch: Mapping[str, np.ndarray], styles: list) -> dict[str, np.ndarray]:
        """``styles``: [an object reference to [(path, bytes)] per style], fetched by the first
        call (a restarted actor fetches it again; the driver holds the reference)."""
        if not self.styles:
            import ray

            from .images import to_tensor

            self.styles = [
                (path, to_tensor(decode_image(data, path, self.style_size)))
                for path, data in ray.get(styles[0])
            ]
        rows: list[dict[str, Any]] = []
        n = len(batch["source"])
        todo = [[int(i) for i in str(batch["todo"][k]).split()] for k in range(n)]
        good = [k for k in range(n) if not batch["error"][k]]
        for k in range(n):
            if batch["error"][k]:
                for s in todo[k]:
                    rows.append(self._row(batch, k, s, "error", str(batch["error"][k]), None, 0.0))
        for s, (style_path, style) in enumerate(self.styles):
            mine = [k for k in good if s in todo[k]]
            for chunk in _same_size_chunks(batch, mine, self.batch_size):
                rows += self._stylize(batch, chunk, s, style_path, style)
        return {c: np.array([r[c] for r in rows], dtype=object) for c in MANIFEST_COLUMNS[:-1]}

    def _stylize(self, batch, chunk: list[int], s: int, style_path: str, style) -> list[dict[str, Any]]:
        import torch

        from .images import to_pil

        start = time.perf_counter()
        arrays = [
            np.frombuffer(batch["pixels"][k], dtype=np.uint8).reshape(
                batch["height"][k], batch["width"][k], 3
            )
            for k in chunk
        ]
        contents = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        rows = []
        try:
            images = self.algo.stylize_batch(
                contents, [style], self.params, device=self.device, cache=self.cache
            )
        except Exception as exc:  # a model failure fails these rows, not the catalog
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            return [self._row(batch, k, s, "error", reason, None, 0.0) for k in chunk]
        model_seconds = (time.perf_counter() - start) / len(chunk)
        for k, image in zip(chunk, images, strict=True):
            t = time.perf_counter()
            dest = output_path(self.out, str(batch["source"][k]), style_path, self.fmt)
            pil = to_pil(image)
            try:
                write_atomic(dest, encode(pil, self.fmt, self.quality))
            except OSError as exc:
                rows.append(self._row(batch, k, s, "error", f"cannot write {dest}: {exc}", None, 0.0))
                continue
            seconds = float(batch["load_seconds"][k]) + model_seconds + time.perf_counter() - t
            rows.append(self._row(batch, k, s, "ok", "", (dest, pil.size), seconds))
        return rows

    def _row(self, batch, k: int, s: int, status: str, error: str, written, seconds: float) -> dict:
        """A manifest row (``finished_at`` is added by the driver); sizes unknown for bad files."""
        dest, (w, h) = written if written else (None, (None, None))
        known = bool(batch["in_width"][k])
        return {
            "source": str(batch["source"][k]),
            "style": self.styles[s][0],
            "output": None if dest is None else str(dest),
            "status": status,
            "error": error or None,
            "in_width": int(batch["in_width"][k]) if known else None,
            "in_height": int(batch["in_height"][k]) if known else None,
            "out_width": w,
            "out_height": h,
            "seconds": float(seconds or batch["load_seconds"][k]),
            "run_id": self.run_id,
        }


def _same_size_chunks(batch, rows: list[int], size: int) -> Iterator[list[int]]:
    """``rows`` grouped by image size (a model call needs one size), in chunks of ``size``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for k in rows:
        groups.setdefault((int(batch["height"][k]), int(batch["width"][k])), []).append(k)
    for members in groups.values():
        for i in range(0, len(members), size):
            yield members[i : i + size]


# --- the driver ---------------------------------------------------------------------------------------


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
    from .tracking import resolve_tracking_uri

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
    tracking_uri, embedded = resolve_tracking_uri(spec.tracking_uri, out)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(
        f"stylize-catalog: {len(sources)} images x {len(styles)} style(s) = {pairs}; "
        f"{pairs - remaining} already in {manifest_dir(out)}, {remaining} to do"
    )
    run = _MlflowRun(tracking_uri, spec.experiment, out / "mlartifacts" if embedded else None)
    run_id = run.start(spec, algo.name, param_values, len(sources), pairs, pairs - remaining)
    counts = {"ok": 0, "error": 0}
    samples: list[str] = []
    plan, interrupted, start = None, False, time.perf_counter()
    writer = ManifestWriter(out, f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")
    try:
        if todo:
            plan, batches = _run_pipeline(
                spec, algo.name, param_values, styles, out, todo, run_id, ray_init_kwargs
            )
            say(
                f"{plan.actors} model actor(s) x {plan.cpus_per_actor:g} CPU"
                + (f" + {plan.gpus_per_actor:g} GPU" if plan.gpus_per_actor else "")
                + f", {plan.threads_per_actor} torch thread(s) each, batch {plan.batch_size}"
            )
            for table in _progress(batches, remaining, counts, quiet):
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
        run.end("FAILED", counts, time.perf_counter() - start, samples)
        raise
    writer.flush()
    seconds = time.perf_counter() - start
    run.end("KILLED" if interrupted else "FINISHED", counts, seconds, samples[:CONTACT_SHEET_SAMPLES])
    return CatalogSummary(
        out, len(sources), pairs, pairs - remaining, counts["ok"], counts["error"], seconds, interrupted,
        tracking_uri, run_id, plan,
    )  # fmt: skip


def _run_pipeline(spec, algorithm, param_values, styles, out, todo, run_id, ray_init_kwargs):
    """The Ray Data pipeline (lazy); returns the pool plan and an iterator of manifest tables."""
    import ray

    if not ray.is_initialized():
        ray.init(**{"logging_level": "ERROR", "include_dashboard": False, **(ray_init_kwargs or {})})
        arm_sigterm()  # Ray's core replaced the SIGTERM handler
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver shows its own progress
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    plan = plan_pool(ray.cluster_resources(), spec.num_gpus, spec.actors, spec.batch_size)
    rows, blocks = block_layout(len(todo), plan)
    plan = replace(plan, actors=min(plan.actors, blocks))  # an actor without a block would idle
    ds = ray.data.from_items(todo, override_num_blocks=blocks)
    # A decode task asks for the memory a large image takes (a 64 MP image is 192 MB as RGB). The
    # request also keeps Ray Data from fusing the decoding into the model actors (it fuses stages
    # whose resource requests are equal), so decoding overlaps the model instead of preceding it.
    ds = ds.map_batches(
        load_batch, batch_size=rows, num_cpus=1, memory=DECODE_MEMORY, fn_kwargs={"size": spec.size}
    )
    ds = ds.map_batches(
        CatalogStylizer,
        batch_size=plan.batch_size,
        fn_kwargs={"styles": [ray.put(styles)]},  # a nested reference: each actor fetches it once
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.cpus_per_actor,
        num_gpus=plan.gpus_per_actor,
        fn_constructor_kwargs={
            "algorithm": algorithm,
            "params": param_values,
            "out": str(out),
            "fmt": spec.format,
            "quality": spec.quality,
            "batch_size": plan.batch_size,
            "threads": plan.threads_per_actor,
            "use_gpu": plan.gpus_per_actor > 0,
            "style_size": spec.style_size,
            "run_id": run_id,
        },
    )
    return plan, ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)


def _progress(batches: Iterable, total: int, counts: Mapping[str, int], quiet: bool) -> Iterator:
    """Yields the batches, showing done / failed / rate (a tqdm bar on stderr)."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", disable=quiet, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    try:
        for table in batches:
            yield table
            bar.update(table.num_rows)
            bar.set_postfix(ok=counts["ok"], failed=counts["error"], refresh=False)
    finally:
        bar.close()


class _MlflowRun:
    """One MLflow run per catalog invocation: parameters, counts, throughput, contact sheet."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None):
        from mlflow.tracking import MlflowClient

        from .tracking import _quiet_mlflow, experiment_id

        _quiet_mlflow()
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = experiment_id(self.client, experiment, artifact_root)
        self.run_id = ""

    def start(self, spec: CatalogSpec, algorithm: str, params: dict, sources: int, pairs: int, skipped: int):
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"catalog {Path(spec.out).name}",
            tags={"stylegrid.kind": "catalog", "stylegrid.out": str(spec.out)},
        )
        self.run_id = run.info.run_id
        values = {**spec.model_dump(exclude={"params", "style"}), "styles": " ".join(spec.style)}
        values.update({f"param.{k}": v for k, v in params.items()})
        values.update(algorithm=algorithm, sources=sources, pairs=pairs, skipped=skipped)
        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:500]) for k, v in values.items()])
        return self.run_id

    def end(self, status: str, counts: Mapping[str, int], seconds: float, samples: list[str]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        done = counts["ok"] + counts["error"]
        metrics = {
            "images_ok": counts["ok"],
            "images_failed": counts["error"],
            "seconds": seconds,
            "images_per_second": done / seconds if seconds > 0 else 0.0,
        }
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        if samples:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                sheet = Path(tmp) / "contact_sheet.jpg"
                contact_sheet(samples).save(sheet, quality=90)
                self.client.log_artifact(self.run_id, str(sheet))
        self.client.set_terminated(self.run_id, status=status)


def contact_sheet(paths: Sequence[str], thumb: int = 160, columns: int = 4):
    """Thumbnails of ``paths`` (catalog outputs) in a grid, each captioned with photo and style."""
    from PIL import Image, ImageDraw

    rows = max(1, math.ceil(len(paths) / columns))
    sheet = Image.new("RGB", (columns * thumb, rows * (thumb + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, p in enumerate(paths):
        x, y = (i % columns) * thumb, (i // columns) * (thumb + 14)
        try:
            with Image.open(p) as img:
                img.thumbnail((thumb, thumb))
                sheet.paste(img.convert("RGB"), (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        except (OSError, ValueError):
            pass  # a file removed since: leave its cell blank
        draw.text((x + 3, y + thumb), _caption(Path(p))[: thumb // 6], fill="black")
    return sheet


def _caption(output: Path) -> str:
    """``photo / style`` for an output ``images/<style>-<hash>/<photo>-<hash>.png``."""
    return f"{output.stem.rsplit('-', 1)[0]} / {output.parent.name.rsplit('-', 1)[0]}"


def print_summary(summary: CatalogSummary) -> None:
    state = "interrupted" if summary.interrupted else "done"
    print(
        f"{state}: {summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped (already in the "
        f"manifest) of {summary.pairs} in {summary.seconds:.1f}s ({summary.images_per_second:.2f} img/s)"
    )
    print(f"manifest: {manifest_dir(summary.out)} (pandas.read_parquet); images: {summary.out / 'images'}")
    from .tracking import ui_command

    print(f"mlflow run {summary.run_id}: {ui_command(summary.tracking_uri)}")
    if summary.interrupted:
        print("re-run the same command to finish the rest")

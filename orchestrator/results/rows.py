"""The results table: one Parquet row per job, its schema declared once here.

Each finished job is written at once as its own file ``<output>/rows/<job_id>.parquet`` (a
temporary file, then an atomic rename), so a crash can never leave half a row and never touches
rows already written. ``compact`` gathers those loose rows into part files
``<output>/rows/part-<n>.parquet`` (the sweep does it at its start, every ``COMPACT_EVERY`` rows
and at its end), so that starting or resuming a sweep of 100,000 jobs reads a few files, not
100,000. ``read_results`` reads parts and loose rows back as one table, one row per job (a loose
row is newer than a part's); at the end of every sweep they are also collected into
``<output>/results.parquet`` (atomically too), the file users read.

Columns: the fixed ones below, then ``param.<name>`` for every parameter of every registered
algorithm, typed from the parameter dataclasses (sequences of one type as lists, anything else
as JSON text), null where the parameter does not apply to the job (another algorithm's, or
unused by its values), plus ``params_json`` with all of a job's parameters that apply. Every
field carries its ``description`` in the schema; "none" is null, never "" (rows of older versions
are read into this schema: ``conform``). ``results.parquet`` carries pandas' metadata too, so
``pd.read_parquet`` gives nullable integers (``Int64``).

Why this module is long: the table's schema, its rows and part files, the unreadable rows, the
current jobs and the pandas view are one format, kept in one place so that readers and writers
cannot disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import types
import typing
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from stylegrid.algorithms import ALGORITHMS
from stylegrid.algorithms.shared.metrics import MEASURES

from ..errors import UserError
from ..storage.files import write_atomic

# (name, type, description): the descriptions are stored in the schema (each field's
# ``description`` metadata), so a reader of the Parquet file sees what a column means.
FIXED_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    (
        "job_id",
        pa.string(),
        "the job's id: a hash of its images' contents, algorithm, parameters, seed and sizes",
    ),
    ("sweep_id", pa.string(), "the invocation of `stylegrid sweep` that ran the job"),
    ("spec_name", pa.string(), "the spec's name"),
    (
        "status",
        pa.string(),
        "ok, failed, or stopped (early stopping ended it at a rung: its image and measures there)",
    ),
    (
        "error",
        pa.string(),
        "why the job failed, or a note on an ok job (an optimiser that stopped early); null if none",
    ),
    ("algorithm", pa.string(), "the algorithm's name"),
    (
        "variant",
        pa.string(),
        "the parameters (and seed) that tell the job apart within its algorithm in the spec; null if none",
    ),
    (
        "content",
        pa.string(),
        "the content image file, relative to the spec's folder (an absolute path in rows of older versions)",
    ),
    (
        "style",
        pa.string(),
        "the style image file, relative to the spec's folder (an absolute path in rows of older versions)",
    ),
    ("content_name", pa.string(), "the content image's file name"),
    ("style_name", pa.string(), "the style image's file name"),
    ("content_sha256", pa.string(), "SHA-256 of the content image file"),
    ("style_sha256", pa.string(), "SHA-256 of the style image file"),
    (
        "regions",
        pa.string(),
        "spatial control (JSON: name, mask, style per colour, style masks; files relative to the spec's "
        "folder); style is then the first region's; null for a job without",
    ),
    ("seed", pa.int64(), "the random seed; null where the parameters do not use it"),
    ("size", pa.int64(), "the output's long side, px"),
    ("steps", pa.int64(), "optimisation steps; null for a feed-forward algorithm"),
    ("evaluations", pa.int64(), "evaluations of the objective (L-BFGS line searches take several per step)"),
    (
        "rungs",
        pa.string(),
        "early stopping: each rung the job reached (JSON list: rung, step, evaluations, measures, go_on, reason); "
        "null without early stopping",
    ),
    ("loss_total", pa.float64(), "the final total loss"),
    ("loss_content", pa.float64(), "sum of the final content.* terms; null if the algorithm has none"),
    ("loss_style", pa.float64(), "sum of the final style.* terms; null if the algorithm has none"),
    ("losses_json", pa.string(), "every final loss term by name (JSON)"),
    *[(m.name, pa.float64(), m.summary) for m in MEASURES],
    ("wall_seconds", pa.float64(), "seconds the job took in its worker"),
    ("started_at", pa.timestamp("ms", tz="UTC"), "when the job started, in the worker"),
    ("host", pa.string(), "the worker's host"),
    ("device", pa.string(), "the device the job ran on (cpu, cuda:0)"),
    ("precision", pa.string(), "the arithmetic the networks ran in (fp32, bf16, fp16)"),
    ("tiles", pa.string(), "the tile layout a memory budget asked for; null for one pass"),
    ("output_image", pa.string(), "the output image, relative to the output folder; null if the job failed"),
    ("mlflow_run_id", pa.string(), "the job's MLflow run; null if it was not logged"),
    ("mlflow_experiment_id", pa.string(), "the MLflow experiment of the job's run; null if not logged"),
    ("attempts", pa.int64(), "how many times the job was started (retries after a lost worker or a timeout)"),
    ("finished_at", pa.timestamp("ms", tz="UTC"), "when the row was written"),
    ("code_version", pa.string(), "stylegrid's version and git commit"),
    ("params_json", pa.string(), "every parameter that applies to the job (JSON)"),
]
# String columns where an empty value means "none": stored as null (older rows' "" read as null)
NULL_WHEN_EMPTY = (
    "error", "variant", "tiles", "output_image", "mlflow_run_id", "mlflow_experiment_id", "regions", "rungs",
)  # fmt: skip


SCALARS = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def _arrow_type(annotation: Any) -> pa.DataType:
    """Arrow type of a parameter: scalars typed, Optional unwrapped, a tuple of one scalar type a
    list, anything else JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(args[0]) if len(args) == 1 else pa.string()
    if origin in (tuple, list):
        items = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(set(items)) == 1 and items[0] in SCALARS:
            return pa.list_(SCALARS[items[0]])
        return pa.string()
    if origin is Literal:
        kinds = {type(a) for a in typing.get_args(annotation)}
        return _arrow_type(kinds.pop()) if len(kinds) == 1 else pa.string()
    return SCALARS.get(annotation, pa.string())


def param_columns() -> list[tuple[str, pa.DataType, str]]:
    """``param.<name>`` for every parameter of every registered algorithm (string on a clash),
    described by the parameter's help text (the first algorithm's that has it)."""
    cols: dict[str, pa.DataType] = {}
    helps: dict[str, str] = {}
    for algo in ALGORITHMS.values():
        hints = typing.get_type_hints(algo.params_type)
        for f in dataclasses.fields(algo.params_type):
            t = _arrow_type(hints[f.name])
            cols[f.name] = t if cols.get(f.name, t) == t else pa.string()
            helps.setdefault(f.name, f"parameter: {f.metadata.get('help', '')}; null where it does not apply")
    return [(f"param.{k}", v, helps[k]) for k, v in sorted(cols.items())]


def result_schema() -> pa.Schema:
    """The schema for the algorithms registered now (made once per set of them: a sweep asks for
    it once per row)."""
    return _schema_of(tuple((name, algo.params_type) for name, algo in ALGORITHMS.items()))


@functools.lru_cache(maxsize=8)
def _schema_of(registered: tuple) -> pa.Schema:
    return pa.schema(
        [
            pa.field(name, kind, metadata={"description": text})
            for name, kind, text in FIXED_COLUMNS + param_columns()
        ]
    )


def param_cells(params: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    cells = {}
    for name, value in params.items():
        col = f"param.{name}"
        if col not in schema.names:
            continue
        is_text = schema.field(col).type == pa.string()
        cells[col] = json.dumps(value) if is_text and not isinstance(value, str | None) else value
    return cells


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table read from a row file, in the current ``schema``: columns a newer version made lists
    parsed from the JSON text older rows hold, other changed types cast, "" made null where it
    means none (``NULL_WHEN_EMPTY``); columns the schema lacks are kept as they are."""
    for i, name in enumerate(table.column_names):
        if name not in schema.names:
            continue
        column, want = table.column(i), schema.field(name).type
        blank = (
            name in NULL_WHEN_EMPTY
            and pa.types.is_string(column.type)
            and pc.any(pc.equal(column, "")).as_py()
        )
        if not blank and column.type == want:
            continue  # the common case: a row of this version
        if blank:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        if pa.types.is_list(want) and pa.types.is_string(column.type):
            column = pa.array([None if v is None else json.loads(v) for v in column.to_pylist()], want)
        table = table.set_column(i, schema.field(name), column.cast(want))
    return table


def described(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the descriptions of ``schema``'s fields (where the types agree)."""
    fields = [
        schema.field(f.name) if f.name in schema.names and schema.field(f.name).type == f.type else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def nulls_for_blanks(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with "" made None in the columns where an empty value means none."""
    return {k: (None if k in NULL_WHEN_EMPTY and v == "" else v) for k, v in row.items()}


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(path, sink.getvalue().to_pybytes())


CURRENT_JOBS = "current_jobs.json"  # the job ids of the spec as its latest sweep found it


def write_current_jobs(output: Path, spec_path: str, job_ids: Iterable[str]) -> Path:
    """Record which jobs the spec of this sweep has now (written at every sweep's start): rows of
    other jobs (a photo dropped or replaced, a grid value changed) are history, not current.
    The spec's folder, the base of the rows' image references, is stored relative to ``output``
    (a folder moved together with its spec still finds its images) and, as a second guess for a
    folder moved on its own, as it is on this machine."""
    folder = Path(spec_path).resolve().parent
    record = {
        "spec": Path(spec_path).name,
        "spec_folder": Path(os.path.relpath(folder, Path(output).resolve())).as_posix(),
        "spec_folder_here": str(folder),
        "written": time.time(),
        "job_ids": sorted(set(job_ids)),
    }
    return write_atomic(output / CURRENT_JOBS, json.dumps(record).encode())


def source_file(output: Path, ref: str) -> Path:
    """The image file a row's ``content`` or ``style`` names: its reference taken from the spec's
    folder as ``output``'s latest sweep recorded it, relative to ``output`` first, then where it
    was (an absolute reference, from an older version, as it is). The file may be gone: callers
    check."""
    if Path(ref).is_absolute():
        return Path(ref)
    try:
        record = json.loads((Path(output) / CURRENT_JOBS).read_text())
        bases = [Path(output) / record["spec_folder"], Path(record.get("spec_folder_here", "."))]
    except (OSError, ValueError, KeyError, TypeError):
        bases = []
    candidates = [Path(os.path.normpath(base / ref)) for base in bases]
    return next((c for c in candidates if c.is_file()), candidates[0] if candidates else Path(ref))


def current_jobs(output: Path) -> frozenset[str] | None:
    """The job ids of the folder's spec as its latest sweep found it; None when unknown (a
    folder written before this record existed, or one whose record cannot be read)."""
    try:
        return frozenset(json.loads((output / CURRENT_JOBS).read_text())["job_ids"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def with_current(table: pa.Table, ids: frozenset[str] | None) -> pa.Table:
    """``table`` with a boolean ``current`` column: whether the row's job is one of ``ids`` (all
    rows are current when ``ids`` is None)."""
    jobs = table.column("job_id")
    flags = pc.is_in(jobs, value_set=pa.array(sorted(ids), pa.string())) if ids is not None else None
    column = flags if flags is not None else pa.array([True] * table.num_rows, pa.bool_())
    return table.append_column(
        pa.field("current", pa.bool_(), metadata={"description": CURRENT_TEXT}), column
    )


CURRENT_TEXT = "whether the job is one of the spec's jobs as its latest sweep found it (false: history)"


def only_current(table: pa.Table, ids: frozenset[str] | None) -> pa.Table:
    """The rows of ``table`` whose jobs are ``ids`` (every row when ``ids`` is None)."""
    if ids is None:
        return table
    return table.filter(pc.is_in(table.column("job_id"), value_set=pa.array(sorted(ids), pa.string())))


def curves_dir(output: Path) -> Path:
    return output / "curves"


def curve_path(output: Path, job_id: str) -> Path:
    """A job's loss curve (the plot its MLflow run holds), beside the images: the report shows it."""
    return curves_dir(output) / f"{job_id}.png"


def rows_dir(output: Path) -> Path:
    return output / "rows"


def write_row(output: Path, row: dict[str, Any]) -> Path:
    """Write one job's row as its own Parquet file, atomically."""
    schema = result_schema()
    unknown = set(row) - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in the result schema: {sorted(unknown)}")
    table = pa.Table.from_pylist([nulls_for_blanks(row)], schema=schema)
    path = rows_dir(output) / f"{row['job_id']}.parquet"
    _atomic_write_table(table, path)
    return path


PART_PREFIX = "part-"
COMPACT_EVERY = 1000  # loose rows a sweep gathers into a part as it goes


def part_files(output: Path) -> list[Path]:
    folder = rows_dir(output)
    return sorted(folder.glob(f"{PART_PREFIX}*.parquet")) if folder.is_dir() else []


def loose_row_files(output: Path) -> list[Path]:
    folder = rows_dir(output)
    files = folder.glob("*.parquet") if folder.is_dir() else []
    return sorted(f for f in files if not f.name.startswith(PART_PREFIX))


@dataclass(frozen=True)
class Rows:
    table: pa.Table
    unreadable: list[str]  # "<file>: <reason>" for row files that cannot be read (their jobs re-run)
    unreadable_files: tuple[Path, ...] = ()


class UnreadableRows(UserError):
    """``results`` and ``report`` refuse to show a table that a row file is missing from."""


UNREADABLE_DIR = "rows.unreadable"  # where a sweep moves row files it cannot read (kept, not read)


def _read_rows(files: list[Path], chunk: int = 1000) -> tuple[pa.Table, list[Path], list[str], list[Path]]:
    """The rows of every readable file as one table, the files read, and the unreadable ones,
    each named with its reason (0 bytes or cut short by a crash of an older version, a disk
    error). Tables are merged ``chunk`` files at a time into contiguous ones: 100,000 one-row
    tables held side by side took 9 GB."""
    merged, pending, read, unreadable, bad = [], [], [], [], []
    for f in files:
        try:
            pending.append(conform(pq.read_table(f), result_schema()))
            read.append(f)
        except (OSError, pa.ArrowException) as exc:
            size = f.stat().st_size if f.exists() else 0
            why = "0 bytes" if size == 0 else " ".join(str(exc).split())[:120]
            unreadable.append(f"{f}: unreadable row ({why})")
            bad.append(f)
        if len(pending) >= chunk:
            merged.append(_concat(pending).combine_chunks())
            pending = []
    if pending:
        merged.append(_concat(pending))
    return _concat(merged), read, unreadable, bad


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="default") if tables else result_schema().empty_table()


def last_row_per_job(table: pa.Table) -> pa.Table:
    """``table`` with one row per job id, the last one of each (later rows are newer)."""
    ids = table.column("job_id").to_pylist()
    last = {job: i for i, job in enumerate(ids)}
    if len(last) == len(ids):
        return table
    return table.take(sorted(last.values()))


def load_rows(output: Path) -> Rows:
    """Every readable row under ``output`` as one table, one row per job (empty, with the
    schema, when none): the parts, then the loose rows, which are newer. A file that cannot be
    read is skipped and named in ``unreadable``: its jobs count as not done, and running them
    again writes their rows anew."""
    parts, _, bad_parts, bad_part_files = _read_rows(part_files(output))
    loose, _, bad_loose, bad_loose_files = _read_rows(loose_row_files(output))
    table = last_row_per_job(_concat([parts, loose]))
    return Rows(
        described(table, result_schema()), bad_parts + bad_loose, tuple(bad_part_files + bad_loose_files)
    )


def set_aside(output: Path, files: Iterable[Path]) -> list[Path]:
    """Move unreadable row files into ``<output>/rows.unreadable/`` (kept for a look, never read
    again): their jobs count as not done and the sweep runs them anew. Call it holding the lock."""
    moved = []
    for f in files:
        target = output / UNREADABLE_DIR / f.name
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{f.stem}-{time.time_ns()}{f.suffix}")
        f.replace(target)
        moved.append(target)
    return moved


def compact(output: Path) -> int:
    """Gather the loose row files into a new part file; returns how many rows it gathered. Call
    it holding the folder's lock. Crash-safe and exactly once, in this order: the jobs' older rows
    leave the parts that hold them (each part rewritten atomically; the loose rows still hold
    them), the new part is written atomically, then the loose files are deleted (a crash before
    that leaves a job in both, and ``load_rows`` takes the loose row; the next ``compact`` puts
    it right). Unreadable loose files are left for ``load_rows`` to report."""
    loose, read, _, _ = _read_rows(loose_row_files(output))
    if not read:
        return 0
    new = last_row_per_job(loose)
    fresh = pa.array(new.column("job_id").to_pylist(), pa.string())
    parts = part_files(output)
    for part in parts:
        try:
            ids = pq.read_table(part, columns=["job_id"]).column("job_id")
        except (OSError, pa.ArrowException):
            continue  # load_rows names it; its jobs run again
        stale = pc.is_in(ids, value_set=fresh)
        if pc.any(stale).as_py():
            kept = pq.read_table(part).filter(pc.invert(stale))
            if kept.num_rows:
                _atomic_write_table(kept, part)
            else:
                part.unlink()
    number = (
        max(
            (int(p.stem[len(PART_PREFIX) :]) for p in parts if p.stem[len(PART_PREFIX) :].isdigit()),
            default=0,
        )
        + 1
    )
    _atomic_write_table(new, rows_dir(output) / f"{PART_PREFIX}{number:06d}.parquet")
    for f in read:
        f.unlink(missing_ok=True)
    return new.num_rows


def read_results(output: Path, strict: bool = False) -> pa.Table:
    """The table of ``load_rows``. Unreadable row files are left out, or, ``strict`` (what the
    ``results`` and ``report`` commands read), an UnreadableRows naming them: a table missing
    rows would be shown as if it were complete."""
    rows = load_rows(output)
    if strict and rows.unreadable:
        more = f" (and {len(rows.unreadable) - 1} more)" if len(rows.unreadable) > 1 else ""
        raise UnreadableRows(
            f"{rows.unreadable[0]}{more}: the table would miss its rows; run the sweep again, which sets "
            f"unreadable files aside in {output / UNREADABLE_DIR} and runs their jobs anew"
        )
    return rows.table


def status_by_job(table: pa.Table) -> dict[str, str]:
    """job id -> status of every row of ``table``."""
    return dict(zip(table.column("job_id").to_pylist(), table.column("status").to_pylist(), strict=True))


def finished_status(output: Path) -> dict[str, str]:
    """job id -> status of every row written so far."""
    return status_by_job(read_results(output))


def to_pandas(table: pa.Table):
    """The table as a DataFrame with nullable integers and booleans (``Int64``, ``boolean``: a
    null seed stays a missing integer, not a float NaN) and lists as lists."""
    import pandas as pd

    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def for_pandas(table: pa.Table) -> pa.Table:
    """``table`` with pandas' metadata, so that ``pd.read_parquet`` with default arguments gives
    nullable integers and booleans (``to_pandas``); the fields keep their descriptions."""
    with warnings.catch_warnings():  # pandas 3.1 deprecates what pyarrow reads of tz-aware columns
        warnings.simplefilter("ignore")
        return pa.Table.from_pandas(to_pandas(table), schema=table.schema, preserve_index=False)


def collect(output: Path) -> Path:
    """Gather the loose rows into a part, then write the current spec's rows (``current_jobs``;
    every row of a folder without that record) into ``<output>/results.parquet``
    (atomically, readable by ``pd.read_parquet`` as ``to_pandas`` gives it). Call it holding the
    folder's lock."""
    compact(output)
    path = output / "results.parquet"
    _atomic_write_table(for_pandas(only_current(read_results(output), current_jobs(output))), path)
    return path


def rungs_record(rungs: Sequence[dict]) -> str:
    """A row's ``rungs`` cell: JSON, "" for a job without early stopping."""
    return json.dumps(list(rungs)) if rungs else ""


def parse_rungs(cell: object) -> list[dict]:
    """The rungs of a row's cell (``[]`` for null, NaN or text that is not a list)."""
    if not isinstance(cell, str) or not cell:
        return []
    try:
        value = json.loads(cell)
    except ValueError:
        return []
    return value if isinstance(value, list) else []

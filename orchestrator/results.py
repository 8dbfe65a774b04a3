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
algorithm, typed from the parameter dataclasses (sequences as JSON text), null where the
parameter does not apply to the job (another algorithm's, or unused by its values), plus
``params_json`` with all of a job's parameters that apply.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from algorithms import ALGORITHMS
from algorithms.metrics import MEASURES

from .files import write_atomic

FIXED_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("job_id", pa.string()),
    ("sweep_id", pa.string()),
    ("spec_name", pa.string()),
    ("status", pa.string()),  # "ok" or "failed"
    ("error", pa.string()),
    ("algorithm", pa.string()),
    ("variant", pa.string()),  # the parameters (and seed) told apart within the algorithm, "" if none
    ("content", pa.string()),  # the image file as the spec resolved it
    ("style", pa.string()),
    ("content_name", pa.string()),
    ("style_name", pa.string()),
    ("content_sha256", pa.string()),
    ("style_sha256", pa.string()),
    ("seed", pa.int64()),  # null where the parameters do not use the seed
    ("size", pa.int64()),
    ("steps", pa.int64()),
    ("evaluations", pa.int64()),
    ("loss_total", pa.float64()),
    ("loss_content", pa.float64()),  # sum of the content.* terms; null if the algorithm has none
    ("loss_style", pa.float64()),  # sum of the style.* terms; likewise
    ("losses_json", pa.string()),  # every final loss term by name
    # the quality measures of algorithms/metrics.py, one column each
    *[(m.name, pa.float64()) for m in MEASURES],
    ("wall_seconds", pa.float64()),
    ("started_at", pa.timestamp("ms", tz="UTC")),  # in the worker
    ("host", pa.string()),  # the worker's
    ("device", pa.string()),
    ("precision", pa.string()),
    ("tiles", pa.string()),  # the tile layout a memory budget asked for; empty for one pass
    ("output_image", pa.string()),  # relative to the output folder
    ("mlflow_run_id", pa.string()),
    ("attempts", pa.int64()),
    ("finished_at", pa.timestamp("ms", tz="UTC")),
    ("code_version", pa.string()),  # stylegrid's version and git commit (orchestrator/provenance.py)
    ("params_json", pa.string()),  # the parameters that apply
]


def _arrow_type(annotation: Any) -> pa.DataType:
    """Arrow type of a parameter: scalars typed, Optional unwrapped, anything else JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(args[0]) if len(args) == 1 else pa.string()
    if origin is Literal:
        kinds = {type(a) for a in typing.get_args(annotation)}
        return _arrow_type(kinds.pop()) if len(kinds) == 1 else pa.string()
    return {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}.get(
        annotation, pa.string()
    )


def param_columns() -> list[tuple[str, pa.DataType]]:
    """``param.<name>`` for every parameter of every registered algorithm (string on a clash)."""
    cols: dict[str, pa.DataType] = {}
    for algo in ALGORITHMS.values():
        hints = typing.get_type_hints(algo.params_type)
        for f in dataclasses.fields(algo.params_type):
            t = _arrow_type(hints[f.name])
            cols[f.name] = t if cols.get(f.name, t) == t else pa.string()
    return [(f"param.{k}", v) for k, v in sorted(cols.items())]


def result_schema() -> pa.Schema:
    """The schema for the algorithms registered now (made once per set of them: a sweep asks for
    it once per row)."""
    return _schema_of(tuple((name, algo.params_type) for name, algo in ALGORITHMS.items()))


@functools.lru_cache(maxsize=8)
def _schema_of(registered: tuple) -> pa.Schema:
    return pa.schema(FIXED_COLUMNS + param_columns())


def param_cells(params: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    cells = {}
    for name, value in params.items():
        col = f"param.{name}"
        if col not in schema.names:
            continue
        is_text = schema.field(col).type == pa.string()
        cells[col] = json.dumps(value) if is_text and not isinstance(value, str | None) else value
    return cells


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(path, sink.getvalue().to_pybytes())


def rows_dir(output: Path) -> Path:
    return output / "rows"


def write_row(output: Path, row: dict[str, Any]) -> Path:
    """Write one job's row as its own Parquet file, atomically."""
    schema = result_schema()
    unknown = set(row) - set(schema.names)
    if unknown:
        raise KeyError(f"columns not in the result schema: {sorted(unknown)}")
    table = pa.Table.from_pylist([row], schema=schema)
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


def _read_rows(files: list[Path], chunk: int = 1000) -> tuple[pa.Table, list[Path], list[str]]:
    """The rows of every readable file as one table, the files read, and the unreadable ones,
    each named with its reason (0 bytes or cut short by a crash of an older version, a disk
    error). Tables are merged ``chunk`` files at a time into contiguous ones: 100,000 one-row
    tables held side by side took 9 GB."""
    merged, pending, read, unreadable = [], [], [], []
    for f in files:
        try:
            pending.append(pq.read_table(f))
            read.append(f)
        except (OSError, pa.ArrowException) as exc:
            size = f.stat().st_size if f.exists() else 0
            why = "0 bytes" if size == 0 else " ".join(str(exc).split())[:120]
            unreadable.append(f"{f}: unreadable row ({why})")
        if len(pending) >= chunk:
            merged.append(_concat(pending).combine_chunks())
            pending = []
    if pending:
        merged.append(_concat(pending))
    return _concat(merged), read, unreadable


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
    parts, _, bad_parts = _read_rows(part_files(output))
    loose, _, bad_loose = _read_rows(loose_row_files(output))
    return Rows(last_row_per_job(_concat([parts, loose])), bad_parts + bad_loose)


def compact(output: Path) -> int:
    """Gather the loose row files into a new part file; returns how many rows it gathered. Call
    it holding the folder's lock. Crash-safe and exactly once, in this order: the jobs' older rows
    leave the parts that hold them (each part rewritten atomically; the loose rows still hold
    them), the new part is written atomically, then the loose files are deleted (a crash before
    that leaves a job in both, and ``load_rows`` takes the loose row; the next ``compact`` puts
    it right). Unreadable loose files are left for ``load_rows`` to report."""
    loose, read, _ = _read_rows(loose_row_files(output))
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


def read_results(output: Path) -> pa.Table:
    """The table of ``load_rows`` (unreadable row files left out)."""
    return load_rows(output).table


def status_by_job(table: pa.Table) -> dict[str, str]:
    """job id -> status of every row of ``table``."""
    return dict(zip(table.column("job_id").to_pylist(), table.column("status").to_pylist(), strict=True))


def finished_status(output: Path) -> dict[str, str]:
    """job id -> status of every row written so far."""
    return status_by_job(read_results(output))


def collect(output: Path) -> Path:
    """Gather the loose rows into a part, then write every row into ``<output>/results.parquet``
    (atomically). Call it holding the folder's lock."""
    compact(output)
    path = output / "results.parquet"
    _atomic_write_table(read_results(output), path)
    return path

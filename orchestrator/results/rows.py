"""The results table: one Parquet row per job, its schema declared once here.

Each finished job is written at once as its own file ``<output>/rows/<job_id>.parquet`` (a
temporary file, then an atomic rename), so a crash can never leave half a row and never touches
rows already written. ``compact`` gathers those loose rows into part files
``<output>/rows/part-<n>.parquet`` (the sweep does it at its start, every ``COMPACT_EVERY`` rows
and at its end), so that starting or resuming a sweep of 100,000 jobs reads a few files, not
100,000. ``read_results`` reads parts and loose rows back as one table, one row per job (a loose
row is newer than a part's); at the end of every sweep they are also collected into
``<output>/results.parquet`` (atomically too), the file users read.

The columns and their types are ``schema.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import UserError
from ..storage.files import write_atomic
from .schema import conform, described, for_pandas, nulls_for_blanks, only_current, result_schema


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


def collect(output: Path) -> Path:
    """Gather the loose rows into a part, then write the current spec's rows (``current_jobs``;
    every row of a folder without that record) into ``<output>/results.parquet``
    (atomically, readable by ``pd.read_parquet`` as ``to_pandas`` gives it). Call it holding the
    folder's lock."""
    compact(output)
    path = output / "results.parquet"
    _atomic_write_table(for_pandas(only_current(read_results(output), current_jobs(output))), path)
    return path

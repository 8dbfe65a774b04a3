"""A catalog's sources and its manifest, on a local disk or an object store (``storage``).

Sources: a folder (searched recursively), a glob, or the ``path`` column of a CSV or Parquet
manifest; each a local path or a URI (``s3://bucket/photos/``, ``gs://...``). The manifest:
``OUT/manifest/part-<run>-<n>.parquet``, one row per attempt of a (source, style) pair, each part
written whole; the latest row of a pair is its result.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..images import ImageError, read_bytes
from ..specs.loading import IMAGE_SUFFIXES
from ..storage import locations as storage
from ..storage.location import Location
from .pipeline import MANIFEST_COLUMNS, CatalogError, manifest_schema

FLUSH_SECONDS = 2.0  # the manifest is appended at least this often while rows arrive


def list_sources(spec_input: str, path_column: str = "path", exclude: Sequence[str] = ()) -> list[str]:
    """Absolute source paths or URIs, in a stable order, without duplicates, and none inside the
    locations ``exclude`` (a catalog's own output folders: it never stylizes its own outputs,
    even when its input folder is its output folder): a folder's or a prefix's images at every
    level, a pattern's (``Location.find``), or a .csv / .parquet manifest's paths, which are kept
    even when the file is missing (each becomes an error row; relative ones are taken from the
    manifest's folder)."""
    where = f"--input {spec_input}"
    source = Location.of(spec_input)
    try:
        if source.is_file():
            if posixpath.splitext(source.path)[1].lower() not in (".csv", ".parquet"):
                raise CatalogError(f"{where}: expected a folder, a pattern or a .csv / .parquet manifest")
            paths = _manifest_paths(spec_input, path_column)
        else:
            paths = [str(f) for f in source.find(IMAGE_SUFFIXES, recursive=True, what="image")]
    except FileNotFoundError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    except OSError as exc:  # the store refused: credentials, a missing bucket, the network
        raise CatalogError(f"{where}: cannot list it ({' '.join(str(exc).split())[:200]})") from None
    return _outside(list(dict.fromkeys(_normal(p) for p in paths)), exclude, spec_input)


def _outside(sources: list[str], exclude: Sequence[str], spec_input: str) -> list[str]:
    """``sources`` without those inside the locations ``exclude``; an error if none is left."""
    roots = tuple(_normal(e).rstrip("/") + "/" for e in exclude)
    kept = [s for s in sources if not s.startswith(roots)] if roots else sources
    if sources and not kept:
        raise CatalogError(
            f"--input {spec_input}: every image found is one of the catalog's own outputs "
            f"({', '.join(exclude)}), which are never inputs"
        )
    return kept


def own_outputs(out: str) -> list[str]:
    """The folders of a catalog's output location that hold its own pictures."""
    return [storage.join(out, "images"), storage.join(out, "mlartifacts")]


def _normal(location: str) -> str:
    """An object store's URI as it is; a local path (or ``file://`` URI) made absolute."""
    return str(Location.of(location))


def _manifest_paths(location: str, column: str) -> list[str]:
    """The ``column`` of a CSV or Parquet manifest (a path or a URI); relative entries are taken
    from the manifest's folder."""
    import pandas as pd

    try:
        data = io.BytesIO(read_bytes(location))
        df = pd.read_csv(data, dtype=str) if location.lower().endswith(".csv") else pd.read_parquet(data)
    except ImageError as exc:
        raise CatalogError(f"{location}: cannot read the manifest ({exc.reason})") from None
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable files
        raise CatalogError(
            f"{location}: cannot read the manifest ({' '.join(str(exc).split())[:200]})"
        ) from None
    if column not in df.columns:
        raise CatalogError(f"{location}: no {column!r} column (columns: {', '.join(map(str, df.columns))})")
    values = df[column].dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        raise CatalogError(f"{location}: the {column!r} column has no paths")
    folder = str(Location.of(location).parent)
    return [storage.absolute(p, folder) for p in values]


def out_location(out: str) -> str:
    """The output folder as an absolute path (``file://`` URIs too), or the URI of an object store
    as given (without a trailing ``/``)."""
    return str(Location.of(out))


def manifest_dir(out: str) -> str:
    return storage.join(out, "manifest")


def manifest_parts(out: str) -> list[str]:
    """The manifest's part files, in the order written (their names sort by run and number)."""
    found = storage.list_files(manifest_dir(out))
    return [f for f in found if fnmatch.fnmatchcase(posixpath.basename(f), "part-*.parquet")]


def read_manifest(out: str, columns: Sequence[str] | None = None, history: bool = False):
    """The manifest as a pandas DataFrame (empty when there is none): one row per (source,
    style) pair, its latest attempt (a failed image that a later run wrote has its ``ok`` row
    here); ``history`` keeps every attempt in the order written."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = manifest_parts(out)
    if not parts:
        return pd.DataFrame(columns=list(columns or MANIFEST_COLUMNS))
    # whole parts: those written before a column existed (tiles) lack it, and get nulls
    tables = [pq.read_table(pa.BufferReader(storage.read_bytes(p))) for p in parts]
    df = pa.concat_tables(tables, promote_options="default").to_pandas()
    if not history:
        df = df.drop_duplicates(["source", "style"], keep="last").reset_index(drop=True)
    return df[list(MANIFEST_COLUMNS)] if columns is None else df[list(columns)]


def done_pairs(out: str) -> set[tuple[str, str]]:
    """The pairs whose latest attempt wrote an image; failed ones are tried again."""
    df = read_manifest(out, ["source", "style", "status"])
    ok = df[df["status"] == "ok"]
    return set(zip(ok["source"], ok["style"], strict=True))


@dataclass
class ManifestWriter:
    """Appends rows to ``OUT/manifest/part-<run>-<n>.parquet``, each part written whole."""

    out: str
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
        name = f"part-{self.run_tag}-{self.parts:06d}.parquet"
        storage.write_bytes(storage.join(manifest_dir(self.out), name), buf.getvalue().to_pybytes())
        self.pending = []

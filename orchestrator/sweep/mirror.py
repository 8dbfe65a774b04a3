"""A sweep's output folder in an object store (``--output s3://bucket/sweeps/demo``): the driver
works in a local copy of it and keeps the store up to date, so that the results survive the
machine that ran the driver and a sweep resumes from the store on any machine.

The sweep's own rules stay those of a local folder (atomic files, the folder lock, rows gathered
into parts): they apply to the local copy, ``~/.cache/stylegrid/outputs/<bucket-prefix>-<hash>``
(``storage.location.cache_root``: ``$STYLEGRID_CACHE`` moves it). The store gets each job's image and row as soon as they are
written (a driver lost midway loses nothing that was written), and at the end the parts, the
report and ``results.parquet``. At the start the store's rows are the truth: its parts replace
the copy's, and loose rows either side has are kept (a loose row is a finished job).

Exactly once, as locally: ``sync_rows`` uploads new and changed row files before it deletes the
ones the copy no longer has, so a crash between leaves a job in a part and a loose row (the
loose row is read, and the next sync removes it), never in neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..results.rows import CURRENT_JOBS, rows_dir
from ..storage import locations as storage
from ..storage.files import write_atomic
from ..storage.location import Location


def working_copy(uri: str) -> Path:
    """The local copy of the output ``uri`` (``Location.working_copy``: under stylegrid's cache)."""
    return Location.of(uri).working_copy("outputs")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Mirror:
    """A sweep's output folder, ``local`` (the folder the sweep works in), kept in ``uri``: for an
    object store's output a working copy, each method keeping the store up to date; for a folder
    on this disk the folder itself, and every method has nothing to do (``mirrored`` False)."""

    uri: str
    local: Path
    pushed: dict[str, str] = field(default_factory=dict)  # row file name -> sha256 of what the store has
    mirrored: bool = True

    @classmethod
    def of(cls, output: str | Path) -> Mirror:
        location = Location.of(output)
        return cls(str(location), location.working_copy("outputs"), mirrored=location.remote)

    def remote(self, path: Path) -> str:
        return storage.join(self.uri, *path.relative_to(self.local).parts)

    def push(self, path: Path) -> None:
        """Upload one file of the copy (a job's image or row) to its place in the store."""
        if not self.mirrored:
            return
        data = path.read_bytes()
        storage.write_bytes(self.remote(path), data)
        if path.parent == self.rows:
            self.pushed[path.name] = _sha(data)

    @property
    def rows(self) -> Path:
        return self.local / "rows"

    def pull_rows(self) -> int:
        """Make the copy's rows those of the store: its parts replace the copy's, loose rows of
        either side are kept. Returns how many files were downloaded."""
        if not self.mirrored:
            return 0
        self.rows.mkdir(parents=True, exist_ok=True)
        remote = {posixpath.basename(k): k for k in storage.file_sizes(storage.join(self.uri, "rows"))}
        remote = {n: k for n, k in remote.items() if n.endswith(".parquet")}
        for f in self.rows.glob("part-*.parquet"):
            if f.name not in remote:
                f.unlink()  # gathered here, never uploaded: the store still has its rows loose
        downloaded = 0
        self.pushed = {}
        for name, location in sorted(remote.items()):
            data = storage.read_bytes(location)
            target = self.rows / name
            if not target.is_file() or target.read_bytes() != data:
                write_atomic(target, data)
                downloaded += 1
            self.pushed[name] = _sha(data)
        return downloaded

    def pull_missing(self, folder: str) -> int:
        """Download the files under ``folder`` that the copy lacks (the report's thumbnails: a
        report made again on a fresh copy keeps its pictures without every image)."""
        if not self.mirrored:
            return 0
        prefix = storage.join(self.uri, folder)
        missing = 0
        for location in storage.file_sizes(prefix):
            target = self.local / folder / location[len(prefix) :].lstrip("/")
            if not target.is_file():
                write_atomic(target, storage.read_bytes(location))
                missing += 1
        return missing

    def push_missing(self, folder: str) -> int:
        """Upload the files under ``folder`` that the store lacks (an image whose upload failed
        while the sweep ran)."""
        if not self.mirrored:
            return 0
        prefix = storage.join(self.uri, folder)
        there = set(storage.file_sizes(prefix))
        here = sorted(
            p for p in (self.local / folder).rglob("*") if p.is_file() and not p.name.startswith(".")
        )
        missing = [f for f in here if self.remote(f) not in there]
        for f in missing:
            self.push(f)
        return len(missing)

    def sync_rows(self) -> None:
        """The store's rows made equal to the copy's: uploads first, then deletes."""
        if not self.mirrored:
            return
        here = {f.name: f for f in self.rows.glob("*.parquet")} if self.rows.is_dir() else {}
        for name, f in sorted(here.items()):
            if self.pushed.get(name) != _sha(f.read_bytes()):
                self.push(f)
        for name in sorted(set(self.pushed) - set(here)):
            storage.delete(storage.join(self.uri, "rows", name))
            del self.pushed[name]

    def push_tree(self, *names: str) -> None:
        """Upload files and folders of the copy (``results.parquet``, ``report``) whole."""
        if not self.mirrored:
            return
        for name in names:
            path = self.local / name
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for f in files:
                if not f.name.startswith("."):
                    storage.write_bytes(self.remote(f), f.read_bytes())


@contextlib.contextmanager
def rows_here(output: str | Path) -> Iterator[Path | None]:
    """A sweep output's rows and its record of the current jobs in a folder on this disk, for a
    ``with``: the output folder itself, or for an object store's a temporary copy of them; None
    when the output has no rows (not a sweep's output, or none yet)."""
    mirror = Mirror.of(output)
    if not mirror.mirrored:
        yield mirror.local if rows_dir(mirror.local).is_dir() else None
        return
    with tempfile.TemporaryDirectory() as tmp:
        copy = Mirror(mirror.uri, Path(tmp))
        if not copy.pull_rows():
            yield None
            return
        current = storage.join(mirror.uri, CURRENT_JOBS)
        if storage.exists(current):
            write_atomic(Path(tmp) / CURRENT_JOBS, storage.read_bytes(current))
        yield Path(tmp)

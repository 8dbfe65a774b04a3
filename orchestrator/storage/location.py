"""One storage interface: a ``Location`` is a file or a folder on this machine's disk or in an
object store (``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``), and the code that reads inputs
and writes outputs calls its methods without asking which.

``Location.of`` is the one place that tells the kinds apart: a URI with a scheme other than
``file`` is an object store's and is kept as written (without a trailing ``/``); anything else (a
path, ``~/...``, ``file://...``) is a local path, made absolute against ``base`` (default: the
current folder). Behind a location is its ``Backend``: ``LocalBackend`` (the disk: atomic writes
by ``files.write_atomic``) or ``ObjectBackend`` (pyarrow's file systems: an upload appears whole or
not at all). Both pass the same contract (``tests/unit/orchestrator/storage/test_storage_contract.py``: a local folder and
moto's S3). Credentials and endpoints come from the usual places of each store (for S3: the
node's IAM role, ``AWS_*`` variables or ``~/.aws``; ``AWS_ENDPOINT_URL`` points pyarrow at an
S3-compatible server such as MinIO or moto).

A workflow that needs a real folder (an SQLite store, a lock, a video encoder) works in
``working_copy()``: the folder itself when it is local, else a folder under ``cache_root()``
named after the location, the one cache every workflow shares.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .files import safe_name, write_atomic

CACHE_ENV = "STYLEGRID_CACHE"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def cache_root() -> Path:
    """stylegrid's cache: ``$STYLEGRID_CACHE``, else ``$XDG_CACHE_HOME/stylegrid``, else
    ``~/.cache/stylegrid`` (the working copies of remote outputs, the models copied from MLflow)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "stylegrid"


def scheme_of(text: str | os.PathLike) -> str:
    """``s3`` for ``s3://...``, ``file`` for ``file://...``, "" for a path (``C:\\`` is a path)."""
    found = _SCHEME.match(str(text))
    return found.group(1).lower() if found else ""


def glob_regex(pattern: str) -> re.Pattern:
    """``pattern`` (``/``-separated) as a regular expression with glob's rules: ``**`` as a whole
    level matches any number of levels (none included), ``*``, ``?`` and ``[...]`` stay within one
    level."""
    out, i, levels = [], 0, pattern.split("/")
    for n, level in enumerate(levels):
        last = n == len(levels) - 1
        if level == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        i = 0
        while i < len(level):
            c = level[i]
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[" and "]" in level[i + 2 :]:
                end = level.index("]", i + 2)
                body = level[i + 1 : end]
                body = body.replace("\\", "\\\\")  # a backslash is a literal in a glob class
                out.append(f"[^{body[1:]}]" if body.startswith("!") else f"[{body.removeprefix('^')}]")
                i = end
            else:
                out.append(re.escape(c))
            i += 1
        out.append("" if last else "/")
    return re.compile("".join(out))


class Backend(Protocol):
    """What a kind of store does with the paths inside it (``Location.path``)."""

    remote: bool

    def read_bytes(self, path: str) -> bytes: ...

    def write_bytes(self, path: str, data: bytes) -> None: ...  # whole or not at all

    def kind(self, path: str) -> str | None: ...  # "file", "dir" or None (nothing there)

    def files(self, path: str, recursive: bool) -> list[tuple[str, int]]: ...  # (path, size), sorted

    def delete(self, path: str) -> None: ...  # a missing file is not an error


class LocalBackend:
    remote = False

    def read_bytes(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_bytes(self, path: str, data: bytes) -> None:
        write_atomic(path, data)

    def kind(self, path: str) -> str | None:
        p = Path(path)
        return "dir" if p.is_dir() else "file" if p.exists() else None

    def files(self, path: str, recursive: bool) -> list[tuple[str, int]]:
        root = Path(path)
        if not root.is_dir():
            return []
        found = root.rglob("*") if recursive else root.iterdir()
        return sorted((str(f), f.stat().st_size) for f in found if f.is_file())

    def delete(self, path: str) -> None:
        Path(path).unlink(missing_ok=True)


class ObjectBackend:
    """An object store through pyarrow's file systems (one per scheme and bucket, made on use)."""

    remote = True

    def __init__(self, scheme: str):
        self.scheme = scheme

    def _fs(self, path: str):
        import pyarrow.fs as pafs

        return pafs.FileSystem.from_uri(f"{self.scheme}://{path}")[0]

    def read_bytes(self, path: str) -> bytes:
        with self._fs(path).open_input_file(path) as f:
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> None:
        with self._fs(path).open_output_stream(path) as f:
            f.write(data)

    def kind(self, path: str) -> str | None:
        import pyarrow.fs as pafs

        found = self._fs(path).get_file_info(path).type
        return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(found)

    def files(self, path: str, recursive: bool) -> list[tuple[str, int]]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(path.rstrip("/"), recursive=recursive, allow_not_found=True)
        infos = self._fs(path).get_file_info(selector)
        return sorted((i.path, i.size) for i in infos if i.type == pafs.FileType.File)

    def delete(self, path: str) -> None:
        try:
            self._fs(path).delete_file(path)
        except FileNotFoundError:
            pass


_LOCAL = LocalBackend()


@dataclass(frozen=True)
class Location:
    """A file or folder: ``scheme`` "" for this machine's disk (``path`` absolute), else an object
    store's scheme with ``path`` = bucket/key. ``str()`` writes it the way users do."""

    scheme: str
    path: str

    @classmethod
    def of(
        cls, text: str | os.PathLike | Location, base: str | os.PathLike | Location | None = None
    ) -> Location:
        """The location ``text`` names; a relative path is taken from ``base`` (a folder; default
        the current one), which may itself be a URI."""
        if isinstance(text, Location):
            return text
        text = str(text)
        scheme = scheme_of(text)
        if scheme and scheme != "file":
            return cls(scheme, text.split("://", 1)[1].rstrip("/"))
        raw = Path(os.path.expanduser(text.removeprefix("file://")))
        if not raw.is_absolute() and base is not None:
            folder = Location.of(base)
            if folder.remote:
                return folder.join(*raw.parts)
            raw = Path(folder.path) / raw
        return cls("", str(raw.resolve()))

    @property
    def backend(self) -> Backend:
        return ObjectBackend(self.scheme) if self.scheme else _LOCAL

    @property
    def remote(self) -> bool:
        """Whether the location is off this machine (what only the workflows' summaries say)."""
        return bool(self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if self.scheme else Path(self.path).name

    @property
    def parent(self) -> Location:
        if self.scheme:
            return Location(self.scheme, posixpath.dirname(self.path))
        return Location("", str(Path(self.path).parent))

    def join(self, *parts: str) -> Location:
        if self.scheme:
            return Location(self.scheme, posixpath.join(self.path, *parts).rstrip("/"))
        return Location("", str(Path(self.path, *parts)))

    def read_bytes(self) -> bytes:
        try:
            return self.backend.read_bytes(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self}: no such file") from None

    def write_bytes(self, data: bytes) -> Location:
        """Write ``data`` whole or not at all (locally: a temporary file renamed into place)."""
        self.backend.write_bytes(self.path, data)
        return self

    def exists(self) -> bool:
        return self.backend.kind(self.path) is not None

    def is_dir(self) -> bool:
        return self.backend.kind(self.path) == "dir"

    def is_file(self) -> bool:
        return self.backend.kind(self.path) == "file"

    def files(self, recursive: bool = False) -> list[Location]:
        """The files in this folder (every level with ``recursive``), sorted; [] when it is none."""
        return [Location(self.scheme, p) for p, _ in self.backend.files(self.path, recursive)]

    def sizes(self) -> dict[Location, int]:
        """Every file under this folder, at any depth, with its size in bytes."""
        return {Location(self.scheme, p): n for p, n in self.backend.files(self.path, True)}

    def glob(self, pattern: str) -> list[Location]:
        """The files under this folder whose path relative to it matches ``pattern``, as Python's
        ``glob`` with ``recursive=True`` matches (``*``, ``?``, ``[...]`` within one level, ``**``
        for any number of levels, none included), sorted; object stores have no glob of their own."""
        recursive = "/" in pattern or "**" in pattern
        matches = glob_regex(pattern).fullmatch
        return [f for f in self.files(recursive) if matches(f.relative_to(self))]

    def find(self, suffixes: Sequence[str], recursive: bool = False, what: str = "") -> list[Location]:
        """The files this location names whose suffix (any case) is one of ``suffixes``, sorted:
        a folder's (every level with ``recursive``); a file itself, taken literally (brackets and
        all); else, as a pattern, its ``matches``. Nothing
        found raises ``FileNotFoundError`` saying why, in the words of its kind of store (``what``
        names the files: "image" files)."""
        file, folder = ("object", "prefix") if self.scheme else ("file", "folder")
        files = f"{what} {file}".strip()
        wanted = [s.lower() for s in suffixes]
        kind = self.backend.kind(self.path)
        if kind == "file":
            return [self]
        if kind == "dir":
            found = [f for f in self.files(recursive) if posixpath.splitext(f.path)[1].lower() in wanted]
            if not found:
                raise FileNotFoundError(f"the {folder} has no {files}s ({', '.join(suffixes)})")
            return found
        if not any(c in self.path for c in "*?["):
            raise FileNotFoundError(f"no such {file} or {folder}")
        found = [f for f in self.matches() if posixpath.splitext(f.path)[1].lower() in wanted]
        if not found:
            raise FileNotFoundError(f"no such {file}, and as a pattern it matches no {files}")
        return found

    def matches(self) -> list[Location]:
        """The files this location matches as a pattern (``glob``'s rules from the last folder
        before its first wildcard; a folder that exists as written is taken literally, so only
        the last part of ``shoot [2024]/*.png`` is a pattern)."""
        if self.parent.is_dir():
            return self.parent.glob(self.name)
        first = min(self.path.index(c) for c in "*?[" if c in self.path)
        root = Location(self.scheme, self.path[:first].rsplit("/", 1)[0])
        return root.glob(self.path[len(root.path) + 1 :])

    def relative_to(self, folder: Location) -> str:
        return (
            posixpath.relpath(self.path, folder.path)
            if self.scheme
            else os.path.relpath(self.path, folder.path)
        )

    def delete(self) -> None:
        """Delete one file; a missing one is not an error."""
        self.backend.delete(self.path)

    def working_copy(self, kind: str = "outputs") -> Path:
        """A real folder for this location: itself on the disk; for an object store's, a folder
        under ``cache_root()/<kind>`` named after it (a readable part and a hash of the URI)."""
        if not self.scheme:
            return Path(self.path)
        digest = hashlib.sha256(str(self).encode()).hexdigest()[:12]
        return cache_root() / kind / f"{safe_name(self.path, 60)}-{digest}"

    def local_folder(self, kind: str) -> Path:
        """This folder's files on this machine's disk: the folder itself, or for an object
        store's, its files (not sub-folders) copied once into ``working_copy(kind)``."""
        copy = self.working_copy(kind)
        if self.scheme:
            for f in self.files():
                dest = copy / f.name
                if not dest.is_file():
                    write_atomic(dest, f.read_bytes())
        return copy

    @contextlib.contextmanager
    def on_disk(self) -> Iterator[Path]:
        """This file or folder as a path on this machine's disk for the length of a ``with``
        (for programs that read files, e.g. FFmpeg): itself, or an object store's copied into a
        temporary folder (a folder's files, not its sub-folders), deleted at the end."""
        if not self.scheme:
            yield Path(self.path)
            return
        with tempfile.TemporaryDirectory(prefix="stylegrid-") as tmp:
            copy = Path(tmp) / (self.name or "copy")
            if self.is_dir():
                copy.mkdir()
                for f in self.files():
                    (copy / f.name).write_bytes(f.read_bytes())
            else:
                copy.write_bytes(self.read_bytes())
            yield copy

    @property
    def recorded(self) -> str:
        """How a record that travels (a model's JSON) names it: a URI in full, which means the
        same everywhere; a file of this disk by its name alone (its folders are this machine's)."""
        return str(self) if self.scheme else self.name

"""``Location``'s operations for code that holds locations as text (a spec's fields, a row's
cells, a manifest's paths): each function takes a path or a URI and returns text written the way
it was given (``s3://bucket/key``, ``file:///...`` or a plain path). One implementation: every
function is ``location.Location``'s, so a local path and an object store's URI behave alike.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from .location import Location, scheme_of


def is_uri(location: str | os.PathLike) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: anything with a scheme (a drive letter such
    as ``C:\\`` has one character, and a local path none)."""
    return bool(scheme_of(location))


def is_remote(location: str | os.PathLike) -> bool:
    return scheme_of(location) not in ("", "file")


def absolute(location: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """The form specs, rows and manifests hold: a URI as written (without a trailing ``/``), a
    local path made absolute (from the folder ``base`` when it is relative, which may be a URI)."""
    if is_uri(location):
        return str(location).rstrip("/")
    found = Location.of(location, base)
    return _written_as(str(base), found) if base is not None else str(found)


def find_files(
    pattern: str, suffixes: Sequence[str], *, base: str | os.PathLike | None = None, recursive: bool = False,
    what: str = "",
) -> list[str]:  # fmt: skip
    """``Location.find`` in text: the files ``pattern`` names (a file, a folder, a pattern; taken
    from ``base`` when relative), each written as ``pattern`` is (a ``file://`` URI stays one)."""
    return [_written_as(str(pattern), f) for f in Location.of(pattern, base).find(suffixes, recursive, what)]


def _written_as(template: str, location: Location) -> str:
    """``location`` as text in the form of ``template`` (a ``file://`` URI stays one)."""
    return f"file://{location.path}" if scheme_of(template) == "file" else str(location)


def join(location: str, *parts: str) -> str:
    """``location`` / parts, for URIs (``/``-separated) and local paths alike (text only: nothing
    is resolved)."""
    if is_uri(location):
        return posixpath.join(location.rstrip("/"), *parts)
    return str(Path(location, *parts))


def read_bytes(location: str) -> bytes:
    return Location.of(location).read_bytes()


def write_bytes(location: str, data: bytes) -> str:
    """Write ``data`` whole or not at all (locally: a temporary file renamed into place)."""
    written = Location.of(location).write_bytes(data)
    return location if is_remote(location) else written.path


def exists(location: str) -> bool:
    return Location.of(location).exists()


def is_dir(location: str) -> bool:
    return Location.of(location).is_dir()


def list_files(location: str, recursive: bool = False) -> list[str]:
    """The files under the folder (prefix) ``location``, sorted, written the way ``location`` is;
    [] when there is no such folder."""
    return [_written_as(location, f) for f in Location.of(location).files(recursive)]


def glob_files(pattern: str) -> list[str]:
    """The files whose location matches ``pattern`` (``Location.matches``: ``*``, ``?``, ``[...]``
    within one level, ``**`` for any depth), written as ``pattern`` is."""
    return [_written_as(pattern, f) for f in Location.of(pattern).matches()]


def delete(location: str) -> None:
    """Delete one file (object); a missing one is not an error."""
    Location.of(location).delete()


def file_sizes(location: str) -> dict[str, int]:
    """``{location of each file: its size in bytes}`` under the folder (prefix) ``location``,
    recursively; {} when there is no such folder."""
    return {_written_as(location, f): n for f, n in Location.of(location).sizes().items()}

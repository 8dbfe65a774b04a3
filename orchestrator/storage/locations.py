"""Files by path or by URI: a local path, ``file://...``, or anything pyarrow's file systems open
(``s3://bucket/prefix``, ``gs://bucket/prefix``, ``hdfs://...``), with one set of small functions,
so that code which reads inputs and writes outputs on any node need not care which.

Credentials and endpoints come from the usual places of each store (for S3: the node's IAM role,
``AWS_*`` environment variables or ``~/.aws``; ``AWS_ENDPOINT_URL`` points pyarrow at an
S3-compatible server such as MinIO or moto). On an object store a single upload appears whole or
not at all, so ``write_bytes`` is atomic there as it is locally (``files.write_atomic``).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from pathlib import Path

from .files import write_atomic

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_uri(location: str | os.PathLike) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: anything with a scheme (a drive letter such
    as ``C:\\`` has one character, and a local path none)."""
    return bool(_SCHEME.match(str(location)))


def is_remote(location: str | os.PathLike) -> bool:
    return is_uri(location) and not str(location).startswith("file://")


def filesystem(location: str | os.PathLike):
    """``(pyarrow FileSystem, path within it)`` for a URI or a local path."""
    import pyarrow.fs as pafs

    if is_uri(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """``location`` / parts, for URIs (``/``-separated) and local paths alike."""
    if is_uri(location):
        return posixpath.join(location.rstrip("/"), *parts)
    return str(Path(location, *parts))


def _uri_of(location: str, fs_path: str) -> str:
    """The location of ``fs_path`` (a path inside ``location``'s file system) written the way
    ``location`` is: ``s3://bucket/key`` for an S3 location, a plain path for a local one."""
    if not is_uri(location):
        return fs_path
    scheme = location.split("://", 1)[0]
    return f"{scheme}://{fs_path.lstrip('/')}" if scheme != "file" else f"file://{fs_path}"


def read_bytes(location: str) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_file(path) as f:
        return f.read()


def write_bytes(location: str, data: bytes) -> str:
    """Write ``data`` whole or not at all (locally: a temporary file renamed into place)."""
    if not is_remote(location):
        return str(write_atomic(filesystem(location)[1], data))
    fs, path = filesystem(location)
    with fs.open_output_stream(path) as f:
        f.write(data)
    return location


def exists(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(location: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def list_files(location: str, recursive: bool = False) -> list[str]:
    """The files under the folder (prefix) ``location``, sorted, written the way ``location`` is;
    [] when there is no such folder."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    selector = pafs.FileSelector(path.rstrip("/"), recursive=recursive, allow_not_found=True)
    infos = fs.get_file_info(selector)
    return sorted(_uri_of(location, i.path) for i in infos if i.type == pafs.FileType.File)


def glob_files(pattern: str) -> list[str]:
    """The files whose location matches ``pattern`` (``*``, ``?``, ``[...]`` in the last part,
    ``**`` for any depth), for object stores, which have no glob of their own."""
    first = min(pattern.index(c) for c in "*?[" if c in pattern)
    folder = pattern[:first].rsplit("/", 1)[0]
    recursive = "**" in pattern or "/" in pattern[len(folder) + 1 :]
    return [f for f in list_files(folder, recursive=recursive) if fnmatch.fnmatchcase(f, pattern)]


def has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def delete(location: str) -> None:
    """Delete one file (object); a missing one is not an error."""
    fs, path = filesystem(location)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def file_sizes(location: str) -> dict[str, int]:
    """``{location of each file: its size in bytes}`` under the folder (prefix) ``location``,
    recursively; {} when there is no such folder."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    selector = pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)
    return {
        _uri_of(location, i.path): i.size for i in fs.get_file_info(selector) if i.type == pafs.FileType.File
    }

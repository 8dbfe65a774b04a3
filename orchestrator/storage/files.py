"""Writing files so that a crash never leaves half of one behind, and so that the folder's
owner can read them like any other file they create."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """What ``open(path, "w")`` would give: 0o666 less the process's umask (``mkstemp`` uses 0o600)."""
    return 0o666 & ~_umask()


class WriteError(OSError):
    """A file that could not be written; ``str()`` names the file and the reason on one line."""

    def __init__(self, path: Path, exc: OSError):
        reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        super().__init__(exc.errno, f"cannot write {path}: {reason}")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def write_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to the disk, then rename it
    into place (and flush the folder, so the rename survives a power cut). The file gets the
    umask's usual permissions (``mode`` overrides). Errors name ``path``."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), default_file_mode() if mode is None else mode)
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        tmp = None
        fsync_dir(p.parent)
    except OSError as exc:
        raise WriteError(p, exc) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return p


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, naming ``path``, if a file cannot be written there (before hours of work)."""
    p = Path(path)
    if p.is_dir():
        raise WriteError(p, IsADirectoryError(errno.EISDIR, "it is a folder; name a file"))
    blocker = next((a for a in p.parents if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise WriteError(p, NotADirectoryError(errno.ENOTDIR, f"{blocker} is a file, not a folder"))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise WriteError(p, exc) from None
    return p


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partial_files(root: Path, folders: list[Path]) -> int:
    """Delete the temporary files a killed writer left behind (``write_atomic``'s
    ``.<name>.<random>.tmp``) in ``root`` and under ``folders``; call it holding the folder's lock."""
    found = list(root.glob(".*.tmp")) if root.is_dir() else []
    for folder in folders:
        found += folder.rglob(".*.tmp") if folder.is_dir() else []
    for tmp in found:
        tmp.unlink(missing_ok=True)
    return len(found)


def safe_name(text: str, limit: int = 40, keep_dots: bool = False) -> str:
    """A file-name fragment with no path separators, dots-only names or odd characters
    (``keep_dots``: dots inside the name stay, as in ``2.5``)."""
    allowed = r"[^A-Za-z0-9_.-]+" if keep_dots else r"[^A-Za-z0-9_-]+"
    cleaned = re.sub(allowed, "_", text).strip("_.")
    return cleaned[:limit].rstrip(".") or "x"

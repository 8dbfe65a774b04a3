"""One writer per output folder: ``<output>/.stylegrid.lock`` names the process that holds it.

A second sweep or catalog on the same folder would duplicate work, fight over the SQLite store and
delete each other's temporary files, so it is refused with one line naming the holder.

The lock is the kernel's (``flock`` on the file, held while the process lives), not the file's
existence: a process that dies in any way, SIGKILL included, releases it at once, so there is no
stale lock to take over and no race in taking one over; an empty or half-written lock file is
just a file. The file's content (host, pid, what) only names the holder in the refusal. The
holder deletes the file when it finishes; a process that opened the file just before that
checks, once it holds the lock, that the file it locked is still the one at the path, and
otherwise tries again. A lock file naming another machine (a folder on a shared disk) is left
to its owner: delete it by hand if that process is gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .files import WriteError, default_file_mode, fsync_dir, remove_partial_files
from .location import Location

LOCK_NAME = ".stylegrid.lock"
ATTEMPTS = 50  # re-opens when the file was replaced between open and flock (a holder finishing)

# the open lock files of this process, by path: the descriptor holds the lock
_held: dict[Path, int] = {}


class LockError(UserError):
    """The folder is in use by another stylegrid process (or cannot hold a lock file)."""


def _read_holder(fd: int) -> dict | None:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def _holder_text(fd: int, wait_s: float = 1.0) -> str:
    """Who holds the lock, as its file names it. A holder writes its name just after it takes
    the lock, so an empty file, or one still naming a dead process of this host, is read again
    for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        holder = _read_holder(fd)
        current = holder is not None and (
            holder.get("host") != socket.gethostname() or _pid_alive(int(holder.get("pid") or 0))
        )
        if current or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if holder is None:
        return "another process (it has not written its name into the lock)"
    return f"{holder.get('what', 'stylegrid')} (pid {holder.get('pid')} on {holder.get('host')})"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _other_host(fd: int) -> str | None:
    """The holder a lock file names if it is a process of another machine (a folder on a shared
    disk, where this machine's kernel cannot see that process's lock), else None."""
    holder = _read_holder(fd)
    if holder is not None and holder.get("host") not in (None, socket.gethostname()):
        return f"{holder.get('what', 'stylegrid')} (pid {holder.get('pid')} on {holder.get('host')})"
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def acquire(folder: Path, what: str) -> Path:
    """Take the lock of ``folder`` for ``what`` (e.g. ``sweep demo``); a LockError naming the
    holder if another process has it."""
    path = folder / LOCK_NAME
    for _ in range(ATTEMPTS):
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, default_file_mode())
        except OSError as exc:
            raise LockError(str(WriteError(path, exc))) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder_text(fd)
            os.close(fd)
            raise LockError(
                f"{folder}: in use by {who}; wait for it to finish (or stop it) and run this again"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LockError(
                f"{path}: cannot lock it ({exc.strerror}); is the folder on a local disk?"
            ) from None
        if not _same_file(fd, path):  # its holder finished and deleted it after we opened it
            os.close(fd)
            continue
        other = _other_host(fd)
        if other:
            os.close(fd)
            raise LockError(
                f"{folder}: the lock names {other}, on another machine, which cannot be checked from "
                f"here; delete {path} if that process is gone"
            )
        me = {"host": socket.gethostname(), "pid": os.getpid(), "what": what, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        os.fsync(fd)
        fsync_dir(folder)
        _held[path] = fd
        return path
    raise LockError(f"{folder}: could not take the lock {path} (other processes keep replacing it)")


def release(path: Path) -> None:
    """Delete the lock file (while still holding it, so nobody locks the deleted file unaware)
    and let the lock go."""
    fd = _held.pop(path, None)
    if fd is None:
        return
    try:
        if _same_file(fd, path):
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[Path]:
    path = acquire(folder, what)
    try:
        yield path
    finally:
        release(path)


@contextmanager
def claim_output(output: str | os.PathLike, what: str, partial: tuple[str, ...] = ()) -> Iterator[None]:
    """Hold an output folder for one run: on this disk, a folder made if need be, its lock held
    (``folder_lock``) and the temporary files that a killed run left in its sub-folders
    ``partial`` removed; in an object store nothing is needed (an upload appears whole, so
    there is nothing partial, and a store has no lock). A file in its place is a ``UserError``."""
    location = Location.of(output)
    if location.remote:
        yield
        return
    folder = Path(location.path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{output}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(folder, exc) from None
    with folder_lock(folder, what):
        remove_partial_files(folder, [folder / name for name in partial])
        yield


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def arm_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread. Call it again after
    ``ray.init()``: Ray's core installs its own SIGTERM handler, which aborts the process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what ``ray job stop`` and most schedulers send) handled like Ctrl-C while a sweep
    or catalog runs: finished work is kept and the MLflow runs are closed as KILLED."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    arm_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

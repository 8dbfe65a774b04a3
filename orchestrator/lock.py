"""One writer per output folder: ``<output>/.stylegrid.lock`` names the process that holds it.

A second sweep or catalog on the same folder would duplicate work, fight over the SQLite store and
delete each other's temporary files, so it is refused with one line naming the holder. A lock left
by a process that no longer runs on this host is taken over; a lock from another host is only
taken over by hand (delete the file), since its process cannot be checked from here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .files import WriteError, default_file_mode, fsync_dir

LOCK_NAME = ".stylegrid.lock"


class LockError(RuntimeError):
    """The folder is in use by another stylegrid process (or cannot hold a lock file)."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_stale(holder: dict | None, path: Path) -> bool:
    if holder is None:  # unreadable or cut short: stale once it is old enough to not be mid-write
        try:
            return time.time() - path.stat().st_mtime > 10
        except FileNotFoundError:
            return True
    return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", 0)))


def acquire(folder: Path, what: str) -> Path:
    """Create the lock file for ``what`` (e.g. ``sweep demo``); a LockError if another process holds it."""
    path = folder / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "what": what, "since": time.time()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, default_file_mode())
        except FileExistsError:
            holder = _holder(path)
            if _is_stale(holder, path):
                path.unlink(missing_ok=True)  # the holder is gone: take it over
                continue
            who = f"{holder.get('what', 'stylegrid')} (pid {holder.get('pid')} on {holder.get('host')})"
            if holder is None:
                who = "a process that is still writing the lock"
            raise LockError(
                f"{folder}: in use by {who}; wait for it to finish, or delete {path} if it is gone"
            ) from None
        except OSError as exc:
            raise LockError(str(WriteError(path, exc))) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_dir(folder)
        return path
    raise LockError(f"{folder}: could not take the lock {path} (another process keeps taking it)")


def release(path: Path) -> None:
    holder = _holder(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[Path]:
    path = acquire(folder, what)
    try:
        yield path
    finally:
        release(path)


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

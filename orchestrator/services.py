"""Is the MLflow store or the Ray cluster a command is about to use there at all? One check per
service, with a short named timeout, before any job starts: an unreachable server otherwise costs
minutes of silent retries (MLflow's HTTP client backs off for about four minutes; ``ray.init`` waits
for a GCS that never answers) before one line says what was wrong.

Every driver (sweep, catalog, training) goes through ``tracking.Tracker`` and
``runtime.start_ray``, which call these. A failure is a ``ServiceUnavailable``: one line naming the
URI or address, where it came from (the setting to change) and the reason.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from .errors import UserError

TIMEOUT_ENV = "STYLEGRID_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 5.0
SQLITE_HEADER = b"SQLite format 3\x00"
T = TypeVar("T")


class ServiceUnavailable(UserError):
    """The MLflow store or the Ray cluster cannot be used; the message says which and why."""


def connect_timeout() -> float:
    """Seconds a connection check waits (``STYLEGRID_CONNECT_TIMEOUT``, default 5)."""
    try:
        return max(0.1, float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (``postgresql://user:***@host/db``): what
    stylegrid prints or logs of a tracking URI."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return uri
    if not password:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def tcp_problem(host: str, port: int, timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at ``host:port`` within ``timeout`` s, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror as exc:
        return f"unknown host ({exc.strerror})"
    except OSError as exc:
        return exc.strerror or str(exc)


def sqlite_problem(path: Path) -> str | None:
    """Why the SQLite store at ``path`` cannot be used, or None (a missing file is created later,
    so its folder must be writable)."""
    if path.is_dir():
        return "is a directory, not an SQLite database file"
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot be created: {parent} is not writable"
        return None
    if not os.access(path, os.R_OK | os.W_OK):
        return "is read-only (MLflow writes to its store)"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"its folder {path.parent} is read-only (SQLite writes its journal there)"
    if path.stat().st_size:
        with open(path, "rb") as fh:
            if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                return "is not an SQLite database (its first bytes are not SQLite's header)"
        # read-write: a driver killed mid-write leaves a hot journal, which SQLite rolls back
        # on this first read; a read-only probe cannot and would call a sound store broken
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=connect_timeout())
            ) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            return f"is not a usable SQLite database ({exc})"
    return None


def http_problem(uri: str, timeout: float) -> str | None:
    """Why nothing answers HTTP at ``uri`` within ``timeout`` s, or None (any HTTP answer, even
    401 or 404, means a server is there: MLflow's own errors then say more)."""
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    problem = tcp_problem(parts.hostname or "localhost", port, timeout)
    if problem:
        return problem
    clean = parts._replace(netloc=f"{parts.hostname}:{port}").geturl().rstrip("/")
    try:
        urllib.request.urlopen(f"{clean}/health", timeout=timeout).close()  # noqa: S310 - http(s) only
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no HTTP answer within {timeout:g} s ({reason})"
    return None


def server_problem(uri: str) -> str | None:
    """Why the MLflow tracking server at ``uri`` does not answer now, or None (also None for
    a store that is not a server)."""
    if urlsplit(uri).scheme in ("http", "https"):
        return http_problem(uri, connect_timeout())
    return None


def lost_service(service: str, where: str, problem: str) -> str:
    """The line that says a service went away in the middle of a run."""
    return (
        f"lost the {service} {where} ({problem}): stopped; what finished before is recorded, and "
        f"running the same command again once the {service.split()[-1]} is back runs the rest"
    )


def lost_server(uri: str, problem: str) -> str:
    """The line that says a tracking server went away in the middle of a run."""
    return lost_service("MLflow tracking server", redact_uri(uri), problem)


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a Ray address (``127.0.0.1:6379``, ``ray://host:10001``); None when it
    names no port (``auto``, a bare host)."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    return None if parts.hostname is None or parts.port is None else (parts.hostname, parts.port)


class ClusterLost(ServiceUnavailable):
    """The Ray cluster a driver was using went away (its head, with the GCS)."""


class ClusterWatch:
    """Notices that the Ray cluster a driver waits on has gone: its GCS address is tried (a TCP
    connection) at most every ``every`` s; ``lost()`` is the line to stop with after two failed
    tries in a row, else None. Without it a driver whose head died waits about 60 s in silence
    until Ray's core ends the process with its own line and a dump of the raylet's log."""

    def __init__(self, address: str | None, every: float = 2.0, shown: str | None = None) -> None:
        self.where = host_port(address) if address else None
        self.address, self.every = shown or address, every
        self.failures, self.last = 0, time.monotonic()

    def lost(self) -> str | None:
        if self.where is None or time.monotonic() - self.last < self.every:
            return None
        self.last = time.monotonic()
        problem = self._try()
        self.failures = self.failures + 1 if problem else 0
        if self.failures < 2:
            return None
        return lost_service("Ray cluster", str(self.address), problem)

    def gone(self) -> str | None:
        """The line to stop with if the cluster is not there now (one try): whether a failure
        that Ray reported in its own words (an actor unavailable, a socket closed) was the loss."""
        problem = None if self.where is None else self._try()
        return lost_service("Ray cluster", str(self.address), problem) if problem else None

    def _try(self) -> str | None:
        """One TCP connection to the GCS: None when it answers, else why not."""
        return tcp_problem(*self.where, min(connect_timeout(), 2.0))


def cluster_watch(init_kwargs: Mapping[str, object] | None = None) -> ClusterWatch:
    """A ``ClusterWatch`` of the cluster this process has joined (call after ``ray.init``), named
    the way the user gave it (``RAY_ADDRESS=127.0.0.1:6379``), not the address Ray resolved."""
    import ray

    found = ray_address(init_kwargs)
    shown = f"{found[0]} (from {found[1]})" if found and found[0] not in ("auto", "local") else None
    return ClusterWatch(ray.get_runtime_context().gcs_address, shown=shown)


def watched(items: Iterable[T], watch: ClusterWatch, poll: float = 1.0) -> Iterator[T]:
    """``items`` (an iterator that waits inside Ray: a catalog's Ray Data stream), with ``watch``
    tried while it waits: ``ClusterLost`` within seconds of the cluster's loss.

    The items are taken in a thread of their own, so the wait can end without them: an
    interrupt raised inside Ray Data's iterator runs its clean-up, which calls the lost cluster
    and waits for it (about 60 s, then Ray's core ends the process). On a loss the thread is left
    waiting; on Ctrl-C or an early stop it stops after its current item and closes ``items``
    itself, as the interrupted loop would have."""
    box: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    end = object()

    def take() -> None:
        try:
            for item in items:
                box.put((item, None))
                if stop.is_set():
                    break
            box.put((end, None))
        except BaseException as exc:  # handed to the consumer, raised there
            box.put((end, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    taker = threading.Thread(target=take, name="stylegrid-watched", daemon=True)
    taker.start()
    try:
        while True:
            if line := watch.lost():
                raise ClusterLost(line)
            try:
                item, error = box.get(timeout=poll)
            except queue.Empty:
                continue
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    except ClusterLost:
        raise
    except BaseException:  # Ctrl-C, an error or an early stop of the consumer: stop the taker
        stop.set()
        taker.join()
        raise


def check_tracking_store(uri: str, setting: str) -> None:
    """Raise ServiceUnavailable if the MLflow store ``uri`` cannot be used. ``setting`` names
    where the URI came from, e.g. "MLFLOW_TRACKING_URI" or "the spec's tracking_uri"."""
    scheme = urlsplit(uri).scheme
    timeout = connect_timeout()
    if scheme in ("http", "https"):
        problem = http_problem(uri, timeout)
        if problem:
            raise ServiceUnavailable(
                f"cannot reach the MLflow tracking server {redact_uri(uri)} (from {setting}): {problem}; "
                f"start it, or change {setting} (timeout {timeout:g} s, {TIMEOUT_ENV})"
            )
    elif scheme == "sqlite":
        path = uri.split("sqlite:///", 1)[1] if uri.startswith("sqlite:///") else ""
        problem = sqlite_problem(Path(path)) if path and path != ":memory:" else None
        if problem:
            raise ServiceUnavailable(f"the MLflow store {path} (from {setting}) {problem}")


def ray_address(
    init_kwargs: Mapping[str, object] | None = None, env: Mapping[str, str] = os.environ
) -> tuple[str, str] | None:
    """(address, where it came from) of the cluster ``ray.init`` would join, or None for an
    embedded Ray (or ``auto``, which Ray resolves itself)."""
    address = (init_kwargs or {}).get("address")
    if address:
        return str(address), "address"
    address = env.get("RAY_ADDRESS", "").strip()
    return (address, "RAY_ADDRESS") if address and address not in ("auto", "local") else None


def check_ray_address(
    init_kwargs: Mapping[str, object] | None = None, env: Mapping[str, str] = os.environ
) -> None:
    """Raise ServiceUnavailable if the cluster ``ray.init`` would join does not answer."""
    found = ray_address(init_kwargs, env)
    if found is None:
        return
    address, setting = found
    if address in ("auto", "local"):
        return
    where = host_port(address)
    if where is None:
        return  # not host:port: left to Ray, which says what it wants
    timeout = connect_timeout()
    problem = tcp_problem(*where, timeout)
    if problem:
        raise ServiceUnavailable(
            f"no Ray cluster at {address} (from {setting}): {problem}; start one (ray start --head) "
            f"or unset {setting} to run on an embedded Ray (timeout {timeout:g} s, {TIMEOUT_ENV})"
        )

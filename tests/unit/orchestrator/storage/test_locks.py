"""The output folder's lock under contention: 8 processes start at once, 20 times, on a free
folder, on a lock file left by a dead process and on an empty one (a holder caught mid-write):
every time exactly one holds it and the others are refused with one line naming the holder."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from stylegrid.orchestrator.storage.lock import LOCK_NAME, LockError, acquire, folder_lock, release

PROCESSES, TRIALS = 8, 20


def _contender(folder: str, start, attempted, done, results) -> None:
    """One process: each trial, wait for the start, try the lock, report, hold it until every
    process has tried, then let it go."""
    for trial in range(TRIALS):
        start.wait()
        try:
            path = acquire(Path(folder), f"contender {os.getpid()}")
            results.put((trial, "held", ""))
        except LockError as exc:
            path = None
            results.put((trial, "refused", str(exc)))
        attempted.wait()
        if path is not None:
            release(path)
        done.wait()


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_eight_processes_at_once_always_give_exactly_one_holder(tmp_path):
    ctx = mp.get_context("spawn")
    start, attempted, done = (ctx.Barrier(PROCESSES + 1) for _ in range(3))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_contender, args=(str(tmp_path), start, attempted, done, results), daemon=True)
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    lock = tmp_path / LOCK_NAME
    dead = {"host": socket.gethostname(), "pid": _dead_pid(), "what": "a killed sweep"}
    began = time.monotonic()
    try:
        for trial in range(TRIALS):
            kind = ("free", "stale", "empty")[trial % 3]
            if kind == "stale":
                lock.write_text(json.dumps(dead))
            elif kind == "empty":
                lock.write_text("")
            start.wait(timeout=60)
            outcomes = [results.get(timeout=60) for _ in range(PROCESSES)]
            attempted.wait(timeout=60)
            done.wait(timeout=60)
            assert {t for t, _, _ in outcomes} == {trial}
            held = [o for o in outcomes if o[1] == "held"]
            assert len(held) == 1, (trial, kind, outcomes)
            for _, _, message in outcomes:
                if message:
                    assert message.count("\n") == 0 and "in use by contender" in message, message
            assert not lock.exists()  # the holder deleted it when it let go
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert time.monotonic() - began < 30


def test_an_empty_lock_file_is_not_an_error_and_a_live_one_names_its_holder(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with folder_lock(tmp_path, "stylegrid sweep a"):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["what"] == "stylegrid sweep a"
        # a second process is refused, naming the first
        proc = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from stylegrid.orchestrator.storage.lock import acquire;"
             f"acquire(Path({str(tmp_path)!r}), 'b')"],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert proc.returncode == 1 and f"stylegrid sweep a (pid {os.getpid()}" in proc.stderr


def test_a_lock_naming_another_host_is_left_to_its_owner(tmp_path):
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"host": "another-host", "pid": 1, "what": "stylegrid sweep x"})
    )
    with pytest.raises(LockError, match="another-host.*delete"):
        acquire(tmp_path, "new")
    assert (tmp_path / LOCK_NAME).exists()


def test_claiming_an_output_makes_it_locks_it_and_clears_what_a_killed_run_left(tmp_path):
    from stylegrid.orchestrator.errors import UserError
    from stylegrid.orchestrator.storage.lock import claim_output

    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    left = out / "images" / ".a.png.x1y2.tmp"  # write_atomic's temporary, of a killed run
    left.write_bytes(b"half")
    with claim_output(out, "first", ("images",)):
        assert not left.exists() and (out / LOCK_NAME).exists()
        with pytest.raises(LockError, match="first"), claim_output(out, "second"):
            pass
    with claim_output(tmp_path / "new" / "folder", "third"):
        assert (tmp_path / "new" / "folder").is_dir()
    (tmp_path / "a_file").write_text("x")
    with (
        pytest.raises(UserError, match="a_file: exists and is not a folder"),
        claim_output(tmp_path / "a_file", "x"),
    ):
        pass
    with claim_output("s3://bucket/out", "an object store"):  # no lock, nothing to clear, no request made
        pass

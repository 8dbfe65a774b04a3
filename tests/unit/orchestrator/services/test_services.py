"""The watch that notices a Ray cluster lost mid-run (``orchestrator/services.py``), on a socket
of this test's own: what every workflow's driver relies on (``tests/system/test_lost_cluster.py``
runs them against a real cluster that goes away)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from stylegrid.orchestrator.services import ClusterLost, ClusterWatch, watched


def listening() -> tuple[socket.socket, str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def test_a_cluster_watch_says_the_cluster_is_gone_after_two_failed_tries():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    watch = ClusterWatch(address, every=0.0)
    assert watch.lost() is None  # there
    listener.close()
    assert watch.lost() is None  # one failed try is not yet a loss
    line = watch.lost()
    assert line.startswith(f"lost the Ray cluster {address} (connection refused): stopped")
    assert "running the same command again" in line
    assert watch.gone().startswith(f"lost the Ray cluster {address}")  # one try, no waiting for a second
    assert ClusterWatch(None).lost() is None


def test_a_watched_stream_ends_within_seconds_of_a_lost_cluster_without_closing_what_waits_on_it():
    listener, address = listening()
    never = threading.Event()
    closed = []

    def stream():  # one batch, then a wait that only the lost cluster would have ended
        try:
            yield "batch 1"
            never.wait()
            yield "never"
        finally:
            closed.append(True)

    watch = ClusterWatch(address, every=0.1)
    got, start = [], time.monotonic()
    with pytest.raises(ClusterLost, match=f"lost the Ray cluster {address}"):
        for item in watched(stream(), watch, poll=0.05):
            got.append(item)
            listener.close()
    assert got == ["batch 1"] and time.monotonic() - start < 5
    assert not closed  # the stream's clean-up would call the lost cluster: it is left waiting
    never.set()


def test_a_watched_stream_passes_items_and_errors_and_closes_the_stream_when_stopped_early():
    listener, address = listening()
    watch = ClusterWatch(address, every=0.1)
    assert list(watched(iter(range(5)), watch, poll=0.05)) == [0, 1, 2, 3, 4]

    def failing():
        yield 1
        raise ValueError("a bad image")

    with pytest.raises(ValueError, match="a bad image"):
        list(watched(failing(), watch))
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    for item in watched(endless(), watch):
        if item == 3:
            break  # the consumer stops early (Ctrl-C does the same): the stream is closed for it
    assert closed.wait(5)
    listener.close()

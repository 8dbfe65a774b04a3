"""Helpers the benchmark scripts share: run a child process and read its own peak memory."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the pair every speed benchmark stylizes
CONTENT = REPO / "samples" / "content" / "tubingen.jpg"
STYLE = REPO / "samples" / "style" / "starry_night.jpg"


def load_pair(size: int):
    """The content at ``size`` px on the long side and the style at the default style size, as
    tensors."""
    from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE
    from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor

    return to_tensor(resize_to(read_image(CONTENT), size)), load_image(STYLE, max_side=DEFAULT_STYLE_SIZE)


def spawn(cmd: list[str], env: dict | None = None) -> tuple[dict, float]:
    """Run a command in the repository (``env``: variables added to this one's); return its
    output and its own peak resident memory in MB (``os.wait4``: the child's maximum RSS, not the
    parent's)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(
            cmd, stdout=out, stderr=err, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        )
        _, status, usage = os.wait4(p.pid, 0)
        out.seek(0)
        err.seek(0)
        result = {
            "returncode": os.waitstatus_to_exitcode(status),
            "stdout": out.read(),
            "stderr": err.read(),
        }
    result["wall"] = time.perf_counter() - start
    return result, usage.ru_maxrss / 1024.0


def last_row(proc: dict, what: str) -> dict:
    """The JSON row a worker printed: the last line of its stdout that is a JSON object. Ray may
    forward a worker's log line to the driver's stdout after the row (seen in CI), so the row is
    not always the last line."""
    import json

    for line in reversed(proc["stdout"].splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                return row
    raise RuntimeError(
        f"{what} printed no JSON row; its stdout ends:\n{proc['stdout'][-2000:]}\nits stderr ends:\n{proc['stderr'][-2000:]}"
    )

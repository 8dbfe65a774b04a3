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
    from algorithms.base import DEFAULT_STYLE_SIZE
    from orchestrator.images import load_image, read_image, resize_to, to_tensor

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

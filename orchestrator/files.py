"""Writing files so that a crash never leaves half of one behind."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def safe_name(text: str, limit: int = 40, keep_dots: bool = False) -> str:
    """A file-name fragment with no path separators, dots-only names or odd characters
    (``keep_dots``: dots inside the name stay, as in ``2.5``)."""
    allowed = r"[^A-Za-z0-9_.-]+" if keep_dots else r"[^A-Za-z0-9_-]+"
    cleaned = re.sub(allowed, "_", text).strip("_.")
    return cleaned[:limit].rstrip(".") or "x"

"""Where a result came from: stylegrid's version, the git commit of its source, the host.

Recorded in every results row (``code_version``) and as tags of every MLflow run, so that rows
from before and after a code change can be told apart. The commit is read once per process with
``git`` from the folder this package lives in; a copy without ``.git`` (an installed wheel, a Ray
working directory uploaded without it) records the version alone.
"""

from __future__ import annotations

import functools
import socket
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Provenance:
    version: str  # the installed package's version, "unknown" when not installed
    commit: str  # the full git commit, "" when the source is not a git checkout
    dirty: bool  # uncommitted changes to tracked files
    host: str

    @property
    def code_version(self) -> str:
        """``0.1.0+g1a2b3c4d5e6f`` (``.dirty`` appended when there were uncommitted changes)."""
        if not self.commit:
            return self.version
        return f"{self.version}+g{self.commit[:12]}{'.dirty' if self.dirty else ''}"

    def tags(self) -> dict[str, str]:
        """MLflow tags (``mlflow.source.git.commit`` is the one MLflow's UI shows)."""
        tags = {"stylegrid.version": self.version, "stylegrid.code_version": self.code_version}
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
            tags["stylegrid.git_dirty"] = str(self.dirty).lower()
        return tags


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


@functools.cache
def provenance() -> Provenance:
    try:
        version = metadata.version("stylegrid")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = _git("rev-parse", "HEAD") if (SOURCE / ".git").exists() else ""
    dirty = bool(commit and _git("status", "--porcelain", "--untracked-files=no"))
    return Provenance(version, commit, dirty, socket.gethostname())

"""How long a command-line answer takes before any work: ``stylegrid --help``, ``stylegrid
--version`` and a usage error, beside the CLIs of the two services stylegrid drives (``mlflow
--help``, ``ray --help``) and a bare ``python -c pass``, in one run, as medians of N fresh processes
and as ratios to ``mlflow --help``. stylegrid's subcommands load PyTorch, Ray, MLflow or pandas only
when they need them (``tests/unit/orchestrator/cli/test_cli_grammar.py`` checks that ``--help`` loads none of them).

    python benchmarks/cli_startup.py               # 7 repetitions
    python benchmarks/cli_startup.py --smoke-test  # 1 repetition: checks that it runs
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def commands() -> dict[str, list[str]]:
    python = [sys.executable]
    found = {
        "python -c pass": [*python, "-c", "pass"],
        "stylegrid --help": [*python, "-m", "stylegrid", "--help"],
        "stylegrid sweep --help": [*python, "-m", "stylegrid", "sweep", "--help"],
        "stylegrid --version": [*python, "-m", "stylegrid", "--version"],
        "stylegrid run (usage error)": [*python, "-m", "stylegrid", "run", "--algorithm", "gatis",
                                        "--content", "c.jpg", "--style", "s.jpg", "-o", "o.png"],
    }  # fmt: skip
    for peer in ("mlflow", "ray"):
        exe = shutil.which(peer, path=str(BIN)) or shutil.which(peer)
        if exe:
            found[f"{peer} --help"] = [exe, "--help"]
    return found


def seconds(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke-test", action="store_true", help="one repetition")
    args = parser.parse_args()
    repeat = 1 if args.smoke_test else args.repeat
    rows = {
        name: statistics.median(seconds(argv) for _ in range(repeat)) for name, argv in commands().items()
    }
    peer = rows.get("mlflow --help")
    print(f"median of {repeat} fresh processes; ratio to mlflow --help")
    print(f"{'command':32s} {'seconds':>8s} {'ratio':>6s}")
    for name, value in rows.items():
        ratio = f"{value / peer:6.2f}" if peer else "     -"
        print(f"{name:32s} {value:8.3f} {ratio}")


if __name__ == "__main__":
    main()

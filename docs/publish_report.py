"""Copy a sweep's report into docs/ without the sweep: the page, its thumbnails and charts, with
each picture's link (to the full image in the sweep's folder, which docs/ does not hold) pointed at
its thumbnail instead, and the folder's size checked against a limit.

    python docs/publish_report.py runs/tune_mrf docs/sweeps/tune_mrf      # at most 3 MB
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

LIMIT_MB = 3.0
# a grid cell: <a href="../images/..."><img src="thumbs/<job>.jpg" ...
CELL_LINK = re.compile(r'<a href="\.\./[^"]*"><img src="(thumbs/[^"]+)"')


def relink(page: str) -> str:
    """The report page with every link to a full image pointed at the cell's own thumbnail."""
    return CELL_LINK.sub(lambda m: f'<a href="{m.group(1)}"><img src="{m.group(1)}"', page)


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


STANDALONE = "standalone.html"  # orchestrator.report.html.STANDALONE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="the sweep's output folder (its report/ is copied)")
    parser.add_argument("dest", help="the folder to write (replaced)")
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    args = parser.parse_args()
    source, dest = Path(args.sweep) / "report", Path(args.dest)
    if not (source / "index.html").is_file():
        print(f"{source}: no report here (stylegrid report {args.sweep} writes it)", file=sys.stderr)
        return 1
    if dest.exists():
        shutil.rmtree(dest)
    # the folder is the report: its one-file copy for MLflow (every picture inline) would double it
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(STANDALONE))
    page = dest / "index.html"
    page.write_text(relink(page.read_text(encoding="utf-8")), encoding="utf-8")
    size = folder_mb(dest)
    if size > args.limit_mb:
        print(f"{dest}: {size:.1f} MB, over the {args.limit_mb} MB limit", file=sys.stderr)
        return 1
    print(f"{dest}: {size:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

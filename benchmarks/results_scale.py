"""Planning and resuming a sweep whose results folder holds 100,000 rows: the part files against
one file per job (the layout before part files, which every start read file by file), in one run.

A spec of 2 contents x 2 styles x 25,000 Gatys style weights (100,000 jobs) and a finished row
for every job are made up front (the rows are synthetic: status ok, the job's real id and
parameters). The same rows are then laid out two ways:

* ``loose``: one Parquet file per job in ``rows/`` (what a sweep left before part files);
* ``parts``: the same rows gathered by ``results.compact`` into part files.

For each layout it times, as a user runs them, ``stylegrid plan`` (reads every row to count what
is done) and ``stylegrid sweep`` with nothing left to run (gathers loose rows into a part, reads
the rows, opens the MLflow parent run, writes results.parquet and the report), each in a fresh
process, and prints the seconds and the loose / parts ratio.

    python benchmarks/results_scale.py                 # 100,000 jobs (about 10 minutes, most of it writing the loose files)
    python benchmarks/results_scale.py --smoke-test    # 200 jobs, plan and resume only: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import spawn  # noqa: E402

CONTENTS = sorted((REPO / "samples" / "content").glob("*.jpg"))[:2]
STYLES = sorted((REPO / "samples" / "style").glob("*.jpg"))[:2]


def write_spec(path: Path, n_jobs: int) -> Path:
    """2 contents x 2 styles x n/4 style weights: ``n_jobs`` jobs (a multiple of 4)."""
    weights = [round(1 + i / 1000, 4) for i in range(n_jobs // 4)]
    path.write_text(
        f"name: {path.stem}\n"
        f"content: {json.dumps([str(c) for c in CONTENTS])}\n"
        f"style: {json.dumps([str(s) for s in STYLES])}\n"
        f"algorithms: [{{name: gatys, grid: {{style_weight: {json.dumps(weights)}}}}}]\n"
        "seeds: [0]\nsize: 64\nsteps: 1\n"
    )
    return path


def finished_rows(spec: Path):
    """A row with status ok for every job of ``spec`` (the sink's own rows, of a made-up outcome),
    as one table with the results schema."""
    import pyarrow as pa
    from stylegrid.orchestrator.results.schema import result_schema
    from stylegrid.orchestrator.specs.sweep import load_spec
    from stylegrid.orchestrator.sweep.plan import plan_jobs
    from stylegrid.orchestrator.sweep.sink import result_row
    from stylegrid.orchestrator.sweep.worker import JobOutcome

    jobs = plan_jobs(load_spec(spec), str(spec)).jobs
    rows = [
        result_row(j, JobOutcome(j.job_id, "ok", final_losses={"total": 1.0}, wall_seconds=1.0),
                   "synthetic", spec.stem, "", "", 1)
        for j in jobs
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=result_schema())


def lay_out_loose(table, out: Path) -> None:
    """One file per job, as write_row leaves them (written here without its fsync: setup only)."""
    import pyarrow.parquet as pq
    from stylegrid.orchestrator.results.rows import rows_dir

    rows_dir(out).mkdir(parents=True)
    for i in range(table.num_rows):
        row = table.slice(i, 1)
        pq.write_table(row, rows_dir(out) / f"{row.column('job_id')[0].as_py()}.parquet")


def timed(*args: str) -> float:
    """Seconds of ``stylegrid ARGS`` in a fresh process. (Not its peak memory: a forked child's
    maximum RSS starts at this process's, which holds the rows it made.)"""
    result, _ = spawn([sys.executable, "-m", "stylegrid", *args])
    if result["returncode"] != 0:
        raise SystemExit(f"stylegrid {' '.join(args)} failed:\n{result['stderr'][-2000:]}")
    return result["wall"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument(
        "--smoke-test", action="store_true", help="200 jobs, plan and resume only: checks that it runs"
    )
    args = ap.parse_args()
    n = 200 if args.smoke_test else args.jobs
    n -= n % 4

    from stylegrid.orchestrator.results.rows import compact, load_rows, part_files

    with tempfile.TemporaryDirectory(prefix="results_scale_") as tmp:
        work = Path(tmp)
        spec = write_spec(work / "scale.yaml", n)
        start = time.perf_counter()
        table = finished_rows(spec)
        loose, parts = work / "loose", work / "parts"
        lay_out_loose(table, loose)
        del table  # the commands measured below get the machine's memory
        shutil.copytree(loose, parts)
        compact(parts)
        setup = time.perf_counter() - start
        assert load_rows(parts).table.num_rows == n and len(part_files(parts)) == 1
        print(f"{n:,} jobs, {n:,} finished rows; setup {setup:.0f} s (the rows, {n:,} files, one part)")

        steps = ("plan", "resume") if args.smoke_test else ("plan", "resume", "resume again")
        results = {}
        for name, out in (("loose", loose), ("parts", parts)):
            results[name] = {
                "plan": timed("plan", str(spec), "--output", str(out)),
                # nothing left to run: the start (gathering loose rows included) and the end
                "resume": timed("sweep", str(spec), "--output", str(out), "--quiet"),
            }
            if "resume again" in steps:  # the loose folder has been gathered into a part by now
                results[name]["resume again"] = timed("sweep", str(spec), "--output", str(out), "--quiet")
            assert load_rows(out).table.num_rows == n

    print(f"\n{'seconds':<14}{'loose':>10}{'parts':>10}{'loose / parts':>16}")
    for step in steps:
        a, b = results["loose"][step], results["parts"][step]
        print(f"{step:<14}{a:>10.1f}{b:>10.1f}{a / b:>15.1f}x")
    print(
        "\nplan: reads every row to count what is done; resume: `stylegrid sweep` with nothing to run"
        " (the loose folder's first resume gathers its rows into a part, so its second reads one part)"
    )


if __name__ == "__main__":
    main()

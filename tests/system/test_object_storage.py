"""Sweep outputs in an object store: the local copy and the store kept in step (``mirror.py``),
and a real sweep into moto's S3 server that resumes from the store on a "fresh machine"."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import BUCKET, REPO, SAMPLES
from stylegrid.orchestrator.results.rows import compact, load_rows, write_row
from stylegrid.orchestrator.sweep.mirror import Mirror, working_copy


def row(job_id: str, loss: float) -> dict:
    return {"job_id": job_id, "status": "ok", "loss_total": loss}


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_store_gets_uploads_before_deletes_and_its_parts_win_at_the_start(tmp_path):
    store, copy = tmp_path / "store", tmp_path / "copy"  # any location works; S3 below
    mirror = Mirror(str(store), copy)
    mirror.pull_rows()  # nothing there yet
    for job in ("a", "b"):
        mirror.push(write_row(copy, row(job, 1.0)))  # each row uploaded as written
    assert names(store / "rows") == ["a.parquet", "b.parquet"]
    compact(copy)
    mirror.sync_rows()  # the part up, then the loose rows gone
    assert names(store / "rows") == ["part-000001.parquet"]

    # another machine: a fresh copy from the store, one more job, then a crash before any sync
    other = Mirror(str(store), tmp_path / "other")
    other.pull_rows()
    other.push(write_row(other.local, row("c", 2.0)))
    compact(other.local)  # gathered there, never uploaded
    assert names(store / "rows") == ["c.parquet", "part-000001.parquet"]

    # the first machine starts again: the store's rows are the truth, its loose row is a finished job
    write_row(copy, row("d", 3.0))  # written here before its upload (a crash)
    mirror.pull_rows()
    assert sorted(load_rows(copy).table.column("job_id").to_pylist()) == ["a", "b", "c", "d"]
    compact(copy)
    mirror.sync_rows()
    (copy / "images").mkdir()
    (copy / "images" / "lost.png").write_bytes(b"png")  # an upload that failed while it ran
    assert mirror.push_missing("images") == 1 and (store / "images" / "lost.png").read_bytes() == b"png"
    assert mirror.push_missing("images") == 0
    assert names(store / "rows")[-1] == "part-000002.parquet" and not [
        n for n in names(store / "rows") if not n.startswith("part-")
    ]  # the loose rows are gone from the store once their part is there
    tables = [pq.read_table(p) for p in (store / "rows").iterdir()]
    assert sorted(pa.concat_tables(tables, promote_options="default").column("job_id").to_pylist()) == [
        "a", "b", "c", "d"
    ]  # fmt: skip


def test_working_copies_are_distinct_per_uri(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEGRID_CACHE", str(tmp_path))
    a, b = working_copy("s3://bucket/sweeps/a"), working_copy("s3://bucket/sweeps/a/")
    assert a.parent == tmp_path / "outputs" and a.name.startswith("bucket_sweeps_a-")
    assert a == b and working_copy("gs://bucket/sweeps/a") != a  # a trailing / names the same folder


SPEC = """\
name: tiny
content: [{content}/tubingen.jpg, {content}/chelsea.jpg]
style: [{style}/starry_night.jpg]
algorithms: [{{name: gatys}}]
size: 32
style_size: 32
steps: 2
output: s3://{bucket}/sweeps/tiny
tracking_uri: sqlite:///{db}
"""


@pytest.mark.slow
def test_a_sweep_into_s3_resumes_from_the_store_on_a_fresh_machine(s3, tmp_path, monkeypatch, capsys):
    from stylegrid.orchestrator.cli.main import main
    from stylegrid.orchestrator.sweep.driver import plan, run_sweep

    spec = tmp_path / "tiny.yaml"
    db = tmp_path / "mlflow.db"
    spec.write_text(textwrap.dedent(SPEC.format(content=SAMPLES / "content", style=SAMPLES / "style",
                                                bucket=BUCKET, db=db)))  # fmt: skip
    for key, value in {**s3.env, "STYLEGRID_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)  # the driver runs here; the jobs' workers never touch S3

    first = run_sweep(str(spec), quiet=True)
    assert (first.ok, first.failed, first.published) == (2, 0, f"s3://{BUCKET}/sweeps/tiny")
    assert f"s3://{BUCKET}/sweeps/tiny/results.parquet" in dict(first.summary().places)["results"]
    fs = s3.fs()

    def read(key: str) -> bytes:
        with fs.open_input_file(f"{BUCKET}/sweeps/tiny/{key}") as f:
            return f.read()

    results = pq.read_table(io.BytesIO(read("results.parquet"))).to_pandas()
    assert len(results) == 2 and set(results.status) == {"ok"}
    for image in results.output_image:  # every image in the store, whole
        assert read(image).startswith(b"\x89PNG")
    assert b"<html" in read("report/index.html").lower()
    assert b"missing image" not in read("report/index.html")
    from pyarrow.fs import FileSelector

    in_rows = [i.path.rsplit("/", 1)[1] for i in fs.get_file_info(FileSelector(f"{BUCKET}/sweeps/tiny/rows"))]
    assert len(in_rows) == 1 and in_rows[0].startswith("part-")  # gathered, no loose row left

    shutil.rmtree(tmp_path / "cache")  # a fresh machine: nothing local
    again = run_sweep(str(spec), quiet=True)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 2)
    assert b"missing image" not in read("report/index.html")  # made again here, from the thumbnails
    assert f"2 jobs, 2 already done, 0 to run -> s3://{BUCKET}/sweeps/tiny" in plan(str(spec))
    capsys.readouterr()
    assert main(["results", f"s3://{BUCKET}/sweeps/tiny"]) == 0
    assert capsys.readouterr().out.count(" ok ") == 2
    assert main(["report", f"s3://{BUCKET}/sweeps/tiny"]) == 2  # made by the sweep, not here
    assert f"s3://{BUCKET}/sweeps/tiny/report/index.html" in capsys.readouterr().err


def test_a_sweep_into_an_object_store_needs_a_tracking_store(tmp_path):
    spec = tmp_path / "tiny.yaml"
    text = SPEC.format(content=SAMPLES / "content", style=SAMPLES / "style", bucket=BUCKET, db="x")
    spec.write_text(text.replace("tracking_uri: sqlite:///x\n", ""))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-m", "stylegrid", "sweep", str(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]  # an invalid spec
    assert "the MLflow store cannot live in an object store" in proc.stderr and "Traceback" not in proc.stderr

"""Faults a careful user meets (reliability, third pass): a tracking server or Ray cluster that is
not there, a broken MLflow store, a catalog whose input holds its output, a truncated row file,
outputs that cannot be written, absurd step counts, a closed pipe. Each ends in one line within
seconds, with the exit status of the README's table, and nothing already written is lost."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, cli_in_process
from stylegrid.orchestrator.services import ServiceUnavailable, check_ray_address, check_tracking_store

SAMPLES = REPO / "samples"
CHELSEA = SAMPLES / "content" / "chelsea.jpg"
STARRY = SAMPLES / "style" / "starry_night.jpg"


def stylegrid(*args, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stylegrid", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, env=full, timeout=300, **kwargs,
    )  # fmt: skip


def one_line(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "STYLEGRID_DEBUG" not in proc.stderr, (
        proc.stderr
    )
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_spec(folder: Path) -> Path:
    spec = folder / "tiny.yaml"
    spec.write_text(
        f"name: tiny\ncontent: [{CHELSEA}]\nstyle: [{STARRY}]\nalgorithms: [{{name: gatys}}]\nsize: 32\nsteps: 2\n"
    )
    return spec


def test_an_unreachable_tracking_server_is_one_line_within_seconds(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    env = {"MLFLOW_TRACKING_URI": uri}
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(CHELSEA.read_bytes())
    began = time.monotonic()
    sweep = one_line(stylegrid("sweep", tiny_spec(tmp_path), "-o", tmp_path / "out", "-q", env=env), 1)
    catalog = one_line(
        stylegrid(
            "stylize-catalog",
            "--input",
            photos,
            "--style",
            STARRY,
            "-o",
            tmp_path / "cat",
            "--size",
            32,
            "-q",
            env=env,
        ),  # fmt: skip
        1,
    )
    assert time.monotonic() - began < 60  # two processes importing torch; minutes before
    for line in (sweep, catalog):
        assert f"cannot reach the MLflow tracking server {uri} (from MLFLOW_TRACKING_URI)" in line
        assert "connection refused" in line
    assert not (tmp_path / "out" / "rows").exists() or not list((tmp_path / "out" / "rows").iterdir())


def test_a_server_that_accepts_but_never_answers_times_out_as_named(tmp_path, monkeypatch):
    with socket.socket() as silent:  # listens (the kernel accepts), never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setenv("STYLEGRID_CONNECT_TIMEOUT", "1")
        began = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=r"no HTTP answer within 1 s.*STYLEGRID_CONNECT_TIMEOUT"):
            check_tracking_store(f"http://alice:secret@127.0.0.1:{port}", "the spec's tracking_uri")
        assert time.monotonic() - began < 5
    with pytest.raises(ServiceUnavailable) as err:
        check_tracking_store(f"http://alice:secret@127.0.0.1:{closed_port()}", "x")
    assert "secret" not in str(err.value) and "alice:***@" in str(err.value)


def test_a_ray_address_where_no_cluster_listens_is_one_line(tmp_path):
    address = f"127.0.0.1:{closed_port()}"
    line = one_line(
        stylegrid("sweep", tiny_spec(tmp_path), "-o", tmp_path / "out", "-q", env={"RAY_ADDRESS": address}), 1
    )
    assert f"no Ray cluster at {address} (from RAY_ADDRESS): connection refused" in line
    assert "unset RAY_ADDRESS" in line
    with pytest.raises(ServiceUnavailable, match="ray://127.0.0.1"):
        check_ray_address({"address": f"ray://127.0.0.1:{closed_port()}"}, env={})
    check_ray_address(None, env={})  # no address: an embedded Ray, nothing to check
    check_ray_address(None, env={"RAY_ADDRESS": "auto"})


def test_a_broken_mlflow_store_names_the_file_and_the_reason(tmp_path):
    folder = tmp_path / "out"
    (folder / "mlflow.db").mkdir(parents=True)
    line = one_line(stylegrid("sweep", tiny_spec(tmp_path), "-o", folder, "-q"), 1)
    assert f"the MLflow store {folder / 'mlflow.db'}" in line and "is a directory" in line
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ServiceUnavailable, match="garbage.db.*not an SQLite database"):
        check_tracking_store(f"sqlite:///{garbage}", "MLFLOW_TRACKING_URI")
    check_tracking_store(f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}", "x")  # created later: fine
    if os.geteuid() != 0:  # root writes anyway
        ro = tmp_path / "ro.db"
        ro.write_bytes(b"")
        ro.chmod(0o444)
        with pytest.raises(ServiceUnavailable, match="read-only"):
            check_tracking_store(f"sqlite:///{ro}", "x")


def test_a_store_left_mid_transaction_by_a_killed_driver_is_usable(tmp_path):
    """A driver SIGKILLed while MLflow writes leaves a hot journal beside the store; SQLite rolls
    it back on the next read-write open. The check before a sweep must not call that store broken
    (a read-only probe cannot roll back and fails with 'attempt to write a readonly database')."""
    import sqlite3

    store = tmp_path / "mlflow.db"
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.execute("CREATE TABLE runs (name TEXT)")
        db.executemany("INSERT INTO runs VALUES (?)", [("a" * 500,)] * 2000)
        db.commit()
    killed_mid_write = (
        "import os, signal, sqlite3\n"
        f"db = sqlite3.connect({str(store)!r}, isolation_level=None)\n"
        "db.execute('PRAGMA cache_size=1')\n"  # dirty pages spill into the file: the journal is hot
        "db.execute('BEGIN')\n"
        "db.execute(\"UPDATE runs SET name = 'b'\")\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed_mid_write], check=False, timeout=60)
    assert (tmp_path / "mlflow.db-journal").stat().st_size > 0
    check_tracking_store(f"sqlite:///{store}", "x")
    with contextlib.closing(sqlite3.connect(store)) as db:  # the half-done update was rolled back
        assert db.execute("SELECT count(*) FROM runs WHERE name LIKE 'a%'").fetchone() == (2000,)


def test_a_catalog_never_reads_its_own_outputs(tmp_path):
    from stylegrid.orchestrator.catalog.manifest import CatalogError, list_sources, own_outputs

    folder = tmp_path / "photos"
    (folder / "images" / "starry-1").mkdir(parents=True)
    (folder / "mlartifacts").mkdir()
    (folder / "a.jpg").write_bytes(CHELSEA.read_bytes())
    (folder / "images" / "starry-1" / "a-1.png").write_bytes(b"x")
    (folder / "mlartifacts" / "contact_sheet.jpg").write_bytes(b"x")
    own = own_outputs(str(folder))
    assert list_sources(str(folder), exclude=own) == [str(folder / "a.jpg")]  # run twice: same sources
    (folder / "a.jpg").unlink()
    with pytest.raises(CatalogError, match="one of the catalog's own outputs"):
        list_sources(str(folder), exclude=own)
    # through the command line: the input folder is the output folder and holds only outputs
    line = one_line(
        cli_in_process("stylize-catalog", "--input", folder, "--style", STARRY, "-o", folder, "-q"), 1
    )
    assert "every image found is one of the catalog's own outputs" in line


def test_a_truncated_row_file_is_named_and_set_aside_not_shown_as_a_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from stylegrid.orchestrator.results.rows import UNREADABLE_DIR, load_rows, rows_dir, set_aside
    from stylegrid.orchestrator.results.schema import result_schema

    out = tmp_path / "out"
    rows_dir(out).mkdir(parents=True)
    row = {n: None for n in result_schema().names}
    row.update(job_id="j1", status="ok", algorithm="gatys", content="a.jpg", style="s.jpg")
    good = rows_dir(out) / "part-000001.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=result_schema()), good)
    bad = rows_dir(out) / "part-000002.parquet"
    bad.write_bytes(good.read_bytes()[:40])  # cut short
    (out / "report").mkdir()
    (out / "report" / "index.html").write_text("the report so far")
    for command in ("results", "report"):
        line = one_line(cli_in_process(command, out), 1)
        assert f"{bad}: unreadable row" in line and "run the sweep again" in line
    assert (out / "report" / "index.html").read_text() == "the report so far"  # not overwritten
    rows = load_rows(out)
    assert rows.table.num_rows == 1 and rows.unreadable_files == (bad,)
    moved = set_aside(out, rows.unreadable_files)
    assert moved == [out / UNREADABLE_DIR / bad.name] and moved[0].exists() and not bad.exists()
    assert not load_rows(out).unreadable


def test_outputs_that_cannot_be_written_are_refused_before_the_work(tmp_path):
    folder = tmp_path / "d.png"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("")
    args = ("run", "--content", CHELSEA, "--style", STARRY, "--size", 32, "--steps", 100000)
    began = time.monotonic()
    assert "it is a folder; name a file" in one_line(cli_in_process(*args, "-o", folder), 1)
    line = one_line(cli_in_process(*args, "-o", afile / "x.png"), 1)
    assert f"{afile} is a file, not a folder" in line and "File exists" not in line
    assert time.monotonic() - began < 60  # 100,000 steps were never started


def test_step_counts_have_an_upper_bound(tmp_path):
    from stylegrid.algorithms.names import MAX_STEPS

    line = one_line(cli_in_process("run", "--content", CHELSEA, "--style", STARRY, "-o", tmp_path / "o.png",
                              "--steps", MAX_STEPS + 1), 2)  # fmt: skip
    assert f"at most {MAX_STEPS:,}" in line
    spec = tiny_spec(tmp_path)
    spec.write_text(spec.read_text().replace("steps: 2", f"steps: {MAX_STEPS * 10}"))
    line = one_line(cli_in_process("plan", spec), 1)
    assert "steps" in line and str(MAX_STEPS) in line.replace(",", "").replace("_", "")


def test_a_closed_pipe_ends_quietly(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "stylegrid", "algorithms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and "Broken pipe" not in stderr and "Traceback" not in stderr, stderr


def test_a_folder_in_use_is_one_line_without_a_debug_hint():
    from stylegrid.orchestrator.cli.main import describe_error
    from stylegrid.orchestrator.storage.lock import LockError

    assert (
        describe_error(LockError("runs/x: in use by stylegrid sweep")) == "runs/x: in use by stylegrid sweep"
    )


def test_a_moved_output_folder_keeps_its_artifacts_and_writes_new_ones_inside_it(tmp_path):
    import shutil

    from stylegrid.orchestrator.tracking.tracker import Tracker, default_tracking_uri

    old = tmp_path / "old"
    old.mkdir()
    tracker = Tracker(default_tracking_uri(old), "moved", old / "mlartifacts")
    first = tracker.start_run("first", {})
    tracker.log_bytes(first, "a.txt", b"before the move", "notes")
    tracker.end_run(first, "FINISHED")
    new = tmp_path / "new"
    shutil.move(old, new)
    tracker = Tracker(default_tracking_uri(new), "moved", new / "mlartifacts")
    second = tracker.start_run("second", {})
    tracker.log_bytes(second, "b.txt", b"after the move", "notes")
    tracker.end_run(second, "FINISHED")
    assert not old.exists()  # nothing re-created at the old place
    assert (new / "mlartifacts").is_dir()
    for run_id, name in ((first, "a.txt"), (second, "b.txt")):
        uri = tracker.client.get_run(run_id).info.artifact_uri
        assert uri.startswith((new / "mlartifacts").as_uri()), uri
        local = tracker.client.download_artifacts(run_id, f"notes/{name}", str(tmp_path / run_id))
        assert Path(local).read_bytes() in (b"before the move", b"after the move")


def test_rows_name_their_images_relative_to_the_spec_and_find_them_after_a_move(tmp_path):
    import shutil

    from stylegrid.orchestrator.results.rows import source_file, write_current_jobs
    from stylegrid.orchestrator.sweep.jobs import source_ref

    project = tmp_path / "project"
    (project / "photos").mkdir(parents=True)
    (project / "experiments").mkdir()
    photo = project / "photos" / "a.jpg"
    photo.write_bytes(b"a photo")
    spec = project / "experiments" / "s.yaml"
    ref = source_ref(str(photo), str(spec.parent))
    assert ref == "../photos/a.jpg" and source_ref(str(photo), "") == str(photo)
    out = project / "runs" / "s"
    out.mkdir(parents=True)
    write_current_jobs(out, str(spec), ["j1"])
    assert source_file(out, ref) == photo
    assert source_file(out, str(photo)) == photo  # a row of an older version: an absolute path

    moved = tmp_path / "elsewhere" / "project"  # the project moved as a whole (another machine)
    shutil.move(project, moved)
    assert source_file(moved / "runs" / "s", ref) == moved / "photos" / "a.jpg"
    alone = tmp_path / "alone"  # the output folder moved on its own: the spec's folder as it was
    shutil.move(moved / "runs" / "s", alone)
    shutil.move(moved, project)
    assert source_file(alone, ref) == photo and source_file(alone, ref).read_bytes() == b"a photo"


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (root only: CI runs as root); skipped where mounting is not allowed."""
    where = tmp_path / "small"
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()[:100]})")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.mark.long
def test_a_disk_that_fills_mid_sweep_is_a_few_lines_and_the_next_run_repairs_everything(tmp_path, small_disk):
    from mlflow.tracking import MlflowClient
    from stylegrid.orchestrator.results.rows import read_results

    photos = sorted((SAMPLES / "content").glob("*.jpg"))[:4]
    spec = tmp_path / "full.yaml"
    spec.write_text(
        f"name: full\ncontent: {[str(p) for p in photos]}\nstyle: [{STARRY}, {SAMPLES / 'style' / 'the_scream.jpg'}]\n"
        "algorithms: [{name: adain}]\nsize: 256\n"
    )
    out = small_disk / "out"
    full = stylegrid("sweep", spec, "-o", out, "-q")
    assert full.returncode == 3, full.stdout + full.stderr
    warnings = [ln for ln in full.stderr.splitlines() if ln.strip()]
    assert all(ln.startswith("warning: ") for ln in warnings) and len(warnings) <= 6, full.stderr
    assert "no space left on device" in full.stderr and "Traceback" not in full.stderr
    assert "results: not gathered" in full.stdout  # no results.parquet named that was never written
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = stylegrid("sweep", spec, "-o", out, "-q")
    assert again.returncode == 0, again.stderr
    rows = read_results(out).to_pandas()
    assert len(rows) == 8 and set(rows.status) == {"ok"}
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    for run_id in rows.mlflow_run_id:  # every ok row has its finished MLflow run
        assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.long
def test_a_tracking_server_lost_mid_sweep_stops_it_in_one_line(tmp_path):
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path,
    )  # fmt: skip

    def crash() -> None:  # the server and its workers, all at once
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)

    try:
        deadline = time.monotonic() + 300  # an mlflow server took over 90 s to start on a busy 2-core machine
        while check := True:
            try:
                check_tracking_store(f"http://127.0.0.1:{port}", "x")
                break
            except ServiceUnavailable:
                assert check and time.monotonic() < deadline and server.poll() is None, "no mlflow server"
                time.sleep(0.5)
        spec = tmp_path / "lost.yaml"
        spec.write_text(
            f"name: lost\ncontent: [{SAMPLES / 'content'}]\nstyle: [{STARRY}, {SAMPLES / 'style' / 'the_scream.jpg'}]\n"
            "algorithms: [{name: gatys}]\nsize: 48\nsteps: 30\nresources: {num_cpus: 1}\nmax_concurrent: 1\n"
        )
        out = tmp_path / "out"
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        sweep = subprocess.Popen(
            [sys.executable, "-m", "stylegrid", "sweep", str(spec), "-o", str(out), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        )  # fmt: skip
        while not list((out / "rows").glob("*.parquet")):  # the first job is recorded: lose the server
            assert sweep.poll() is None and time.monotonic() < deadline + 120, sweep.communicate()
            time.sleep(0.2)
        crash()
        lost_at = time.monotonic()
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        crash()
    assert sweep.returncode == 1, stdout + stderr
    assert time.monotonic() - lost_at < 60
    first = stderr.splitlines()[0]
    assert first.startswith(
        f"warning: lost the MLflow tracking server http://127.0.0.1:{port} (connection refused)"
    )
    from stylegrid.orchestrator.results.rows import read_results

    rows = read_results(out).to_pandas()
    assert 1 <= len(rows) < 14 and set(rows.status) == {"ok"} and rows.mlflow_run_id.notna().all()

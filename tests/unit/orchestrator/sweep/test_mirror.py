"""A sweep's output wherever it is (``sweep/mirror.py``): for a folder on this disk the folder
itself, every method a no-op; for an object store's a working copy under the cache, and
``rows_here`` gives both as a folder of rows. (The store's side runs on moto's S3 in
``tests/system/test_object_storage.py``.)"""

from __future__ import annotations

from stylegrid.orchestrator.results.rows import CURRENT_JOBS, write_row
from stylegrid.orchestrator.results.schema import result_schema
from stylegrid.orchestrator.storage.location import cache_root
from stylegrid.orchestrator.sweep.jobs import source_ref
from stylegrid.orchestrator.sweep.mirror import Mirror, rows_here


def test_a_local_output_is_its_own_mirror_and_nothing_is_uploaded(tmp_path):
    out = tmp_path / "runs" / "demo"
    mirror = Mirror.of(out)
    assert not mirror.mirrored and mirror.local == out and mirror.uri == str(out)
    out.mkdir(parents=True)
    (out / "a.txt").write_text("x")
    mirror.push(out / "a.txt")
    assert (
        mirror.pull_rows() == 0 and mirror.pull_missing("images") == 0 and mirror.push_missing("images") == 0
    )
    mirror.sync_rows()
    mirror.push_tree("a.txt")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # nothing made, nothing moved


def test_an_object_stores_output_works_in_a_copy_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGRID_CACHE", str(tmp_path / "cache"))
    mirror = Mirror.of("s3://bucket/sweeps/demo/")  # no request is made to build it
    assert mirror.mirrored and mirror.uri == "s3://bucket/sweeps/demo"
    assert mirror.local.is_relative_to(cache_root() / "outputs") and not mirror.local.exists()


def test_rows_here_is_the_folder_of_a_local_sweep_and_none_without_rows(tmp_path):
    with rows_here(tmp_path / "nothing") as folder:
        assert folder is None
    row = {name: None for name in result_schema().names}
    row.update(job_id="a" * 16, status="ok")
    write_row(tmp_path, row)
    (tmp_path / CURRENT_JOBS).write_text('{"job_ids": ["' + "a" * 16 + '"]}')
    with rows_here(str(tmp_path)) as folder:
        assert folder == tmp_path


def test_images_are_recorded_relative_to_the_spec():
    assert source_ref("/p/photos/a.jpg", "/p/experiments") == "../photos/a.jpg"
    assert source_ref("/p/photos/a.jpg", "") == "/p/photos/a.jpg"  # no spec folder: as it is

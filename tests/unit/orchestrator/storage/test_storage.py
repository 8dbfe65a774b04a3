"""orchestrator/storage/locations.py: one set of file functions for local paths and URIs."""

from __future__ import annotations

import pytest
from conftest import BUCKET
from stylegrid.orchestrator.specs.loading import SpecError, resolve_image_locations, resolve_images
from stylegrid.orchestrator.storage import locations as storage


def test_uris_are_told_from_paths():
    assert (
        storage.is_uri("s3://bucket/a.jpg") and storage.is_uri("gs://b/x") and storage.is_uri("file:///tmp/x")
    )
    assert not storage.is_uri("/tmp/x") and not storage.is_uri("photos/a.jpg") and not storage.is_uri("C:\\x")
    assert storage.is_remote("s3://b/x") and not storage.is_remote("file:///tmp/x")
    assert storage.join("s3://b/prefix/", "ckpt", "state.json") == "s3://b/prefix/ckpt/state.json"


def test_files_round_trip_list_and_glob_through_file_uris(tmp_path):
    base = tmp_path.as_uri()  # file:///...
    storage.write_bytes(storage.join(base, "a", "one.jpg"), b"1")
    storage.write_bytes(storage.join(base, "a", "b", "two.jpg"), b"22")
    storage.write_bytes(str(tmp_path / "a" / "notes.txt"), b"x")  # a plain path, the same store
    assert storage.read_bytes(storage.join(base, "a", "b", "two.jpg")) == b"22"
    assert storage.exists(storage.join(base, "a", "one.jpg")) and storage.is_dir(storage.join(base, "a"))
    assert not storage.exists(storage.join(base, "missing"))
    assert storage.list_files(storage.join(base, "a")) == [
        f"file://{tmp_path}/a/notes.txt",
        f"file://{tmp_path}/a/one.jpg",
    ]
    assert len(storage.list_files(storage.join(base, "a"), recursive=True)) == 3
    assert storage.glob_files(f"{base}/a/*.jpg") == [f"file://{tmp_path}/a/one.jpg"]
    assert storage.glob_files(f"{base}/a/**/*.jpg") == [
        f"file://{tmp_path}/a/b/two.jpg",
        f"file://{tmp_path}/a/one.jpg",
    ]
    assert storage.list_files(storage.join(base, "nothing")) == []
    assert not list(tmp_path.rglob(".*.tmp"))  # local writes are atomic, no temporaries left


def test_image_locations_from_uris_and_paths(tmp_path):
    (tmp_path / "photos").mkdir()
    for name in ("a.jpg", "b.PNG", "c.txt"):
        (tmp_path / "photos" / name).write_bytes(b"x")
    uri = (tmp_path / "photos").as_uri()
    found = resolve_image_locations([uri, f"{uri}/*.jpg", "photos/a.jpg"], tmp_path, "content", "s.yaml")
    assert found == [f"{uri}/a.jpg", f"{uri}/b.PNG", str(tmp_path / "photos" / "a.jpg")]
    with pytest.raises(SpecError, match=r"s.yaml: content\[0\] .*no such file or folder"):
        resolve_image_locations([f"{uri}/missing.jpg"], tmp_path, "content", "s.yaml")
    with pytest.raises(SpecError, match="as a pattern it matches no image file"):
        resolve_image_locations([f"{uri}/*.txt"], tmp_path, "content", "s.yaml")
    with pytest.raises(SpecError, match=r"s.yaml: content\[0\] .*a sweep reads its images from this disk"):
        resolve_images(["s3://bucket/photos/a.jpg"], tmp_path, "content", "s.yaml")


def test_image_locations_in_an_object_store_in_its_words(tmp_path, s3, monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/listing"
    for name in ("a.jpg", "b.PNG", "c.txt", "deeper/d.jpg"):
        storage.write_bytes(f"{uri}/{name}", b"x")
    found = resolve_image_locations([uri, f"{uri}/*.jpg"], tmp_path, "content", "s.yaml")
    assert found == [f"{uri}/a.jpg", f"{uri}/b.PNG"]  # a folder's images, one level
    for pattern, reason in (
        ("missing.jpg", "no such object or prefix"),
        ("*.txt", "no such object, and as a pattern it matches no image object"),
        ("deeper/*.txt", "no such object, and as a pattern it matches no image object"),
    ):
        with pytest.raises(SpecError, match=r"s.yaml: content\[0\] .*" + reason):
            resolve_image_locations([f"{uri}/{pattern}"], tmp_path, "content", "s.yaml")

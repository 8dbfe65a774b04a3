"""The storage contract: what every backend behind ``storage.location.Location`` must do, run
against each of them (a local folder, and moto's S3 server on 127.0.0.1), so that code written
against a ``Location`` behaves the same wherever the files are."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUCKET
from stylegrid.orchestrator.storage import locations as storage
from stylegrid.orchestrator.storage.location import Location, cache_root


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, monkeypatch) -> Location:
    """An empty folder of the backend under test."""
    if request.param == "local":
        return Location.of(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return Location.of(f"s3://{BUCKET}/contract/{request.node.name.replace('[', '-').strip(']')}")


def test_a_file_round_trips_whole(root):
    f = root.join("a", "one.bin")
    assert not f.exists() and not root.join("a").exists()
    assert f.write_bytes(b"\x00\x01payload") == f
    assert f.read_bytes() == b"\x00\x01payload" and f.exists() and f.is_file() and not f.is_dir()
    assert root.join("a").is_dir()
    f.write_bytes(b"second")  # a rewrite replaces it whole
    assert f.read_bytes() == b"second"
    assert [g.name for g in root.join("a").files()] == ["one.bin"]  # no temporary left beside it


def test_a_missing_file_names_itself(root):
    with pytest.raises(FileNotFoundError, match="missing.bin: no such file"):
        root.join("missing.bin").read_bytes()
    root.join("missing.bin").delete()  # deleting what is not there is not an error


def test_listing_is_sorted_flat_or_recursive_with_sizes(root):
    for name, data in (("b.jpg", b"22"), ("a.jpg", b"1"), ("sub/c.jpg", b"333"), ("sub/deeper/d.png", b"")):
        root.join(*name.split("/")).write_bytes(data)
    assert [f.relative_to(root) for f in root.files()] == ["a.jpg", "b.jpg"]
    assert [f.relative_to(root) for f in root.files(recursive=True)] == [
        "a.jpg", "b.jpg", "sub/c.jpg", "sub/deeper/d.png"
    ]  # fmt: skip
    assert {f.relative_to(root): n for f, n in root.sizes().items()} == {
        "a.jpg": 1, "b.jpg": 2, "sub/c.jpg": 3, "sub/deeper/d.png": 0
    }  # fmt: skip
    assert root.join("nothing").files() == [] and root.join("nothing").sizes() == {}


def test_glob_has_globs_rules(root):
    """As Python's glob with ``recursive=True``: ``*`` within one level, ``**`` any (none too)."""
    for name in ("a.jpg", "a.txt", "sub/c.jpg", "sub/deeper/d.jpg"):
        root.join(*name.split("/")).write_bytes(b"x")
    assert [f.relative_to(root) for f in root.glob("*.jpg")] == ["a.jpg"]
    assert [f.relative_to(root) for f in root.glob("**/*.jpg")] == ["a.jpg", "sub/c.jpg", "sub/deeper/d.jpg"]
    assert [f.relative_to(root) for f in root.glob("sub/*.jpg")] == ["sub/c.jpg"]


def test_delete_removes_one_file(root):
    keep, gone = root.join("keep.bin"), root.join("gone.bin")
    keep.write_bytes(b"k")
    gone.write_bytes(b"g")
    gone.delete()
    assert not gone.exists() and keep.read_bytes() == b"k"


def test_text_round_trips_and_joins(root):
    f = root.join("x", "y.png")
    assert Location.of(str(f)) == f and Location.of(str(f) + "/") == f
    assert f.name == "y.png" and f.parent == root.join("x") and f.relative_to(root) == "x/y.png"
    assert Location.of("y.png", base=root.join("x")) == f  # a relative path is taken from its folder
    assert storage.absolute("y.png", str(root.join("x"))) == str(f)


def test_the_working_copy_is_a_real_folder(root, monkeypatch, tmp_path):
    monkeypatch.setenv("STYLEGRID_CACHE", str(tmp_path / "cache"))
    folder = root.join("model")
    folder.join("net.pth").write_bytes(b"w")
    folder.join("net.json").write_bytes(b"{}")
    copy = folder.local_folder("models")
    assert sorted(p.name for p in copy.iterdir()) == ["net.json", "net.pth"]
    assert (copy / "net.pth").read_bytes() == b"w"
    if root.remote:
        assert copy.is_relative_to(cache_root() / "models")
    else:
        assert copy == folder.working_copy() == Path(folder.path) and not (tmp_path / "cache").exists()


def test_a_file_or_folder_is_on_disk_for_a_with_and_named_portably(root):
    clip = root.join("clips", "pan.mp4")
    clip.write_bytes(b"video")
    root.join("clips", "frames", "f1.png").write_bytes(b"1")
    root.join("clips", "frames", "f2.png").write_bytes(b"2")
    with clip.on_disk() as path:
        assert path.read_bytes() == b"video" and path.name == "pan.mp4"
    with root.join("clips", "frames").on_disk() as folder:
        assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == [
            ("f1.png", b"1"),
            ("f2.png", b"2"),
        ]
    assert path.exists() is not root.remote  # a copy lasts as long as the with; the file itself stays
    assert clip.recorded == (str(clip) if root.remote else "pan.mp4")


def test_one_cache_root(monkeypatch, tmp_path):
    monkeypatch.delenv("STYLEGRID_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "stylegrid"
    monkeypatch.setenv("STYLEGRID_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"

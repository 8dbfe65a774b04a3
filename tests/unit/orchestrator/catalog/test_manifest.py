"""A catalog's sources (``catalog/manifest.py``): a folder's images at every level, a pattern's, a
manifest's paths (relative ones from its folder, missing ones kept), never the catalog's own
outputs, and a file that is none of these refused in one line."""

from __future__ import annotations

import pytest
from stylegrid.orchestrator.catalog.manifest import list_sources, own_outputs
from stylegrid.orchestrator.catalog.pipeline import CatalogError


def test_folders_patterns_and_manifests(tmp_path):
    for name in ("a.jpg", "deep/b.PNG", "deep/deeper/c.webp", "notes.txt"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"x")
    root = tmp_path / "in"
    assert list_sources(str(root)) == [str(root / n) for n in ("a.jpg", "deep/b.PNG", "deep/deeper/c.webp")]
    assert list_sources(str(root / "deep" / "*.PNG")) == [
        str(root / "deep" / "b.PNG")
    ]  # glob: case as written
    assert list_sources(str(root / "**" / "*.webp")) == [str(root / "deep" / "deeper" / "c.webp")]
    (root / "list.csv").write_text("path\ndeep/b.PNG\n/elsewhere/gone.jpg\n")
    assert list_sources(str(root / "list.csv")) == [str(root / "deep" / "b.PNG"), "/elsewhere/gone.jpg"]
    with pytest.raises(
        CatalogError, match="notes.txt: expected a folder, a pattern or a .csv / .parquet manifest"
    ):
        list_sources(str(root / "notes.txt"))
    with pytest.raises(CatalogError, match="no such file, and as a pattern it matches no image file"):
        list_sources(str(root / "*.tiff"))


def test_a_catalog_never_reads_its_own_outputs(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "images" / "starry").mkdir(parents=True)
    (tmp_path / "images" / "starry" / "a-1.png").write_bytes(b"x")  # an output of an earlier run
    assert list_sources(str(tmp_path), exclude=own_outputs(str(tmp_path))) == [str(tmp_path / "a.jpg")]

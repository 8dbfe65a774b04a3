"""What a run records about the code that made it (``orchestrator/provenance.py``): the version,
the commit and whether it had uncommitted changes, as MLflow tags."""

from __future__ import annotations

from stylegrid.orchestrator.provenance import Provenance, provenance


def test_the_code_version_names_the_commit_and_a_dirty_tree():
    clean = Provenance("0.1.0", "1a2b3c4d5e6f7a8b9c0d", False, "host")
    assert clean.code_version == "0.1.0+g1a2b3c4d5e6f"
    assert Provenance("0.1.0", "1a2b3c4d5e6f7a8b9c0d", True, "h").code_version == "0.1.0+g1a2b3c4d5e6f.dirty"
    assert Provenance("0.1.0", "", False, "h").code_version == "0.1.0"  # not a git checkout
    tags = clean.tags()
    assert (
        tags["mlflow.source.git.commit"] == "1a2b3c4d5e6f7a8b9c0d" and tags["stylegrid.git_dirty"] == "false"
    )
    assert "mlflow.source.git.commit" not in Provenance("0.1.0", "", False, "h").tags()


def test_this_checkout_is_described():
    here = provenance()
    assert here.version and here.host and (here.commit == "" or len(here.commit) == 40)

"""``model=models:/<name>/<version>`` parameters (``tracking/model_uris.py``): found among a
sweep's or a catalog's parameters once, then replaced by the local file in every job."""

from __future__ import annotations

import dataclasses

import pytest
from stylegrid.orchestrator.tracking.model_uris import is_model_uri, localize, model_uris


@dataclasses.dataclass(frozen=True)
class Net:
    model: str = ""
    alpha: float = 1.0


def test_model_uris_are_found_once_and_localized(tmp_path):
    params = [{"model": "models:/fast/2", "alpha": 0.5}, {"model": "models:/fast/2"}, {"model": "x.pth"}]
    assert model_uris(params) == ["models:/fast/2"]
    assert is_model_uri("models:/a/1") and not is_model_uri("runs:/x") and not is_model_uri(3)
    (tmp_path / "net.pth").write_bytes(b"w")
    local = localize(Net("models:/fast/2"), {"models:/fast/2": str(tmp_path)})
    assert local.model.endswith(".pth") and local.alpha == 1.0
    assert localize(Net("plain.pth"), {}) == Net("plain.pth")
    with pytest.raises(ValueError, match="models:/other/1: an MLflow model URI this run did not resolve"):
        localize(Net("models:/other/1"), {})

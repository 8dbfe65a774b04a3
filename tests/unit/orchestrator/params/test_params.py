"""``--set`` and YAML values into an algorithm's parameters (``orchestrator/params.py``): read as
YAML, lists by commas, unknown names with a did-you-mean, every number finite."""

from __future__ import annotations

import pytest
from stylegrid.algorithms.optimization.gatys import GatysParams
from stylegrid.orchestrator.errors import ParameterError
from stylegrid.orchestrator.params import build_params, check_names, parse_assignment, parse_cli_value


def test_assignments_and_values():
    assert parse_assignment(" style_weight = 5 ") == ("style_weight", "5")
    with pytest.raises(ParameterError, match="--set expects name=value, got 'style_weight'"):
        parse_assignment("style_weight")
    weight = parse_cli_value(GatysParams, "style_weight", "1e-4")  # YAML 1.1 reads it as text...
    assert build_params(GatysParams, {"style_weight": weight}).style_weight == pytest.approx(
        1e-4
    )  # ...a number here
    assert parse_cli_value(GatysParams, "preserve_color", "true") is True
    assert parse_cli_value(GatysParams, "style_layers", "relu1_1, relu2_1") == ["relu1_1", "relu2_1"]


def test_unknown_names_say_what_was_meant_and_values_are_checked():
    with pytest.raises(
        ParameterError, match="unknown parameter 'style_wieght' \\(did you mean 'style_weight'\\?\\)"
    ):
        check_names(GatysParams, ["style_wieght"])
    params = build_params(GatysParams, {"style_weight": 3, "steps": 7})
    assert (
        params.style_weight == 3
        and params.steps == 7
        and params.content_weight == GatysParams().content_weight
    )
    with pytest.raises(ParameterError, match="parameter 'steps'"):
        build_params(GatysParams, {"steps": "many"})
    for value in (float("inf"), float("nan")):
        with pytest.raises(ParameterError, match="style_weight"):
            build_params(GatysParams, {"style_weight": value})

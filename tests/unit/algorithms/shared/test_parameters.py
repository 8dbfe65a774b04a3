"""The rules every algorithm's parameters share (``shared/parameters.py``): validation that
names the field, per-layer weights, the automatic pyramid, style weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from stylegrid.algorithms.shared.parameters import (
    AUTO_COARSEST,
    auto_scales,
    check_layer_weights,
    check_layers,
    check_non_negative,
    check_positive,
    layer_weights,
    weight_list,
)


def test_validation_names_the_field_and_the_value():
    p = SimpleNamespace(steps=0, tv_weight=-1.0, style_layers=("relu1_1", "pool2", "relu9_9"), w=[1.0])
    with pytest.raises(ValueError, match="steps must be positive, got 0"):
        check_positive(p, "steps")
    with pytest.raises(ValueError, match="tv_weight must be >= 0, got -1.0"):
        check_non_negative(p, "tv_weight")
    with pytest.raises(ValueError, match=r"unknown VGG-19 layer\(s\) \['pool2', 'relu9_9'\]"):
        check_layers(p, "style_layers")
    with pytest.raises(ValueError, match="w has 1 values for 3 style_layers"):
        check_layer_weights(p, "style_layers", "w")
    with pytest.raises(ValueError, match="must name at least one layer"):
        check_layers(SimpleNamespace(x=()), "x")
    check_layer_weights(SimpleNamespace(layers=("relu1_1",), w=None), "layers", "w")  # none given: fine


def test_layer_and_style_weights():
    assert layer_weights(["a", "b", "c", "d"], None) == {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}
    assert layer_weights(["a", "b"], [2.0, 0.5]) == {"a": 2.0, "b": 0.5}
    assert weight_list(["s1", "s2"], None) == [1.0, 1.0] and weight_list(["s1"], [0.3]) == [0.3]
    with pytest.raises(ValueError, match="2 style images but 1 style weights"):
        weight_list(["s1", "s2"], [1.0])


def test_the_automatic_pyramid_stops_before_a_level_under_128_px():
    assert AUTO_COARSEST == 128
    assert [auto_scales(side) for side in (64, 128, 255, 256, 512, 1024, 4096)] == [1, 1, 1, 2, 3, 4, 6]

"""The sizes an image may have (``orchestrator/limits.py``), checked before anything is loaded."""

from __future__ import annotations

import pytest
from stylegrid.algorithms.names import MIN_SIDE
from stylegrid.orchestrator.limits import DEFAULT_MAX_SIZE, MAX_SIZE_ENV, check_size, size_limit


def test_sizes_lie_between_what_vgg_needs_and_the_limit(monkeypatch):
    monkeypatch.delenv(MAX_SIZE_ENV, raising=False)
    assert size_limit() == DEFAULT_MAX_SIZE == 8192
    assert check_size(MIN_SIDE, "--size") == MIN_SIDE and check_size(8192, "--size") == 8192
    with pytest.raises(ValueError, match=rf"--size: 8193 px is outside {MIN_SIDE}..8192 .*{MAX_SIZE_ENV}"):
        check_size(8193, "--size")
    with pytest.raises(ValueError, match=f"VGG-19 needs {MIN_SIDE} px"):
        check_size(MIN_SIDE - 1, "style_size")


def test_the_limit_can_be_raised_and_a_bad_setting_is_named(monkeypatch):
    monkeypatch.setenv(MAX_SIZE_ENV, "20000")
    assert check_size(16384, "--size") == 16384
    monkeypatch.setenv(MAX_SIZE_ENV, "1")  # never below what VGG-19 needs
    assert size_limit() == MIN_SIDE
    monkeypatch.setenv(MAX_SIZE_ENV, "big")
    with pytest.raises(ValueError, match=rf"\${MAX_SIZE_ENV}='big': expected a whole number"):
        size_limit()

"""The registry (``algorithms/registry.py``) and the names the command line knows before it loads
PyTorch (``algorithms/names.py``): the same algorithms, and a near miss gets a did-you-mean."""

from __future__ import annotations

import pytest
from stylegrid.algorithms.names import ALGORITHM_NAMES, check_algorithm_name, did_you_mean
from stylegrid.algorithms.registry import ALGORITHMS, get_algorithm


def test_the_light_list_of_names_is_the_registry():
    assert set(ALGORITHM_NAMES) == set(ALGORITHMS) and len(ALGORITHM_NAMES) == len(set(ALGORITHM_NAMES))
    for name in ALGORITHM_NAMES:
        assert get_algorithm(name).name == check_algorithm_name(name) == name


def test_an_unknown_name_lists_the_valid_ones_and_the_nearest():
    assert did_you_mean("gatis", ALGORITHM_NAMES) == " (did you mean 'gatys'?)"
    assert did_you_mean("zzz", ALGORITHM_NAMES) == ""
    for check in (get_algorithm, check_algorithm_name):
        with pytest.raises(
            ValueError, match=r"unknown algorithm 'adian' \(did you mean 'adain'\?\); available: "
        ):
            check("adian")

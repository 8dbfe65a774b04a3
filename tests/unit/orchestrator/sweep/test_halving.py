"""Early stopping's maths (orchestrator/sweep/halving.py): rungs, Pareto ranks, the ASHA decision, the
board and its seeding from earlier rows; the sweep itself is tested in test_sweep."""

from __future__ import annotations

import math

import pytest
from stylegrid.orchestrator.results.schema import parse_rungs, rungs_record
from stylegrid.orchestrator.specs.sweep import EarlyStoppingSpec
from stylegrid.orchestrator.sweep.halving import (
    RungBoard,
    Rungs,
    decide,
    ordinal,
    oriented,
    pareto_ranks,
    rung_steps,
)


def test_rungs_are_steps_before_the_last():
    assert rung_steps(100, [0.1, 0.3]) == [10, 30]
    assert rung_steps(10, [0.01, 0.3, 0.99]) == [1, 3]  # at least step 1; none at the last step
    assert rung_steps(1, [0.5]) == []  # a one-pass (feed-forward) job has no rung
    assert rung_steps(7, [0.3, 0.31]) == [2]  # two fractions on one step: one rung


def test_measures_are_turned_so_that_lower_is_better():
    values = {"content_distance": 0.3, "content_ssim": 0.8, "style_distance": float("nan")}
    assert oriented(values, ["content_distance", "content_ssim"]) == (0.3, -0.8)
    assert oriented(values, ["style_distance"]) == (math.inf,)  # NaN: the worst


def test_pareto_ranks_peel_fronts():
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (4, 4), (6, 6), (2, 2)]
    assert pareto_ranks(points) == [0, 0, 0, 1, 2, 3, 0]  # equal points share a rank
    assert pareto_ranks([(1.0,), (3.0,), (2.0,)]) == [0, 2, 1]
    assert pareto_ranks([]) == []


def test_a_job_goes_on_when_among_the_best_fraction():
    results = {f"j{i}": (float(i),) for i in range(9)}  # j0 best
    assert decide(results, "j2", 3, 3).go_on  # the best 3 of 9 go on
    d = decide(results, "j3", 3, 3)
    assert not d.go_on and d.reason == "4th of 9 by value: not among the best 3"
    assert decide({"a": (5.0,), "b": (1.0,)}, "a", 3, 3).go_on  # fewer than min_results: goes on
    tied = {"a": (1.0,), "b": (1.0,), "c": (1.0,), "d": (2.0,)}
    assert all(decide(tied, j, 4, 1).go_on for j in "abc")  # ties with the cutoff are kept
    assert not decide(tied, "d", 4, 1).go_on


def test_with_two_measures_the_whole_first_front_goes_on():
    # five trade-offs no point beats on both measures, and four dominated points
    front = {f"f{i}": (float(i), float(4 - i)) for i in range(5)}
    dominated = {f"d{i}": (float(i) + 0.5, 5.0 + i) for i in range(4)}
    results = {**front, **dominated}
    assert all(decide(results, j, 3, 3).go_on for j in front)  # 5 kept though 9 / 3 = 3
    assert not any(decide(results, j, 3, 3).go_on for j in dominated)


def test_the_board_compares_only_jobs_of_one_group_and_rung():
    board = RungBoard(["style_distance"], reduction_factor=2, min_results=2)
    assert board.report("pic-a", 0, "a1", {"style_distance": 0.5})[0]  # alone: too few
    assert not board.report("pic-a", 0, "a2", {"style_distance": 0.9})[0]
    assert board.report("pic-b", 0, "b1", {"style_distance": 0.9})[0]  # another picture
    assert board.report("pic-a", 1, "a1", {"style_distance": 0.3})[0]  # another rung
    again = RungBoard(["style_distance"], 2, 2)  # a resumed sweep's board, from the rows
    assert again.seed([("pic-a", "a1", [{"rung": 0, "step": 10, "values": {"style_distance": 0.5}}])]) == 1
    assert not again.report("pic-a", 0, "a2", {"style_distance": 0.9})[0]
    rungs = Rungs((0.5,), again)  # the worker's view: plain board, called directly
    assert rungs.steps(10) == [5] and rungs.ask("pic-a", 0, "a3", {"style_distance": 0.1})[0]


def test_rung_cells_round_trip_and_tolerate_junk():
    rungs = [{"rung": 0, "step": 3, "values": {"style_distance": 0.5}, "go_on": True, "reason": "x"}]
    assert parse_rungs(rungs_record(rungs)) == rungs
    assert rungs_record([]) == "" and parse_rungs(None) == [] and parse_rungs("{not json") == []
    assert parse_rungs(float("nan")) == []  # a null read by pandas
    assert parse_rungs('{"a": 1}') == []
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
    ]  # fmt: skip


def test_the_spec_option_is_checked():
    spec = EarlyStoppingSpec(measure=["content_distance", "style_distance"], rungs=[0.3, 0.1, 0.3])
    assert spec.measures == ("content_distance", "style_distance") and spec.rungs == [0.1, 0.3]
    with pytest.raises(ValueError, match="did you mean 'style_distance'"):
        EarlyStoppingSpec(measure="style_distanse")
    with pytest.raises(ValueError, match=r"fraction of the steps in \(0, 1\)"):
        EarlyStoppingSpec(rungs=[0.5, 1.0])
    with pytest.raises(ValueError, match="one measure or two"):
        EarlyStoppingSpec(measure=["style_distance", "style_distance"])
    with pytest.raises(ValueError, match="greater than 1"):
        EarlyStoppingSpec(reduction_factor=1)


def test_a_stopped_job_keeps_its_image_as_the_job_would_return_it():
    import torch
    from stylegrid.orchestrator.sweep.worker import as_output

    content = torch.rand(1, 3, 48, 64)
    coarse = torch.rand(1, 3, 24, 32) * 1.4 - 0.2  # a coarse pyramid level, a little out of range
    out = as_output(coarse, content, preserve_color=False)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    grey = coarse.mean(1, keepdim=True).expand(1, 3, 24, 32)  # optimised on luminance only
    coloured = as_output(grey, content, preserve_color=True)
    assert coloured.shape == content.shape and not torch.allclose(coloured[:, 0], coloured[:, 1])

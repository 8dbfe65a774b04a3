"""The report's pure pieces (``report/html.py``, ``report/pictures.py``): the Pareto front, series
and their colours, the summary table, the varied parameters, the measures line."""

from __future__ import annotations

import numpy as np
import pandas as pd
from stylegrid.orchestrator.report.html import measures_line, summary_table, varied_parameters
from stylegrid.orchestrator.report.pictures import pareto_front, series_colours, series_label


def test_pareto_front_by_hand():
    x = np.array([0.1, 0.2, 0.3, 0.25, 0.4, 0.1])
    y = np.array([0.9, 0.5, 0.2, 0.6, 0.2, 0.95])
    # lower is better on both: (0.1, 0.9), (0.2, 0.5), (0.3, 0.2) trade off; (0.25, 0.6) is beaten by
    # (0.2, 0.5), (0.4, 0.2) by (0.3, 0.2), (0.1, 0.95) by (0.1, 0.9)
    assert list(pareto_front(x, y, x_higher=False, y_higher=False)) == [0, 1, 2]
    # higher is better across (an SSIM), lower up: (0.4, 0.2) beats (0.3, 0.2); (0.25, 0.6) and
    # (0.1, ...) are beaten by (0.4, 0.2) too
    assert list(pareto_front(x, y, x_higher=True, y_higher=False)) == [4]
    assert list(pareto_front(x, y, x_higher=True, y_higher=True)) == [5, 3, 4]
    # identical points are all kept
    assert list(pareto_front(np.array([1.0, 1.0]), np.array([2.0, 2.0]), False, False)) == [0, 1]


def test_every_variant_is_its_own_series_in_its_algorithms_hue():
    pairs = [
        ("gatys", "style_weight=2.5"),
        ("gatys", "style_weight=5"),
        ("mrf", None),
        ("gatys", "style_weight=5"),
    ]
    shades = series_colours(pairs)
    assert sorted(shades) == ["gatys style_weight=2.5", "gatys style_weight=5", "mrf"]
    assert series_label("mrf", None) == "mrf" and series_label("mrf", "") == "mrf"
    light, dark = np.array(shades["gatys style_weight=5"]), np.array(shades["gatys style_weight=2.5"])
    assert np.abs(light - dark).max() > 0.2  # told apart
    assert np.argmax(dark) == np.argmax(light) or np.allclose(
        dark, dark[0]
    )  # one hue: the same channel leads


def test_summary_table_averages_ok_jobs_per_algorithm_and_variant():
    table = summary_table(_rows()).set_index(["algorithm", "variant"])
    assert list(table.index) == [("gatys", "style_weight=1"), ("gatys", "style_weight=5"), ("mrf", "")]
    assert table.loc[("gatys", "style_weight=5"), "jobs"] == 1  # the failed job is not averaged
    assert table.loc[("mrf", ""), "style_swd mean"] == 0.4


def test_varied_parameters_are_the_numeric_ones_with_two_values():
    # preserve_color varies too, but a boolean has no axis to plot on
    assert varied_parameters(_rows()) == [("gatys", "style_weight")]


def test_measures_line_is_short_content_then_style():
    line = measures_line(_rows().iloc[0])
    assert line == "c 0.20 ssim 0.90\ns 0.50 swd 0.30 col 12.0"


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "failed"],
            "algorithm": ["gatys", "gatys", "mrf", "gatys"],
            "variant": ["style_weight=1", "style_weight=5", "", "style_weight=5"],
            "seed": [None, None, None, None],
            "param.style_weight": [1.0, 5.0, 2.0, 5.0],
            "param.preserve_color": [False, True, False, True],
            "content_distance": [0.2, 0.4, 0.3, None],
            "content_ssim": [0.9, 0.7, 0.8, None],
            "style_distance": [0.5, 0.3, 0.6, None],
            "style_swd": [0.3, 0.2, 0.4, None],
            "color_swd": [12.0, 8.0, 15.0, None],
            "wall_seconds": [2.0, 2.5, 1.0, 0.1],
        }
    )

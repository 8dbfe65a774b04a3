"""The interface every algorithm shares (``algorithms/base.py``): the loss-naming rule, a loss
that is not finite fails the job, and the content and style groups summed."""

from __future__ import annotations

import pytest
from stylegrid.algorithms.base import NonFiniteLoss, check_finite, check_loss_names, group_sums


def test_loss_names_follow_one_rule():
    check_loss_names(["content.relu4_2", "content.adain.relu4_1", "style.gram.relu1_1", "style.wct.relu3_1",
                      "tv", "temporal", "total"])  # fmt: skip
    for bad in ("style.gramm.relu1_1", "content.relu6_1", "style", "loss"):
        with pytest.raises(ValueError, match=f"loss term '{bad}' breaks the naming rule"):
            check_loss_names([bad])


def test_non_finite_losses_fail_and_groups_are_summed():
    check_finite({"total": 1.0}, 3)
    with pytest.raises(NonFiniteLoss, match=r"not finite after 3 evaluation\(s\) \(style.gram.relu1_1=nan\)"):
        check_finite({"style.gram.relu1_1": float("nan"), "total": 1.0}, 3)
    losses = {"content.relu4_2": 1.0, "style.gram.relu1_1": 2.0, "style.gram.relu2_1": 3.0, "tv": 9.0}
    assert group_sums(losses) == (1.0, 5.0)
    assert group_sums({"style.adain.relu4_1": 2.0}) == (None, 2.0)  # no content term: none, not 0

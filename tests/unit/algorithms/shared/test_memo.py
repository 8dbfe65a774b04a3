"""Targets computed once per style image (``shared/memo.py``) and the device a job runs on
(``shared/device.py``)."""

from __future__ import annotations

import pytest
import torch
from stylegrid.algorithms.shared.device import autocast, pick_device, resolve_precision
from stylegrid.algorithms.shared.memo import MEMO_ENTRIES, fingerprint, memo


def test_a_fingerprint_is_the_values_and_the_shape():
    a = torch.arange(6.0).reshape(2, 3)
    assert fingerprint(a) == fingerprint(a.clone()) == fingerprint(a.double())
    assert fingerprint(a) != fingerprint(a.reshape(3, 2)) and fingerprint(a) != fingerprint(a + 1e-6)


def test_memo_computes_once_per_key_and_keeps_a_bounded_number():
    calls = []

    def compute(k):
        calls.append(k)
        return k * 2

    assert memo(None, "a", lambda: compute("a")) == "aa" and memo(None, "a", lambda: compute("a")) == "aa"
    assert calls == ["a", "a"]  # no cache: computed every time
    cache: dict = {}
    for _ in range(3):
        assert memo(cache, "b", lambda: compute("b")) == "bb"
    assert calls.count("b") == 1
    for i in range(MEMO_ENTRIES + 5):
        memo(cache, i, lambda i=i: i)
    assert len(cache) == MEMO_ENTRIES and "b" not in cache and MEMO_ENTRIES + 4 in cache  # oldest out


def test_the_device_and_precision_asked_for():
    assert pick_device(False) == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda:0")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        pick_device("tpu-ish")
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("auto", cpu) in ("fp32", "bf16")
    with autocast("bf16", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32

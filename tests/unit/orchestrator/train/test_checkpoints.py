"""Checkpoints (``train/checkpoints.py``): a network with non-finite weights is never saved."""

from __future__ import annotations

import pytest
import torch


def test_a_decoder_with_nan_weights_is_never_checkpointed(tmp_path):
    from stylegrid.algorithms.base import NonFiniteLoss
    from stylegrid.algorithms.feedforward.adain.network import decoder_layout
    from stylegrid.orchestrator.train.checkpoints import save_checkpoint

    decoder = decoder_layout()
    with torch.no_grad():
        next(decoder.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match="not saved"):
        save_checkpoint(tmp_path / "ckpt", decoder, None, 10, {}, "decoder.pth")
    assert not (tmp_path / "ckpt").exists()

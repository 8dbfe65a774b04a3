"""Patches of feature maps and the nearest-patch search (``shared/patches.py``) that MRF, style
swap and their regional forms share: the best match by normalised cross-correlation, the same
whatever the chunking."""

from __future__ import annotations

import pytest
import torch
from stylegrid.algorithms.shared.patches import (
    extract_patches,
    nearest_patches,
    normalise_rows,
    style_patches,
)


def test_each_patch_finds_itself_in_a_bank_of_its_own_patches_whatever_the_chunk():
    torch.manual_seed(0)
    features = torch.randn(1, 4, 7, 9)
    bank = normalise_rows(style_patches(features, 3)).reshape(-1, 4, 3, 3)
    found = nearest_patches(features, bank, stride=1)
    assert torch.equal(found, torch.arange(5 * 7))  # row-major order of the top-left corners
    assert torch.equal(nearest_patches(features, bank, stride=1, chunk_elements=50), found)
    assert nearest_patches(features, bank, stride=2).shape == (3 * 4,)


def test_the_match_ignores_a_patchs_brightness():
    base = torch.randn(1, 2, 3, 3)
    bank = normalise_rows(extract_patches(torch.cat([base * 5.0, -base], dim=-1), 3, 3)).reshape(-1, 2, 3, 3)
    assert nearest_patches(base * 0.01, bank, stride=1).tolist() == [0]  # scale does not matter, sign does


def test_a_style_smaller_than_a_patch_is_refused():
    with pytest.raises(ValueError, match=r"smaller than one 3x3 patch"):
        style_patches(torch.rand(1, 2, 2, 8))

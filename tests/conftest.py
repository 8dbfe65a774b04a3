from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
BAD = Path(__file__).resolve().parent / "data" / "bad"


@pytest.fixture(scope="session")
def tubingen_64() -> torch.Tensor:
    from orchestrator.images import read_image, resize_to, to_tensor

    return to_tensor(resize_to(read_image(SAMPLES / "content" / "tubingen.jpg"), 64))


@pytest.fixture(scope="session")
def starry_128() -> torch.Tensor:
    from orchestrator.images import load_image

    return load_image(SAMPLES / "style" / "starry_night.jpg", max_side=128)

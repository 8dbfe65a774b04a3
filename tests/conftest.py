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


EVERY_ALGORITHM_STEPS = 3


@pytest.fixture(scope="session")
def every_algorithm_sweep(tmp_path_factory):
    """One small sweep of every registered algorithm (gatys at two style weights, two seeds that
    fold, snapshots every 2 steps) run once for the session: its output folder and summary. Its
    rows, MLflow store and report are checked by test_sweep.py and test_report.py."""
    import json

    import ray

    from algorithms import ALGORITHMS
    from orchestrator.sweep import run_sweep

    folder = tmp_path_factory.mktemp("every")
    algorithms = [{"name": "gatys", "grid": {"style_weight": [2.5, 5.0]}}]
    algorithms += [{"name": n} for n in sorted(ALGORITHMS) if n != "gatys"]
    spec = folder / "every.yaml"
    # 64 px: at 32 px a landscape photo leaves MRF a 2x4 relu4_1 map, smaller than its patches
    spec.write_text(
        json.dumps(
            {
                "name": "every",
                "content": [str(SAMPLES / "content" / "chelsea.jpg")],
                "style": [str(SAMPLES / "style" / "starry_night.jpg")],
                "algorithms": algorithms,
                "seeds": [0, 1],
                "size": 64,
                "style_size": 64,
                "steps": EVERY_ALGORITHM_STEPS,
                "snapshot_every": 2,
                "resources": {"num_cpus": 1},
            }
        )
    )
    if ray.is_initialized():
        ray.shutdown()
    try:
        summary = run_sweep(
            str(spec), output=str(folder / "out"), quiet=True, ray_init_kwargs={"num_cpus": 2}
        )
    finally:
        ray.shutdown()  # later tests start their own Ray
    return folder / "out", summary

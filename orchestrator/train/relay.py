"""Training's MLflow path from the workers: only the driver's node needs to reach the tracking
store, so rank 0 logs through a small actor there (``TrackingRelay``, started by
``start_relay``) with ``RankZeroLogger``: the losses, validation losses, sample grids and every
checkpoint's model file, into the run the driver created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from ..images import png_bytes
from ..tracking.tracker import Tracker


class TrackingRelay:
    """MLflow writes of the workers, made where the driver runs: a Ray actor on the driver's
    node, so that the tracking store only has to be reachable from there (a SQLite file, or a
    tracking server bound to the head's loopback, never opened to the cluster's network)."""

    def __init__(self, tracking_uri: str):
        self.tracker = Tracker(tracking_uri)

    def log_metrics(self, run_id: str, values: dict[str, float], step: int) -> None:
        self.tracker.log_metrics(run_id, values, step=step)

    def log_bytes(self, run_id: str, name: str, data: bytes, folder: str) -> None:
        self.tracker.log_bytes(run_id, name, data, folder)


def start_relay(tracking_uri: str):
    """A ``TrackingRelay`` actor pinned to this (the driver's) node; it needs no CPU."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(TrackingRelay).options(num_cpus=0, scheduling_strategy=here).remote(tracking_uri)


class RankZeroLogger:
    """Rank 0's MLflow logging, into the run the driver created, through the driver's
    ``TrackingRelay`` (each call waits for its write, so that an error surfaces here)."""

    def __init__(self, relay, run_id: str):
        self.relay = relay
        self.run_id = run_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        import ray

        ray.get(self.relay.log_metrics.remote(self.run_id, values, step))

    def _bytes(self, name: str, data: bytes, folder: str) -> None:
        import ray

        ray.get(self.relay.log_bytes.remote(self.run_id, name, data, folder))

    def metrics(self, step: int, window: Sequence[Mapping[str, float]], lr: float) -> None:
        self._metrics({**window_means(window), "lr": lr}, step)

    def resumed(self, step: int) -> None:
        """The step this start of the workers continues from (a checkpoint)."""
        self._metrics({"resumed_from_step": float(step)}, step)

    def validation(self, step: int, values: dict[str, float]) -> None:
        self._metrics(values, step)

    def grid(self, step: int, image: Image.Image) -> None:
        self._bytes(f"samples_step{step:07d}.png", png_bytes(image), "samples")

    def checkpoint(self, step: int, model_file: Path) -> None:
        name = f"{model_file.stem}_step{step:07d}{model_file.suffix}"
        self._bytes(name, model_file.read_bytes(), "checkpoints")


def window_means(window: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each logged value over the steps of a window: ``loss`` and ``<term>_loss``."""
    keys = window[-1].keys()
    return {("loss" if k == "total" else f"{k}_loss"): sum(w[k] for w in window) / len(window) for k in keys}

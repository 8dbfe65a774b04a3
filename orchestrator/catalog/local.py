"""The catalog on one machine without Ray: the same stages as ``catalog/pipeline.py`` in this
process, so that a laptop is not slower than a for-loop.

On one machine a Ray Data pipeline costs more than it overlaps: starting Ray and its actors takes
seconds, every image crosses the object store twice, and two actors of one torch thread each run
the model no faster than one of two threads. So where no Ray cluster is named the driver runs the
stages itself: one thread reads and decodes the next block of sources (``load_batch``, a few
blocks ahead at most: memory stays flat with the catalog's length) while this thread runs the
model, encodes and writes (``CatalogStylizer``, the actors' own code). The rows, the files written
and the errors are the pipeline's, row for row.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

from .pipeline import CatalogStylizer, PoolPlan, load_batch

BLOCK_ROWS = 8  # sources decoded together (the pipeline's block size)
AHEAD = 2  # decoded blocks waiting for the model at most


def local_plan(batch_size: int | None, num_gpus: float | None) -> PoolPlan:
    """One model in this process: every torch thread it has, the GPU when there is one (and
    ``num_gpus`` does not say 0)."""
    import torch
    from stylegrid.algorithms.shared.device import pick_device

    gpu = num_gpus != 0 and pick_device(True).type == "cuda"
    return PoolPlan(
        actors=1,
        cpus_per_actor=float(torch.get_num_threads()),
        gpus_per_actor=1.0 if gpu else 0.0,
        threads_per_actor=torch.get_num_threads(),
        batch_size=batch_size or (8 if gpu else 1),
        decode_cpus=1.0,
        engine="local",
    )


def blocks(todo: Sequence[dict], rows: int = BLOCK_ROWS) -> Iterator[dict]:
    """``todo`` ({source, todo} per source) as column batches of ``rows``, the pipeline's layout."""
    for i in range(0, len(todo), rows):
        part = todo[i : i + rows]
        yield {"source": [t["source"] for t in part], "todo": [t["todo"] for t in part]}


class _Decoder(threading.Thread):
    """Decodes blocks ahead of the model into a bounded queue; a failure is handed over, not lost."""

    DONE = object()

    def __init__(self, todo: Sequence[dict], size: int | None):
        super().__init__(name="stylegrid-decode", daemon=True)
        self.todo, self.size = todo, size
        self.out: queue.Queue = queue.Queue(maxsize=AHEAD)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for block in blocks(self.todo):
                if not self._put(load_batch(block, self.size)):
                    return
            self._put(self.DONE)
        except BaseException as exc:  # noqa: BLE001 - raised again in the model's thread
            self._put(exc)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


def local_batches(spec, algorithm: str, param_values: dict, styles, out: str, todo: list[dict],
                  run_id: str, model_locations: dict[str, str]):  # fmt: skip
    """The plan and an iterator of manifest tables, as ``build_pipeline`` gives them."""
    plan = local_plan(spec.batch_size, spec.num_gpus)
    return plan, _run(plan, spec, algorithm, param_values, styles, out, todo, run_id, model_locations)


def _run(plan, spec, algorithm, param_values, styles, out, todo, run_id, model_locations):
    import pyarrow as pa

    stylizer = CatalogStylizer(
        algorithm, param_values, out, spec.format, spec.quality, plan.batch_size,
        plan.threads_per_actor, plan.gpus_per_actor > 0, spec.style_size, run_id, model_locations,
    )  # fmt: skip
    decoder = _Decoder(todo, spec.size)
    decoder.start()
    try:
        while True:
            item = decoder.out.get()
            if item is _Decoder.DONE:
                return
            if isinstance(item, BaseException):
                raise item
            rows = stylizer(item, [styles])
            yield pa.table({name: pa.array(list(values)) for name, values in rows.items()})
    finally:  # an interrupt or an error: the decoding thread stops too
        decoder.stop.set()
        decoder.join(timeout=5)

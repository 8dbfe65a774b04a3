"""The sweep's scheduler on Ray Core actors: one actor per concurrent job slot, each a
``JobRunner`` that keeps the encoder, images and style targets warm across its jobs, with the
spec's ``num_cpus`` / ``num_gpus``. A job goes only to an actor that has started (on a busy
cluster a slot may wait long for its resources), and once no job is left to hand out, idle and
still-starting actors are released to the cluster. A worker process that dies is replaced and its
job retried up to ``retries`` times; a job over ``timeout_s`` is failed and its worker replaced;
early stopping's board decides at each rung. Every finished job goes to the sink.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runtime import Console, start_ray
from ..services import ClusterLost, ServiceUnavailable, cluster_watch
from ..specs.sweep import SweepSpec
from .halving import RungBoard, Rungs
from .jobs import Job
from .sink import Sink
from .worker import JobOutcome, JobRunner


def worker_slots(spec: SweepSpec, n_jobs: int, override: int | None, resources: dict[str, float]) -> int:
    """How many jobs run at once: the spec's (or --max-concurrent) limit, else what fits."""
    fits = math.floor(resources.get("CPU", 1) / spec.resources.num_cpus + 1e-9)
    if spec.resources.num_gpus > 0:
        fits = min(fits, math.floor(resources.get("GPU", 0) / spec.resources.num_gpus + 1e-9))
    limit = override or spec.max_concurrent or max(1, fits)
    return max(1, min(limit, n_jobs))


def schedule(
    spec: SweepSpec,
    todo: list[Job],
    sink: Sink,
    max_concurrent: int | None,
    console: Console,
    init_kwargs: dict,
    model_locations: dict[str, str],
    rung_seeds: Sequence[tuple[str, str, list[dict]]] = (),
) -> None:
    import ray
    from ray.exceptions import RayActorError

    start_ray(init_kwargs, quiet=console.quiet)
    slots = worker_slots(spec, len(todo), max_concurrent, ray.cluster_resources())
    threads = max(1, math.ceil(spec.resources.num_cpus))
    actor_cls = ray.remote(JobRunner).options(
        num_cpus=spec.resources.num_cpus, num_gpus=spec.resources.num_gpus, max_restarts=0, max_task_retries=0
    )

    # A job goes only to a worker that has started: on a shared cluster a worker may wait long
    # for its CPU or GPU, and a job held for it would wait with it while started workers idle.
    starting: dict[Any, Any] = {}  # actor -> its __ray_ready__ reference, until it has started
    idle: deque = deque()  # started workers without a job

    def new_actor() -> None:
        actor = actor_cls.remote(threads, model_locations)
        starting[actor] = actor.__ray_ready__.remote()

    # Each image file goes into the object store once; workers on any node read it from there.
    refs: dict[str, Any] = {}
    for job in todo:
        for path, sha in (
            (job.content, job.content_sha256),
            (job.style, job.style_sha256),
            *job.extra_files(),
        ):
            if sha not in refs:
                refs[sha] = ray.put(Path(path).read_bytes())
    rungs = None
    if spec.early_stopping is not None:  # one small actor holds every rung's results
        stopping = spec.early_stopping
        board = (
            ray.remote(RungBoard)
            .options(num_cpus=0, max_restarts=-1, max_task_retries=-1)
            .remote(stopping.measures, stopping.reduction_factor, stopping.min_results)
        )
        ray.get(board.seed.remote(list(rung_seeds)))
        rungs = Rungs(tuple(stopping.rungs), board)
    for _ in range(slots):
        new_actor()
    queue_ = deque(todo)
    attempts: dict[str, int] = {}
    pending: dict[Any, tuple[Job, Any]] = {}
    started: dict[Any, float] = {}  # when each pending job's (started) worker took it
    bar = console.bar(len(todo), "job")
    shown: tuple = ()
    watch = cluster_watch(init_kwargs)
    gone: str | None = None
    try:
        while queue_ or pending:
            if sink.lost:  # the tracking server went away: nothing more could be recorded
                raise ServiceUnavailable(sink.lost)
            if gone := watch.lost():  # the cluster went away: nothing more will finish
                raise ClusterLost(gone)
            idle.extend(_started(starting))
            while queue_ and idle:
                job, actor = queue_.popleft(), idle.popleft()
                attempts[job.job_id] = attempts.get(job.job_id, 0) + 1
                extra = [refs[sha] for _, sha in job.extra_files()]  # a spatially controlled job's files
                ref = actor.run.remote(
                    job, refs[job.content_sha256], refs[job.style_sha256], *extra, rungs=rungs
                )
                pending[ref] = (job, actor)
                started[ref] = time.monotonic()
            if not queue_:  # nothing left to hand out: give back what idle or starting workers hold
                _release([*idle, *starting])
                idle.clear()
                starting.clear()
            done, _ = ray.wait([*pending, *starting.values()], num_returns=1, timeout=1.0)
            finished: list[tuple[Any, str | None]] = [(ref, None) for ref in done if ref in pending]
            if spec.timeout_s is not None:
                now = time.monotonic()
                finished += [
                    (ref, f"timed out after {spec.timeout_s:g} s")
                    for ref in pending
                    if ref not in done and now - started[ref] > spec.timeout_s
                ]
            for ref, timed_out in finished:
                job, actor = pending.pop(ref)
                started.pop(ref)
                try:
                    if timed_out:
                        raise TimeoutError(timed_out)
                    outcome = ray.get(ref)
                    idle.append(actor)
                except (RayActorError, TimeoutError) as exc:  # the worker died or hung: replace it
                    ray.kill(actor)
                    if attempts[job.job_id] <= spec.retries:
                        queue_.appendleft(job)
                        new_actor()
                        continue
                    if queue_:
                        new_actor()
                    n = attempts[job.job_id]
                    error = (
                        f"{timed_out} ({n} attempt{'s' if n > 1 else ''})"
                        if timed_out
                        else f"worker process died {n} times: {exc}"
                    )
                    outcome = JobOutcome(job.job_id, "failed", error=error)
                sink.put(job, outcome, attempts[job.job_id])
                bar.update(1)
            state = (sink.counts["ok"], sink.counts["failed"], len(pending), sink.counts["stopped"])
            if state != shown:  # done / failed / running (/ stopped); the bar itself gives the ETA
                shown = state
                more = {"stopped": state[3]} if spec.early_stopping else {}
                bar.set_postfix(done=state[0], failed=state[1], running=state[2], **more)
    finally:
        bar.close()
        if not gone:  # (with the cluster gone, ray.kill would wait for it)
            _release([actor for _, actor in pending.values()] + [*idle, *starting])


def _started(starting: dict) -> list:
    """The workers of ``starting`` whose start has returned (with an error too: the job sent to a
    worker that could not start fails like one whose worker died); removes them from it."""
    import ray

    if not starting:
        return []
    up, _ = ray.wait(list(starting.values()), num_returns=len(starting), timeout=0)
    up = set(up)
    actors = [a for a, ref in starting.items() if ref in up]
    for actor in actors:
        del starting[actor]
    return actors


def _release(actors) -> None:
    import ray

    for actor in actors:
        ray.kill(actor)

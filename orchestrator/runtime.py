"""What every workflow (a sweep, a catalog, training) shares while it runs: starting or joining
Ray with one policy, the console (progress bars and notes on stderr, silent with ``quiet``) and
the summary printed at the end. MLflow is ``tracking/tracker.py``; pictures are ``report/pictures.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .services import check_ray_address
from .storage.lock import arm_sigterm


def start_ray(init_kwargs: Mapping[str, Any] | None = None, *, quiet: bool = False) -> None:
    """Join the cluster or start an embedded Ray, once per process.

    ``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` (set by ``ray job submit`` and
    ``ray start``) and otherwise starts an embedded Ray on this machine's CPUs and GPUs. The
    policy is the same for every workflow: the driver's Ray logger at ERROR (stylegrid reports what matters itself), workers' output
    shown on the driver unless ``quiet``, no dashboard for an embedded Ray (nothing to look at
    that stylegrid's own progress does not show, and one process less). ``init_kwargs`` (tests,
    benchmarks) override any of these. Ray's core replaces the SIGTERM handler when it starts,
    so stylegrid's (``lock.arm_sigterm``: SIGTERM stops like Ctrl-C) is armed again.
    """
    import ray

    if ray.is_initialized():
        return
    check_ray_address(init_kwargs)
    ray.init(
        **{
            "logging_level": "ERROR",
            "log_to_driver": not quiet,
            "include_dashboard": False,
            **(init_kwargs or {}),
        }
    )
    arm_sigterm()


def cluster_named(init_kwargs: Mapping[str, Any] | None = None) -> bool:
    """Whether a Ray cluster is there to use: named by ``RAY_ADDRESS`` (as ``ray job submit`` and
    ``ray start`` set it) or by an address in ``init_kwargs``, or already joined by this process.
    The workflows that can also run in their own process (a catalog, a video) choose Ray then."""
    import ray

    return bool(os.environ.get("RAY_ADDRESS")) or "address" in (init_kwargs or {}) or ray.is_initialized()


def share_memory_with_other_workers() -> None:
    """In a Ray worker: give the ``auto`` memory budgets of its jobs this worker's part of its
    node (the CPUs it holds of the node's CPUs; the part of a GPU it holds), so that workers side
    by side on one machine divide its memory between them. Nothing outside a Ray worker."""
    import ray
    from stylegrid.algorithms.shared.memory import share_device

    if not ray.is_initialized():
        return
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:  # a driver (a sweep's own process) holds nothing
        return
    held = context.get_assigned_resources()
    node = next((n for n in ray.nodes() if n["NodeID"] == context.get_node_id()), None)
    node_cpus = (node or {}).get("Resources", {}).get("CPU") or os.cpu_count() or 1
    share_device(held.get("CPU", node_cpus) / node_cpus, held.get("GPU", 0.0))


class Console:
    """Notes and progress bars on stderr (stdout is left to the summary); nothing when quiet."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def say(self, *parts: object) -> None:
        if not self.quiet:
            print(*parts, file=sys.stderr, flush=True)

    def bar(self, total: int | None, unit: str):
        """A tqdm bar with counts, rate and ETA (disabled when quiet)."""
        from tqdm import tqdm

        return tqdm(
            total=total, unit=unit, disable=self.quiet, file=sys.stderr, dynamic_ncols=True, mininterval=1.0
        )

    def track(self, items: Iterable, total: int, unit: str, size=lambda item: 1, postfix=None) -> Iterator:
        """Yields ``items``, advancing a bar by ``size(item)`` after each and showing
        ``postfix()`` (a dict of counts) beside it."""
        bar = self.bar(total, unit)
        try:
            for item in items:
                yield item
                bar.update(size(item))
                if postfix is not None:
                    bar.set_postfix(postfix(), refresh=False)
        finally:
            bar.close()


@dataclass
class Summary:
    """What a workflow prints when it ends (``print_summary``): a headline, warnings, where its
    outputs are (label, place) and whether it was interrupted."""

    headline: str
    places: Sequence[tuple[str, str]] = ()
    warnings: Sequence[str] = field(default_factory=list)
    interrupted: bool = False


def print_summary(summary: Summary) -> None:
    """The headline and the places on stdout; warnings on stderr; how to finish an interrupted run."""
    print(summary.headline)
    for w in summary.warnings:  # each on one line (a database error spans several), at most 500 characters
        text = " ".join(str(w).split())
        print(f"warning: {text if len(text) <= 500 else text[:497] + '...'}", file=sys.stderr)
    width = max((len(label) for label, _ in summary.places), default=0) + 1
    for label, place in summary.places:
        print(f"{label + ':':<{width}} {place}")
    if summary.interrupted:
        print("interrupted: re-run the same command to finish the rest (finished work is kept)")

"""A memo for expensive targets computed from style images (Gram matrices, sorted histograms,
patch banks, AdaIN statistics): a worker keeps one dict across its jobs, keyed by the images'
values (``fingerprint``), so a sweep computes each style's targets once per worker."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, MutableMapping, Sequence
from typing import TypeVar

import torch

MEMO_ENTRIES = 64
T = TypeVar("T")


def fingerprint(t: torch.Tensor) -> str:
    """A digest of a tensor's shape and values (to key cached targets by the images they come from)."""
    data = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return f"{tuple(t.shape)}:{hashlib.blake2b(data, digest_size=16).hexdigest()}"


def memo(cache: MutableMapping | None, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` once per key when the caller passed a cache (a worker keeps one across jobs)."""
    if cache is None:
        return compute()
    if key not in cache:
        if len(cache) >= MEMO_ENTRIES:
            cache.pop(next(iter(cache)))  # oldest first
        cache[key] = compute()
    return cache[key]


def style_key(
    kind: str, encoder, styles: Sequence[torch.Tensor], precision: str, pooling: str, *extra
) -> tuple:
    """The ``memo`` key of targets computed from style images: which targets (``kind`` and
    ``extra``), from which images (by value), through which encoder, precision and device."""
    return (
        kind,
        tuple(fingerprint(s) for s in styles),
        precision,
        encoder.source,
        pooling,
        str(styles[0].device),
        *extra,
    )

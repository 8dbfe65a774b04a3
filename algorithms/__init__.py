"""Style-transfer algorithms: pure PyTorch, no Ray, MLflow or file I/O (see base.py).

The registry (``ALGORITHMS``, ``get_algorithm``) and the interface types load on first use, so
that importing a light submodule (``algorithms.names``) does not load PyTorch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ALGORITHMS": "registry",
    "get_algorithm": "registry",
    "Algorithm": "base",
    "StepInfo": "base",
    "StepLoss": "base",
    "StylizeResult": "base",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ALGORITHMS", "Algorithm", "StepInfo", "StepLoss", "StylizeResult", "get_algorithm"]

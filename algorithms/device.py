"""Where and in which precision a model runs: the device a job gets (a GPU when asked for and
present, else the CPU) and bf16 autocast where the hardware computes bf16 natively."""

from __future__ import annotations

import contextlib

import torch


def pick_device(want_gpu: bool | str = "auto") -> torch.device:
    """``cuda`` when a GPU is wanted (``True`` or ``"auto"``) and this process has one, else the
    CPU. ``"cuda"`` / ``"cpu"`` name the device outright (a missing GPU is an error)."""
    if want_gpu in ("cuda", "cpu"):
        if want_gpu == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA GPU is available")
        return torch.device(want_gpu)
    return torch.device("cuda" if want_gpu and torch.cuda.is_available() else "cpu")


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()

"""Where and in which precision a model runs: the device a job gets (a GPU when asked for and
present, else the CPU) and bf16 autocast where the hardware computes bf16 natively."""

from __future__ import annotations

import contextlib

import torch


def pick_device(want: bool | str = "auto") -> torch.device:
    """The device to run on. ``True`` or ``"auto"``: a CUDA GPU when this process has one, else
    the CPU; ``False``: the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"``: that device (``ValueError``
    when it does not exist here)."""
    if isinstance(want, bool) or want == "auto":
        return torch.device("cuda" if want and torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(want)
    except RuntimeError:
        raise ValueError(f"device {want!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {want}: CUDA is not available on this machine (use --device cpu or auto)")
    return device


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

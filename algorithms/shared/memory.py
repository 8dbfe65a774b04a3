"""Memory budgets: how much memory one pass of a network may take, and the tile size that keeps a
large image within it (pure, apart from reading the device's size).

A budget is given as ``auto`` or a size (``2GB``, ``512MB``, ``1.5G``). ``auto`` is a share of the
device: 60 % of a GPU's memory, half of the machine's RAM, divided between the workers that share
the machine by the CPUs (GPUs) each holds (``share_device``). A feed-forward pass costs about a fixed
number of bytes per pixel (its activations; measured with ``benchmarks/fast_style.py``); when
``batch x H x W`` of them would exceed the budget, the image is done in tiles whose box (core plus
the halo on both sides) fits (``tile_core``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re

import torch

from ..names import BUDGET_HELP  # noqa: F401  (re-exported)

AUTO = "auto"
GPU_SHARE = 0.6
RAM_SHARE = 0.5
MIN_CORE = 64  # px: below this the halo's recomputation dominates; a budget that small is refused
_UNITS = {"": 2**20, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]b?|)\s*$", re.IGNORECASE)


def check_budget(text: str) -> str:
    """``text`` if it is ``auto`` or a size; ``ValueError`` saying what is accepted otherwise."""
    if text != AUTO and not _SIZE.match(str(text)):
        raise ValueError(f"memory_budget must be 'auto' or a size such as 2GB or 512MB, got {text!r}")
    return text


def budget_bytes(text: str, device: torch.device) -> int:
    """The budget in bytes (a bare number is MB)."""
    if check_budget(text) == AUTO:
        return device_budget(device)
    number, unit = _SIZE.match(str(text)).groups()
    return int(float(number) * _UNITS[unit.lower()])


_SHARE = {"cpu": 1.0, "cuda": 1.0}  # the part of the machine this process's jobs have


def share_device(cpus: float, gpus: float) -> None:
    """Say which part of the machine this process's jobs have (a Ray worker holding 1 of a node's
    8 CPUs: 1/8; half a GPU: 1/2), so that ``auto`` budgets of workers side by side on one
    machine share its memory instead of each taking the whole share. Process-wide."""
    _SHARE["cpu"] = min(1.0, max(cpus, 1e-3))
    _SHARE["cuda"] = min(1.0, gpus) if gpus > 0 else 1.0


def device_budget(device: torch.device) -> int:
    """60 % of a GPU's memory, or half of the machine's physical RAM; times this process's part
    of the machine (``share_device``)."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return int(GPU_SHARE * total * _SHARE["cuda"])
    return int(RAM_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * _SHARE["cpu"])


@functools.cache
def return_freed_memory() -> bool:
    """Make glibc serve allocations of 128 KB and more with mmap, and give them back when freed.
    By default glibc raises that threshold as large blocks are freed and then serves them from
    its heap, which it keeps: tile after tile of tensors of different sizes, the process's memory
    grew to 2-4 times the budget (johnson at 1024 px in tiles for 100 MB: 376 MB; 191 MB with
    this). Process-wide and once; False where there is no glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def budget_note(layout: str, budget: int) -> str:
    """What result rows record: ``2x3 tiles of 160 px, halo 64, overlap 32 (memory_budget 64 MB)``."""
    return f"{layout} (memory_budget {budget / 2**20:.0f} MB)"


def budget_layout(shape, bytes_per_pixel: float, halo: int, overlap: int, budget_text: str,
                  device, align: int = 8) -> tuple[int | None, int, str]:  # fmt: skip
    """For a feed-forward batch of ``shape`` [B, C, H, W] under the budget ``budget_text``: the
    tile core (None for one pass; a multiple of ``align``), the budget in bytes, and what the
    result records ("" for one pass, else ``budget_note`` of the layout)."""
    from .tiling import plan_tiles

    budget = budget_bytes(budget_text, torch.device(device))
    core = tile_core(shape[-2], shape[-1], shape[0], bytes_per_pixel, halo, budget, align)
    if core is None:
        return None, budget, ""
    layout = plan_tiles(shape[-2], shape[-1], core, halo, overlap, align=align)
    return core, budget, budget_note(layout.describe(), budget)


def tile_core(height: int, width: int, batch: int, bytes_per_pixel: float, halo: int, budget: int,
              align: int = 8) -> int | None:  # fmt: skip
    """None when one pass of the whole image fits the budget; else the largest tile core (a
    multiple of ``align``) whose box, core + 2 x halo on a side, fits. ``ValueError`` when not
    even a ``MIN_CORE`` px core fits: it names the budget the image would need at the least."""
    if batch * height * width * bytes_per_pixel <= budget:
        return None
    side = int((budget / (batch * bytes_per_pixel)) ** 0.5)  # the largest box side that fits
    core = (side - 2 * halo) // align * align
    if core < MIN_CORE:
        need = batch * (MIN_CORE + 2 * halo) ** 2 * bytes_per_pixel
        raise ValueError(
            f"memory_budget {budget / 2**20:.0f} MB is too small for tiles of {MIN_CORE} px with "
            f"{halo} px of context; give at least {need / 2**20:.0f} MB"
        )
    return core

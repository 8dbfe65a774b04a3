"""The checkpoints of ``train/driver.py``: a folder with the model's state dict (the recipe's file name),
the optimiser's and ``state.json`` (the step and the losses of its window), written locally and
handed to Ray Train, which copies it to ``storage`` (a folder or a URI); and the export of the
newest one as the plain state dict with its ``.json`` that the algorithms read."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from stylegrid.algorithms.base import NonFiniteLoss

from ..storage import locations as storage
from ..storage.files import write_atomic


def save_checkpoint(
    folder: Path, model: torch.nn.Module, optimizer, step: int, losses: dict, model_file: str
) -> None:
    bad = [name for name, p in model.state_dict().items() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLoss(f"step {step}: the model has NaN or infinite weights ({bad[0]}); not saved")
    torch.save(model.state_dict(), folder / model_file)
    torch.save(optimizer.state_dict(), folder / "optimizer.pth")
    (folder / "state.json").write_text(json.dumps({"step": step, **losses}))


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer, model_file: str) -> int:
    model.load_state_dict(torch.load(folder / model_file, map_location="cpu", weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pth", map_location="cpu", weights_only=True))
    return int(json.loads((folder / "state.json").read_text())["step"])


def latest_checkpoint(root: str | Path, model_file: str) -> str | None:
    """The checkpoint folder under ``root`` (a folder or a URI) with the highest step
    (``state.json``), written the way ``root`` is."""
    best, best_step = None, -1
    for state in storage.list_files(str(root), recursive=True):
        if os.path.basename(state) != "state.json":
            continue
        folder = state[: -len("state.json")].rstrip("/\\")
        try:
            step = int(json.loads(storage.read_bytes(state))["step"])
        except (ValueError, KeyError, OSError):
            continue  # a checkpoint being written or damaged: not a candidate
        if step > best_step and storage.exists(storage.join(folder, model_file)):
            best, best_step = folder, step
    return best


def checkpoint_step(checkpoint: str) -> int:
    return int(json.loads(storage.read_bytes(storage.join(checkpoint, "state.json")))["step"])


def export_model(checkpoint: str, dest: Path, record: dict, half: bool = False) -> Path:
    """The model of the checkpoint at ``checkpoint`` (a folder or a URI) as a plain state dict at
    ``dest`` (fp16 if ``half``) and ``record`` with the steps and final losses at
    ``dest.with_suffix('.json')``."""
    data = storage.read_bytes(storage.join(checkpoint, record["model_file"]))
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if half:
        state = {k: v.half() for k, v in state.items()}
    done = json.loads(storage.read_bytes(storage.join(checkpoint, "state.json")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".tmp") as tmp:
        torch.save(state, tmp.name)
    os.chmod(tmp.name, 0o644)  # a temporary file is private; the export is an ordinary file
    os.replace(tmp.name, dest)
    meta = {
        **record,
        "steps": done["step"],
        **{f"final_{k}": v for k, v in done.items() if k.endswith("loss")},
        "dtype": "float16" if half else "float32",
    }
    write_atomic(dest.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return dest

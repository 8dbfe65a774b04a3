"""The Ray Train loop on each worker: its data shard and crops (seeded by the seed, its rank and the
step, so a resumed run does not replay its crops), the recipe's step under DDP, the learning-rate
schedule, rank 0's logging (``relay.py``) and the checkpoints handed to Ray Train
(``ray.train.report``). The driver around it is ``driver.py``.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from pathlib import Path

import torch
from stylegrid.algorithms.base import check_finite

from ..report.pictures import sample_grid
from .checkpoints import load_checkpoint, save_checkpoint
from .data import CropSampler, ImagePool, shard_epochs
from .held_out import Validation
from .recipes import RECIPES, Recipe
from .relay import RankZeroLogger, window_means


def train_loop(config: dict) -> None:
    """Runs in every Ray Train worker."""
    import logging

    import ray.train
    import ray.train.torch

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a plan and a "finished" per shard

    from stylegrid.algorithms.shared.device import resolve_precision

    recipe: Recipe = RECIPES[config["kind"]]
    spec = recipe.spec_type.model_validate(config["spec"])
    styles = config["styles"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    precision = resolve_precision(spec.precision, device)
    task = recipe.setup(spec, styles, device, precision)
    network = recipe.new_model(spec, styles)
    optimizer = torch.optim.Adam(network.parameters(), lr=spec.lr)
    step = 0
    checkpoint = ray.train.get_checkpoint()  # set when Ray Train restarts the workers itself
    if checkpoint:
        with checkpoint.as_directory() as folder:
            step = load_checkpoint(Path(folder), network, optimizer, recipe.model_file)
    elif config.get("resume"):  # a new run of the command: the newest checkpoint of the last one
        with ray.train.Checkpoint(config["resume"]).as_directory() as folder:
            step = load_checkpoint(Path(folder), network, optimizer, recipe.model_file)
    model = ray.train.torch.prepare_model(network)  # DDP across the workers; moves it to the device
    plain = model.module if hasattr(model, "module") else model

    def report_bad(path: str, reason: str) -> None:
        print(f"{recipe.command}: skipping {reason}", file=sys.stderr, flush=True)

    seed = hash((spec.seed, rank, step)) & 0xFFFFFFFF  # a resumed run does not replay its crops
    rng = random.Random(seed)
    kinds = ("content", "style") if recipe.style_crops else ("content",)
    pools = {
        kind: ImagePool(
            kind, shard_epochs(ray.train.get_dataset_shard(kind), seed), spec.image_size, rng, report_bad
        )
        for kind in kinds
    }
    sampler = CropSampler(pools["content"], pools.get("style"), spec.crop, rng)
    per_worker = max(1, math.ceil(spec.batch_size / world))
    tracker = RankZeroLogger(config["relay"], config["run_id"]) if rank == 0 else None
    if tracker is not None and step > 0:  # restarted (a lost worker or node) or run again
        tracker.resumed(step)
    validation = Validation.of(config["validation"], spec, device) if rank == 0 else None
    recent: list[dict[str, float]] = []
    while step < spec.steps:
        content, style = (None if t is None else t.to(device) for t in sampler.batch(per_worker))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, spec.lr, spec.lr_decay)
        result = recipe.step(task, model, content, style, rng, spec, precision)
        optimizer.zero_grad(set_to_none=True)
        total = float(result.total.detach())
        check_finite({"total": total}, step + 1)  # no NaN model is saved
        result.total.backward()
        optimizer.step()
        step += 1
        recent.append({"total": total, **result.terms})
        if tracker is not None and (step % spec.log_every == 0 or step == spec.steps):
            tracker.metrics(step, recent[-spec.log_every :], learning_rate(step - 1, spec.lr, spec.lr_decay))
        if tracker is not None and (step % spec.sample_every == 0 or step == spec.steps):
            tracker.grid(step, sample_grid(*(t.cpu() for t in result.grid)))
        if validation is not None and (step % spec.validate_every == 0 or step == spec.steps):
            tracker.validation(step, validation.losses(recipe, task, plain, spec, precision))
        if step % spec.checkpoint_every == 0 or step == spec.steps:
            summary = window_means(recent[-spec.log_every :])
            with tempfile.TemporaryDirectory() as folder:
                ckpt = None
                if rank == 0:
                    save_checkpoint(Path(folder), plain, optimizer, step, summary, recipe.model_file)
                    tracker.checkpoint(step, Path(folder) / recipe.model_file)
                    ckpt = ray.train.Checkpoint.from_directory(folder)
                ray.train.report({"step": step, **summary}, checkpoint=ckpt)
            recent = recent[-spec.log_every :]


def learning_rate(step: int, lr: float, decay: float) -> float:
    """Inverse-time decay (pytorch-AdaIN's): lr / (1 + decay x step); constant when decay is 0."""
    return lr / (1.0 + decay * step)

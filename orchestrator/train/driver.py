"""The Ray Train driver shared by every trained network: ``stylegrid train-adain SPEC`` (the AdaIN
decoder) and ``stylegrid train-johnson SPEC`` (a multi-style fast network), one driver with a
``Recipe`` per model (``train_recipes.py``: its spec, model, step and record).

Data-parallel over ``num_workers`` Ray Train workers (GPUs on a cluster, CPU processes here): each
worker draws its own random content crops (and style crops, for AdaIN) from the image lists (with
replacement, seeded by the seed, its rank and the step, so a resumed run does not replay its
crops) and the gradients are averaged by DDP. Rank 0 logs the losses, sample grids (content |
style | output) and every checkpoint's model to one MLflow run, through a small actor on the
driver's node (``TrackingRelay``: only the driver's node needs to reach the tracking store), and
hands each checkpoint to Ray Train (``ray.train.report``), which keeps the last
``keep_checkpoints``. Running the same command again resumes from the newest checkpoint and
continues the same MLflow run. At the end the model is written to ``<output>/<model file>``
(``decoder.pth``, ``network.pth``) with a ``.json`` beside it (steps, final losses, the spec and
what the algorithm needs to read it back: the encoder, the styles), logged to the run as an MLflow
model (``mlflow.pytorch``, with the two files inside) and, with ``register_as``, registered under
that name, so that ``model=models:/<name>/<version>`` finds it.

Content and style are local files, folders and globs or URIs (``s3://bucket/coco/``): Ray Data
reads the content (``read_binary_files``) and streams it to the workers, one shard per worker; the
styles are read by the driver and sent whole to each worker (AdaIN's as a Ray Data dataset too,
whose crops vary per step). A file that cannot be decoded is reported once and skipped.
Checkpoints go to ``storage`` (a folder, or a URI every node reaches: ``s3://bucket/prefix`` on a
cluster), and ``FailureConfig(max_failures)`` restarts the workers from the newest checkpoint
there when a worker or a node is lost.

Why this module is long (about 410 lines): it is the one driver of every trained network, the
Ray Train loop on the workers, the MLflow relay they log through and the driver's resume, export
and model registration; the per-network parts are ``train_recipes.py``'s, checkpoints
``train_checkpoints.py``'s, data ``train_data.py``'s.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from stylegrid.algorithms.base import check_finite

from ..images import png_bytes
from ..params import apply_model_settings
from ..report.pictures import sample_grid
from ..runtime import Console, Summary, print_summary, start_ray
from ..specs.sweep import SpecError, output_dir, resolve_image_locations, resolve_path, spec_dir
from ..specs.train import TrainSpec, load_train_spec
from ..storage import locations as storage
from ..storage.files import write_atomic
from ..tracking.tracker import RunsView, Tracker, resolve_tracking_uri, ui_command
from .checkpoints import (
    checkpoint_step,
    export_model,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .data import CropSampler, ImagePool, image_dataset, shard_epochs
from .held_out import Validation, data_record, first_images, split_held_out
from .recipes import RECIPES, Recipe

# The runs table a training experiment opens on: the losses and the held-out validation loss
TRAIN_VIEW = RunsView(
    key="stylegrid-training",
    name="stylegrid: training losses",
    columns=tuple(f"metrics.`{m}`" for m in ("loss", "val_loss", "content_loss", "val_content_loss",
                                              "style_loss", "val_style_loss", "lr", "resumed_from_step")),
)  # fmt: skip


def window_means(window: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each logged value over the steps of a window: ``loss`` and ``<term>_loss``."""
    keys = window[-1].keys()
    return {("loss" if k == "total" else f"{k}_loss"): sum(w[k] for w in window) / len(window) for k in keys}


# --- the per-worker loop -----------------------------------------------------------------------------


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


INIT_FIELDS = ("init_decoder", "init_network", "init_decoders", "init_relu4_1")  # weights to start from


def check_start(recipe: Recipe, spec: TrainSpec, styles, spec_path) -> None:
    """Build, in the driver, the network every worker will build first, so that a spec whose
    starting weights (``INIT_FIELDS``) are missing, unreadable or of another shape fails now,
    naming the spec, rather than in every worker after Ray has started and retried. A spec that
    starts from scratch has nothing to check."""
    from stylegrid.algorithms.shared.vgg import WeightsUnavailable

    if not any(getattr(spec, field, None) for field in INIT_FIELDS):
        return
    try:
        recipe.new_model(spec, styles)
    except SpecError as error:
        raise SpecError(f"{spec_path}: {error}") from None
    except (WeightsUnavailable, OSError, RuntimeError, KeyError, ValueError) as error:
        raise SpecError(f"{spec_path}: the network to start from cannot be built: {error}") from None


def learning_rate(step: int, lr: float, decay: float) -> float:
    """Inverse-time decay (pytorch-AdaIN's): lr / (1 + decay x step); constant when decay is 0."""
    return lr / (1.0 + decay * step)


class TrackingRelay:
    """MLflow writes of the workers, made where the driver runs: a Ray actor on the driver's
    node, so that the tracking store only has to be reachable from there (a SQLite file, or a
    tracking server bound to the head's loopback, never opened to the cluster's network)."""

    def __init__(self, tracking_uri: str):
        self.tracker = Tracker(tracking_uri)

    def log_metrics(self, run_id: str, values: dict[str, float], step: int) -> None:
        self.tracker.log_metrics(run_id, values, step=step)

    def log_bytes(self, run_id: str, name: str, data: bytes, folder: str) -> None:
        self.tracker.log_bytes(run_id, name, data, folder)


def start_relay(tracking_uri: str):
    """A ``TrackingRelay`` actor pinned to this (the driver's) node; it needs no CPU."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(TrackingRelay).options(num_cpus=0, scheduling_strategy=here).remote(tracking_uri)


class RankZeroLogger:
    """Rank 0's MLflow logging, into the run the driver created, through the driver's
    ``TrackingRelay`` (each call waits for its write, so that an error surfaces here)."""

    def __init__(self, relay, run_id: str):
        self.relay = relay
        self.run_id = run_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        import ray

        ray.get(self.relay.log_metrics.remote(self.run_id, values, step))

    def _bytes(self, name: str, data: bytes, folder: str) -> None:
        import ray

        ray.get(self.relay.log_bytes.remote(self.run_id, name, data, folder))

    def metrics(self, step: int, window: Sequence[Mapping[str, float]], lr: float) -> None:
        self._metrics({**window_means(window), "lr": lr}, step)

    def resumed(self, step: int) -> None:
        """The step this start of the workers continues from (a checkpoint)."""
        self._metrics({"resumed_from_step": float(step)}, step)

    def validation(self, step: int, values: dict[str, float]) -> None:
        self._metrics(values, step)

    def grid(self, step: int, image: Image.Image) -> None:
        self._bytes(f"samples_step{step:07d}.png", png_bytes(image), "samples")

    def checkpoint(self, step: int, model_file: Path) -> None:
        name = f"{model_file.stem}_step{step:07d}{model_file.suffix}"
        self._bytes(name, model_file.read_bytes(), "checkpoints")


# --- the driver ------------------------------------------------------------------------------------------


def train(
    spec_path: str | os.PathLike,
    *,
    kind: str = "adain",
    output: str | None = None,
    steps: int | None = None,
    num_workers: int | None = None,
    export: str | None = None,
    register_as: str | None = None,
    quiet: bool = False,
    settings: Sequence[str] = (),
) -> Path:
    """Train (or resume) per the spec the network of ``kind`` (a ``RECIPES`` key); returns the
    exported file's path. ``settings`` are the command line's ``--set NAME=VALUE`` on the spec's
    fields (``lr=1e-4``), under the dedicated flags (``--steps``)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    recipe = RECIPES[kind]
    command = recipe.command
    spec = apply_model_settings(load_train_spec(spec_path, recipe.spec_type), settings)
    overrides = {"steps": steps, "num_workers": num_workers, "register_as": register_as}
    spec = spec.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    base = spec_dir(spec_path)
    as_written = spec  # what the model's .json records (paths as the spec gives them)
    for field in INIT_FIELDS:  # files to start from
        start = getattr(spec, field, None)  # ... relative to the spec's folder
        if start and start not in ("default", "wct") and "://" not in start:  # wct: the shipped WCT decoders
            spec = spec.model_copy(update={field: str(resolve_path(start, base))})
    content = resolve_image_locations(spec.content, base, "content", spec_path)
    style = resolve_image_locations(spec.style, base, "style", spec_path)
    content, held_content = split_held_out(content, spec.held_out_sha256)
    held_style: list[str] = []
    if recipe.style_crops:  # styles that are data, not the network's own paintings
        style, held_style = split_held_out(style, spec.held_out_sha256)
    for what, left in (("content", content), ("style", style)):
        if not left:
            raise SpecError(
                f"{spec_path}: held_out_sha256 {spec.held_out_sha256} leaves no {what} image to train on"
            )
    styles = recipe.styles(spec, style, str(spec_path))
    check_start(recipe, spec, styles, spec_path)
    data = data_record(
        spec, spec_path, content, style, held_content, held_style
    )  # a bad provenance fails now
    out = output_dir(spec, spec_path, output)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(quiet)

    tracking_uri, embedded = resolve_tracking_uri(spec.tracking_uri, out)
    tracker = Tracker(
        tracking_uri, f"{command}/{spec.name}", out / "mlartifacts" if embedded else None, view=TRAIN_VIEW
    )
    state_file = out / "train_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    run_id = state.get("mlflow_run_id")
    if run_id is None:
        run_id = tracker.start_run(spec.name, {"stylegrid.kind": command})
        values = {
            **spec.model_dump(),
            "content_images": len(content),
            "style_images": len(style),
            "held_out_content_images": len(held_content),
            "held_out_style_images": len(held_style),
        }
        tracker.log_params(run_id, values, limit=500)
        write_atomic(state_file, json.dumps({"mlflow_run_id": run_id}).encode())
    else:
        tracker.resume_run(run_id)

    store = checkpoint_storage(spec, spec_path, out)
    resume = latest_checkpoint(store, recipe.model_file)
    done = 0 if resume is None else checkpoint_step(resume)
    held = f" ({len(held_content)} and {len(held_style)} held out)" if spec.held_out_sha256 else ""
    console.say(
        f"{command} {spec.name}: {len(content)} content and {len(style)} style images{held}, "
        f"{spec.num_workers} worker(s), step {done} of {spec.steps}"
    )
    if done < spec.steps:
        start_ray(quiet=quiet)
        datasets = {"content": image_dataset(content)}
        if recipe.style_crops:
            datasets["style"] = image_dataset(style)
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={
                "kind": kind,
                "spec": spec.model_dump(),
                "styles": styles,
                "relay": start_relay(tracking_uri),
                "run_id": run_id,
                "resume": str(resume) if resume else None,
                "validation": {
                    "content": first_images(held_content, spec.validation_images),
                    "style": first_images(held_style, spec.validation_images),
                },
            },
            scaling_config=ScalingConfig(
                num_workers=spec.num_workers,
                use_gpu=spec.use_gpu,
                resources_per_worker={
                    "CPU": spec.cpus_per_worker,
                    **({"GPU": 1} if spec.use_gpu else {}),
                    **spec.worker_resources,
                },
            ),
            datasets=datasets,
            dataset_config=DataConfig(datasets_to_split=["content"]),  # every worker sees every style
            run_config=RunConfig(
                name=spec.name,
                storage_path=store,
                checkpoint_config=CheckpointConfig(num_to_keep=spec.keep_checkpoints),
                failure_config=FailureConfig(max_failures=spec.max_failures),
            ),
        )
        started = time.monotonic()
        try:
            trainer.fit()
        except BaseException:
            tracker.end_run(run_id, "KILLED" if _interrupted() else "FAILED")
            raise
        finally:  # the minutes of every run of the command add up, a resumed one's included
            state = json.loads(state_file.read_text())
            state["train_seconds"] = state.get("train_seconds", 0.0) + time.monotonic() - started
            write_atomic(state_file, json.dumps(state).encode())
    final = latest_checkpoint(store, recipe.model_file)
    if final is None:
        raise RuntimeError(f"{store}: training produced no checkpoint")
    state = json.loads(state_file.read_text())
    record = {
        **recipe.record(spec, styles),
        "trained_with": f"stylegrid {command}",
        "model_file": recipe.model_file,
        "train_minutes": round(state.get("train_seconds", 0.0) / 60, 1),
        "data": data,
        "spec": as_written.model_dump(),
    }
    dest = export_model(final, out / recipe.model_file, record)
    shipped = export_model(final, Path(export).expanduser().resolve(), record, half=True) if export else None
    steps_done = checkpoint_step(final)
    state = json.loads(state_file.read_text())
    logged = state.get("model", {})
    if logged.get("step") != steps_done or logged.get("registered_as") != spec.register_as:
        tracker.log_file(run_id, dest.with_suffix(".json"))
        network = recipe.architecture(spec, styles)
        network.load_state_dict(torch.load(dest, map_location="cpu", weights_only=True))
        uri = tracker.log_model(run_id, network, [dest, dest.with_suffix(".json")], spec.register_as)
        logged = {"step": steps_done, "registered_as": spec.register_as, "uri": uri}
        write_atomic(state_file, json.dumps({**state, "model": logged}).encode())
    tracker.end_run(run_id, "FINISHED")
    if not quiet:
        places = [(recipe.model_file.removesuffix(".pth"), f"{dest} (and {dest.with_suffix('.json').name})")]
        if shipped:
            places.append(("exported", str(shipped)))
        places.append(
            ("MLflow", f"run {run_id}: {ui_command(tracking_uri, tracker.experiment_id, TRAIN_VIEW.key)}")
        )
        places.append(("MLflow model", logged["uri"]))
        print_summary(Summary(f"{command} {spec.name}: {spec.steps} steps done", places))
    return shipped or dest


def checkpoint_storage(spec: TrainSpec, spec_path: str | os.PathLike, out: Path) -> str:
    """Where Ray Train keeps the checkpoints: the spec's ``storage`` (a URI as written, a folder
    relative to the spec's), else ``<output>/ray_train``."""
    if spec.storage is None:
        return str(out / "ray_train")
    if storage.is_uri(spec.storage):
        return spec.storage.rstrip("/")
    return str(resolve_path(spec.storage, spec_dir(spec_path)).resolve())


def _interrupted() -> bool:
    exc = sys.exc_info()[1]
    return isinstance(exc, KeyboardInterrupt)

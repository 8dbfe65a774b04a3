"""The Ray Train driver shared by every trained network: ``stylegrid train-adain SPEC`` (the AdaIN
decoder) and ``stylegrid train-johnson SPEC`` (a multi-style fast network), one driver with a
``Recipe`` per model (``recipes.py``: its spec, model, step and record).

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

The loop on the workers is ``loop.py``, the MLflow relay they log through ``relay.py``; the
per-network parts are ``recipes.py``'s, checkpoints ``checkpoints.py``'s, data ``data.py``'s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..params import apply_model_settings
from ..runtime import Console, Summary, print_summary, start_ray
from ..services import ClusterLost, cluster_watch
from ..specs.loading import SpecError, output_dir, resolve_image_locations, resolve_path, spec_dir
from ..specs.train import TrainSpec, load_train_spec
from ..storage import locations as storage
from ..storage.files import write_atomic
from ..tracking.tracker import tracking_store
from ..tracking.ui import RunsView, ui_command
from .checkpoints import (
    checkpoint_step,
    export_model,
    latest_checkpoint,
)
from .data import image_dataset
from .held_out import data_record, first_images, split_held_out
from .loop import train_loop
from .recipes import RECIPES, Recipe
from .relay import start_relay

# The runs table a training experiment opens on: the losses and the held-out validation loss
TRAIN_VIEW = RunsView(
    key="stylegrid-training",
    name="stylegrid: training losses",
    columns=tuple(f"metrics.`{m}`" for m in ("loss", "val_loss", "content_loss", "val_content_loss",
                                              "style_loss", "val_style_loss", "lr", "resumed_from_step")),
)  # fmt: skip


# --- the per-worker loop -----------------------------------------------------------------------------


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

    mlflow_store = tracking_store(spec.tracking_uri, out)
    tracker = mlflow_store.tracker(f"{command}/{spec.name}", view=TRAIN_VIEW)
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
                "relay": start_relay(mlflow_store.uri),
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
        started, watch = time.monotonic(), cluster_watch()
        try:
            trainer.fit()
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt)
            gone = None if stopped else watch.gone()
            tracker.end_run(run_id, "KILLED" if stopped or gone else "FAILED")
            if gone:  # the checkpoints written are kept; the line says to run it again
                raise ClusterLost(gone) from None
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
            ("MLflow", f"run {run_id}: {ui_command(mlflow_store.uri, tracker.experiment_id, TRAIN_VIEW.key)}")
        )
        places.append(("MLflow model", logged["uri"]))
        print_summary(Summary(f"{command} {spec.name}: {spec.steps} steps done", places))
    return shipped or dest


def checkpoint_storage(spec: TrainSpec, spec_path: str | os.PathLike, out: Path) -> str:
    """Where Ray Train keeps the checkpoints: the spec's ``storage`` (a URI as written, a folder
    relative to the spec's), else ``<output>/ray_train``."""
    if spec.storage is None:
        return str(out / "ray_train")
    return storage.absolute(spec.storage, spec_dir(spec_path))

"""The Ray Train driver: ``stylegrid train-adain SPEC`` trains an AdaIN decoder with Ray Train
(``TorchTrainer``); the model and its losses are ``algorithms/adain.py``.

Data-parallel over ``num_workers`` Ray Train workers (GPUs on a cluster, CPU processes here): each
worker draws its own random (content, style) crops from the two image lists (with replacement,
seeded by the seed, its rank and the step, so a resumed run does not replay its crops) and the
gradients are averaged by DDP. Rank 0 logs the losses, sample grids (content | style | output)
and every checkpoint's decoder to one MLflow run, through a small actor on the driver's node
(``TrackingRelay``: only the driver's node needs to reach the tracking store), and hands each checkpoint to Ray Train
(``ray.train.report``), which keeps the last ``keep_checkpoints``. Running the same command again
resumes from the newest checkpoint and continues the same MLflow run. At the end the decoder is
written as ``<output>/decoder.pth`` (the pytorch-AdaIN layout) with ``decoder.json`` beside it
(encoder, steps, final losses, the spec), which ``adain`` reads to pair it with its encoder.

Content and style are local files, folders and globs or URIs (``s3://bucket/coco/``): Ray Data
reads them (``read_binary_files``) and streams them to the workers, the content split into one
shard per worker, the style images (few) given whole to each; a file that cannot be decoded is
reported once and skipped. Checkpoints go to ``storage`` (a folder, or a URI every node reaches:
``s3://bucket/prefix`` on a cluster), and ``FailureConfig(max_failures)`` restarts the workers
from the newest checkpoint there when a worker or a node is lost.

The losses and the learning-rate schedule are in ``algorithms/adain.py`` (``training_losses``,
``learning_rate``); the spec is ``spec.TrainSpec``.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from algorithms.base import NonFiniteLoss, check_finite

from . import storage
from .files import write_atomic
from .images import png_bytes
from .pictures import sample_grid
from .runtime import Console, Summary, print_summary, start_ray
from .spec import TrainSpec, load_train_spec, output_dir, resolve_image_locations, resolve_path, spec_dir
from .tracking import Tracker, resolve_tracking_uri, ui_command
from .train_data import CropSampler, ImagePool, image_dataset, shard_epochs

# --- checkpoints ---------------------------------------------------------------------------------------


def save_checkpoint(folder: Path, decoder: torch.nn.Module, optimizer, step: int, losses: dict) -> None:
    bad = [name for name, p in decoder.state_dict().items() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLoss(f"step {step}: the decoder has NaN or infinite weights ({bad[0]}); not saved")
    torch.save(decoder.state_dict(), folder / "decoder.pth")
    torch.save(optimizer.state_dict(), folder / "optimizer.pth")
    (folder / "state.json").write_text(json.dumps({"step": step, **losses}))


def load_checkpoint(folder: Path, decoder: torch.nn.Module, optimizer=None) -> int:
    decoder.load_state_dict(torch.load(folder / "decoder.pth", map_location="cpu", weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pth", map_location="cpu", weights_only=True))
    return int(json.loads((folder / "state.json").read_text())["step"])


def latest_checkpoint(root: str | Path) -> str | None:
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
        if step > best_step and storage.exists(storage.join(folder, "decoder.pth")):
            best, best_step = folder, step
    return best


def checkpoint_step(checkpoint: str) -> int:
    return int(json.loads(storage.read_bytes(storage.join(checkpoint, "state.json")))["step"])


# --- the per-worker loop -----------------------------------------------------------------------------


def train_loop(config: dict) -> None:
    """Runs in every Ray Train worker."""
    import logging

    import ray.train
    import ray.train.torch

    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not a plan and a "finished" per shard

    from algorithms.adain import STYLE_LAYERS, get_decoder, learning_rate, new_decoder, training_losses
    from algorithms.device import resolve_precision
    from algorithms.vgg import get_encoder

    spec = TrainSpec.model_validate(config["spec"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    precision = resolve_precision(spec.precision, device)
    encoder = get_encoder(STYLE_LAYERS, source=spec.encoder, device=device)
    decoder = new_decoder(spec.seed)
    if spec.init_decoder:
        decoder.load_state_dict(get_decoder(spec.init_decoder, "cpu").state_dict())
    optimizer = torch.optim.Adam(decoder.parameters(), lr=spec.lr)
    step = 0
    checkpoint = ray.train.get_checkpoint()  # set when Ray Train restarts the workers itself
    if checkpoint:
        with checkpoint.as_directory() as folder:
            step = load_checkpoint(Path(folder), decoder, optimizer)
    elif config.get("resume"):  # a new run of the command: the newest checkpoint of the last one
        with ray.train.Checkpoint(config["resume"]).as_directory() as folder:
            step = load_checkpoint(Path(folder), decoder, optimizer)
    model = ray.train.torch.prepare_model(decoder)  # DDP across the workers; moves it to the device
    plain = model.module if hasattr(model, "module") else model

    def report_bad(path: str, reason: str) -> None:
        print(f"train-adain: skipping {reason}", file=sys.stderr, flush=True)

    seed = hash((spec.seed, rank, step)) & 0xFFFFFFFF  # a resumed run does not replay its crops
    rng = random.Random(seed)
    pools = {
        kind: ImagePool(
            kind, shard_epochs(ray.train.get_dataset_shard(kind), seed), spec.image_size, rng, report_bad
        )
        for kind in ("content", "style")
    }
    sampler = CropSampler(pools["content"], pools["style"], spec.crop, rng)
    per_worker = max(1, math.ceil(spec.batch_size / world))
    tracker = RankZeroLogger(config["relay"], config["run_id"]) if rank == 0 else None
    if tracker is not None and step > 0:  # restarted (a lost worker or node) or run again
        tracker.resumed(step)
    recent: list[tuple[float, float, float]] = []
    while step < spec.steps:
        content, style = (t.to(device) for t in sampler.batch(per_worker))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, spec.lr, spec.lr_decay)
        losses = training_losses(encoder, model, content, style, spec.style_weight, precision)
        optimizer.zero_grad(set_to_none=True)
        check_finite({"total": float(losses.total.detach())}, step + 1)  # no NaN decoder is saved
        losses.total.backward()
        optimizer.step()
        step += 1
        recent.append((float(losses.total.detach()), float(losses.content), float(losses.style)))
        if tracker is not None and (step % spec.log_every == 0 or step == spec.steps):
            tracker.metrics(step, recent[-spec.log_every :], learning_rate(step - 1, spec.lr, spec.lr_decay))
        if tracker is not None and (step % spec.sample_every == 0 or step == spec.steps):
            tracker.grid(step, sample_grid(content.cpu(), style.cpu(), losses.output.cpu()))
        if step % spec.checkpoint_every == 0 or step == spec.steps:
            window = recent[-spec.log_every :]
            summary = {
                "loss": sum(r[0] for r in window) / len(window),
                "content_loss": sum(r[1] for r in window) / len(window),
                "style_loss": sum(r[2] for r in window) / len(window),
            }
            with tempfile.TemporaryDirectory() as folder:
                ckpt = None
                if rank == 0:
                    save_checkpoint(Path(folder), plain, optimizer, step, summary)
                    tracker.checkpoint(step, Path(folder) / "decoder.pth")
                    ckpt = ray.train.Checkpoint.from_directory(folder)
                ray.train.report({"step": step, **summary}, checkpoint=ckpt)
            recent = recent[-spec.log_every :]


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

    def metrics(self, step: int, window: Sequence[tuple[float, float, float]], lr: float) -> None:
        n = len(window)
        values = {
            "loss": sum(w[0] for w in window) / n,
            "content_loss": sum(w[1] for w in window) / n,
            "style_loss": sum(w[2] for w in window) / n,
            "lr": lr,
        }
        self._metrics(values, step)

    def resumed(self, step: int) -> None:
        """The step this start of the workers continues from (a checkpoint)."""
        self._metrics({"resumed_from_step": float(step)}, step)

    def grid(self, step: int, image: Image.Image) -> None:
        self._bytes(f"samples_step{step:07d}.png", png_bytes(image), "samples")

    def checkpoint(self, step: int, decoder_file: Path) -> None:
        self._bytes(f"decoder_step{step:07d}.pth", decoder_file.read_bytes(), "checkpoints")


# --- the driver ------------------------------------------------------------------------------------------


def export_decoder(checkpoint: str, dest: Path, spec: TrainSpec, half: bool = False) -> Path:
    """The decoder of the checkpoint at ``checkpoint`` (a folder or a URI) as a plain state dict
    at ``dest`` (fp16 if ``half``) and its record at ``dest.with_suffix('.json')``."""
    decoder = storage.read_bytes(storage.join(checkpoint, "decoder.pth"))
    state = torch.load(io.BytesIO(decoder), map_location="cpu", weights_only=True)
    if half:
        state = {k: v.half() for k, v in state.items()}
    record = json.loads(storage.read_bytes(storage.join(checkpoint, "state.json")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".tmp") as tmp:
        torch.save(state, tmp.name)
    os.replace(tmp.name, dest)
    meta = {
        "encoder": spec.encoder,
        "trained_with": "stylegrid train-adain",
        "steps": record["step"],
        "final_loss": record.get("loss"),
        "final_content_loss": record.get("content_loss"),
        "final_style_loss": record.get("style_loss"),
        "dtype": "float16" if half else "float32",
        "spec": spec.model_dump(),
    }
    write_atomic(dest.with_suffix(".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return dest


def train(
    spec_path: str | os.PathLike,
    *,
    output: str | None = None,
    steps: int | None = None,
    num_workers: int | None = None,
    export: str | None = None,
    quiet: bool = False,
) -> Path:
    """Train (or resume) per the spec; returns the exported decoder's path."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    spec = load_train_spec(spec_path)
    overrides = {k: v for k, v in {"steps": steps, "num_workers": num_workers}.items() if v is not None}
    spec = spec.model_copy(update=overrides)
    base = spec_dir(spec_path)
    content = resolve_image_locations(spec.content, base, "content", spec_path)
    style = resolve_image_locations(spec.style, base, "style", spec_path)
    out = output_dir(spec, spec_path, output)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(quiet)

    tracking_uri, embedded = resolve_tracking_uri(spec.tracking_uri, out)
    tracker = Tracker(tracking_uri, f"train-adain/{spec.name}", out / "mlartifacts" if embedded else None)
    state_file = out / "train_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    run_id = state.get("mlflow_run_id")
    if run_id is None:
        run_id = tracker.start_run(spec.name, {"stylegrid.kind": "train-adain"})
        values = {**spec.model_dump(), "content_images": len(content), "style_images": len(style)}
        tracker.log_params(run_id, values, limit=500)
        write_atomic(state_file, json.dumps({"mlflow_run_id": run_id}).encode())
    else:
        tracker.resume_run(run_id)

    store = checkpoint_storage(spec, spec_path, out)
    resume = latest_checkpoint(store)
    done = 0 if resume is None else checkpoint_step(resume)
    console.say(
        f"train-adain {spec.name}: {len(content)} content and {len(style)} style images, "
        f"{spec.num_workers} worker(s), step {done} of {spec.steps}"
    )
    if done < spec.steps:
        start_ray(quiet=quiet)
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={
                "spec": spec.model_dump(),
                "relay": start_relay(tracking_uri),
                "run_id": run_id,
                "resume": str(resume) if resume else None,
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
            datasets={"content": image_dataset(content), "style": image_dataset(style)},
            dataset_config=DataConfig(datasets_to_split=["content"]),  # every worker sees every style
            run_config=RunConfig(
                name=spec.name,
                storage_path=store,
                checkpoint_config=CheckpointConfig(num_to_keep=spec.keep_checkpoints),
                failure_config=FailureConfig(max_failures=spec.max_failures),
            ),
        )
        try:
            trainer.fit()
        except BaseException:
            tracker.end_run(run_id, "KILLED" if _interrupted() else "FAILED")
            raise
    final = latest_checkpoint(store)
    if final is None:
        raise RuntimeError(f"{store}: training produced no checkpoint")
    dest = export_decoder(final, out / "decoder.pth", spec)
    if export:
        shipped = export_decoder(final, Path(export).expanduser().resolve(), spec, half=True)
    tracker.log_file(run_id, dest.with_suffix(".json"))
    tracker.end_run(run_id, "FINISHED")
    if not quiet:
        places = [("decoder", f"{dest} (and {dest.with_suffix('.json').name})")]
        if export:
            places.append(("exported", str(shipped)))
        places.append(("MLflow", f"run {run_id}: {ui_command(tracking_uri)}"))
        print_summary(Summary(f"train-adain {spec.name}: {spec.steps} steps done", places))
    return shipped if export else dest


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

"""The first run on a machine with a CUDA GPU: the demo sweep, a catalog, a short training and a
tiled 4096 px picture on the GPU, each checked (rows ok, images written, losses finite, memory
within the budget), then a table of throughputs. About 5-8 minutes on one GPU.

    python benchmarks/gpu_check.py            # on the GPU; without CUDA it says so and exits 0
    python benchmarks/gpu_check.py --smoke    # the same checks on the CPU, small: what the suite runs

Every step runs through stylegrid's own entry points (``run_sweep``, ``stylize_catalog``,
``train``, ``stylize_batch``), in a temporary folder, with the embedded MLflow store. A failed
check prints what it found and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLES = REPO / "samples"
NO_CUDA = (
    "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False): nothing to check; "
    "`--smoke` runs the same checks on the CPU"
)


@dataclass
class Settings:
    device: str  # "cuda" or "cpu"
    sweep_size: int  # the demo's output side
    sweep_steps: int
    sweep_algorithms: list[str] | None  # None: every algorithm of the demo
    catalog_images: int
    catalog_size: int
    train_steps: int
    train_crop: int
    tiled_size: int
    tiled_budget: str


GPU = Settings("cuda", 128, 20, None, 200, 512, 50, 256, 4096, "2GB")
SMOKE = Settings("cpu", 64, 2, ["gatys", "adain", "johnson"], 4, 64, 2, 32, 384, "80MB")


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    rate: str = ""
    problems: list[str] = field(default_factory=list)

    def check(self, holds: bool, what: str) -> None:
        if not holds:
            self.problems.append(what)


def sweep_step(s: Settings, tmp: Path) -> Step:
    """The demo sweep (its photos, paintings and algorithms), every job on the GPU."""
    import numpy as np
    import yaml
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import run_sweep

    step = Step("demo sweep")
    spec = yaml.safe_load((REPO / "experiments" / "demo.yaml").read_text())
    spec["content"] = [str((REPO / "experiments" / p).resolve()) for p in spec["content"]]
    spec["style"] = [str((REPO / "experiments" / p).resolve()) for p in spec["style"]]
    if s.sweep_algorithms:
        spec["algorithms"] = [a for a in spec["algorithms"] if a["name"] in s.sweep_algorithms]
        spec["content"], spec["style"] = spec["content"][:1], spec["style"][:1]
    spec.update(name="gpu_check", size=s.sweep_size, style_size=2 * s.sweep_size, steps=s.sweep_steps)
    spec["resources"] = {"num_cpus": 1, "num_gpus": 0.5 if s.device == "cuda" else 0}
    path = tmp / "gpu_check.yaml"
    path.write_text(yaml.safe_dump(spec))
    start = time.perf_counter()
    summary = run_sweep(str(path), output=str(tmp / "sweep"), quiet=True)
    step.seconds = time.perf_counter() - start
    rows = read_results(tmp / "sweep").to_pandas()
    step.rate = f"{len(rows) / step.seconds * 60:.1f} jobs/min"
    step.check(
        summary.failed == 0 and len(rows) == summary.ok > 0, f"{summary.failed} of {len(rows)} jobs failed"
    )
    step.check(set(rows.status) == {"ok"}, f"statuses {sorted(set(rows.status))}")
    devices = {str(d).split(":")[0] for d in rows.device}  # cuda:0 is cuda
    step.check(devices == {s.device}, f"jobs ran on {sorted(devices)}, not {s.device}")
    for image in rows.output_image:
        step.check((tmp / "sweep" / image).is_file(), f"{image} not written")
    losses = rows[[c for c in rows.columns if c.startswith("loss_")]].to_numpy(dtype=float)
    step.check(not np.isinf(losses).any(), "an infinite loss")  # NaN: a loss the algorithm has not
    measures = rows[["content_distance", "style_distance"]].to_numpy(dtype=float)
    step.check(all(math.isfinite(v) for v in measures.ravel()), "a measure that is not finite")
    return step


def catalog_step(s: Settings, tmp: Path) -> Step:
    """A catalog of crops of the sample photos through the shipped AdaIN decoder, in this process
    (the engine a one-machine run takes), on the GPU."""
    from PIL import Image
    from stylegrid.orchestrator.catalog.driver import stylize_catalog
    from stylegrid.orchestrator.catalog.manifest import read_manifest
    from stylegrid.orchestrator.specs.catalog import CatalogSpec

    step = Step("catalog")
    photos = sorted((SAMPLES / "content").glob("*.jpg"))
    folder = tmp / "photos"
    folder.mkdir()
    for i in range(s.catalog_images):
        with Image.open(photos[i % len(photos)]) as img:
            img.convert("RGB").rotate(90 * (i // len(photos))).save(folder / f"{i:04d}.jpg")
    spec = CatalogSpec(input=str(folder), style=[str(SAMPLES / "style" / "starry_night.jpg")],
                       out=str(tmp / "styled"), size=s.catalog_size, engine="local")  # fmt: skip
    summary = stylize_catalog(spec, quiet=True)
    step.seconds = summary.seconds
    step.rate = f"{summary.images_per_second:.1f} img/s"
    used = summary.plan.gpus_per_actor > 0
    step.check(used == (s.device == "cuda"), f"the catalog's model ran {'on' if used else 'off'} the GPU")
    rows = read_manifest(str(tmp / "styled"))
    step.check(
        (summary.ok, summary.failed) == (s.catalog_images, 0), f"{summary.ok} ok, {summary.failed} failed"
    )
    step.check(all(Path(p).is_file() for p in rows.output), "an output not written")
    return step


def train_step(s: Settings, tmp: Path) -> Step:
    """A short AdaIN decoder training (Ray Train, one worker, on the GPU) exported to a file."""
    import torch
    from stylegrid.orchestrator.train.driver import train

    step = Step("training")
    spec = tmp / "train.yaml"
    spec.write_text(json.dumps({
        "name": "gpu_check", "content": [str(SAMPLES / "content")], "style": [str(SAMPLES / "style")],
        "steps": s.train_steps, "batch_size": 4 if s.device == "cuda" else 1,
        "image_size": s.train_crop + s.train_crop // 4, "crop": s.train_crop, "num_workers": 1,
        "use_gpu": s.device == "cuda", "log_every": 1, "sample_every": s.train_steps,
        "checkpoint_every": s.train_steps,
    }))  # fmt: skip
    start = time.perf_counter()
    exported = train(
        str(spec), kind="adain", output=str(tmp / "train"), export=str(tmp / "decoder.pth"), quiet=True
    )
    step.seconds = time.perf_counter() - start
    step.rate = f"{s.train_steps / step.seconds:.2f} steps/s"
    record = json.loads(Path(exported).with_suffix(".json").read_text())
    step.check(Path(exported).is_file(), f"{exported} not written")
    weights = torch.load(exported, map_location="cpu")
    finite = all(torch.isfinite(v.float()).all() for v in weights.values() if v.is_floating_point())
    step.check(finite, "weights that are not finite")
    step.check(
        record.get("steps") == s.train_steps, f"stopped at step {record.get('steps')} of {s.train_steps}"
    )
    return step


def tiled_step(s: Settings, tmp: Path) -> Step:
    """A tiled AdaIN picture of ``tiled_size`` px within ``tiled_budget``, its peak memory read
    from the device (CUDA's peak allocation; on the CPU the process's resident growth)."""
    import torch
    from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch, tile_layout
    from stylegrid.algorithms.feedforward.adain.network import AdaINParams
    from stylegrid.algorithms.shared.memory import budget_bytes
    from stylegrid.orchestrator.images import load_image

    step = Step(f"tiled {s.tiled_size} px")
    device = torch.device(s.device)
    height = s.tiled_size * 3 // 4
    content = torch.nn.functional.interpolate(
        load_image(SAMPLES / "content" / "tubingen.jpg", max_side=1024),
        size=(height, s.tiled_size),
        mode="bilinear",
    ).clamp(0, 1)
    style = load_image(SAMPLES / "style" / "starry_night.jpg", max_side=512)
    params = AdaINParams(memory_budget=s.tiled_budget)
    stylize_batch(content[..., :64, :64], [style], params, device=device)  # the model loaded
    layout = tile_layout(params, content.shape, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    image = stylize_batch(content, [style], params, device=device)
    step.seconds = time.perf_counter() - start
    megapixels = content.shape[-1] * content.shape[-2] / 1e6
    step.rate = f"{megapixels / step.seconds:.2f} MP/s, {layout or 'one pass'}"
    step.check(bool(layout), f"no tiles at {s.tiled_size} px within {s.tiled_budget}")
    step.check(tuple(image.shape[-2:]) == tuple(content.shape[-2:]), f"output {list(image.shape)}")
    step.check(bool(torch.isfinite(image).all()), "pixels that are not finite")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
        step.check(
            peak <= budget_bytes(s.tiled_budget, device), f"peak {peak / 2**20:.0f} MB over {s.tiled_budget}"
        )
    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the same checks on the CPU, small (the suite)")
    args = ap.parse_args()
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    settings = SMOKE if args.smoke else GPU
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        for make in (sweep_step, catalog_step, train_step, tiled_step):
            folder = Path(tmp) / make.__name__
            folder.mkdir()
            steps.append(make(settings, folder))
            print(f"{steps[-1].name}: {steps[-1].seconds:.1f} s", flush=True)
    device = torch.cuda.get_device_name() if settings.device == "cuda" else "CPU (--smoke)"
    print(f"\non {device}")
    print(f"{'step':<16} {'seconds':>8}  {'throughput':<50} check")
    for step in steps:
        verdict = "ok" if not step.problems else "FAILED: " + "; ".join(step.problems)
        print(f"{step.name:<16} {step.seconds:8.1f}  {step.rate:<50} {verdict}")
    print(f"{'total':<16} {sum(st.seconds for st in steps):8.1f}")
    return 0 if all(not step.problems for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Images per second of ``stylegrid stylize-catalog`` beside sequential loops, in one run.

A catalog of JPEGs (300-700 px crops and flips of the sample photos, made once in a temporary
folder) is stylized at 256 px with Starry Night by the shipped AdaIN decoder, written as PNG:

* ``plain``       the plain sequential loop, one image at a time: read and decode, resize, then
                  pytorch-AdaIN's test.py step (fp32; encode the content and the style, AdaIN,
                  decode), encode the PNG, write it. The same encoder and decoder weights.
* ``sequential``  the same loop calling stylegrid's model the way the catalog does
                  (``algorithms.feedforward.adain.algorithm.stylize_batch``: bf16 where native, style statistics
                  memoised): what the catalog adds beyond the faster model call.
* ``catalog``     ``stylize_catalog`` as it runs on one machine (``engine: local``: a thread
                  decodes ahead of the model in the driver's process), timed from the call to its
                  return (the model's loading and the MLflow run included).
* ``catalog-ray`` the same on Ray Data (``engine: ray``, what a cluster runs), on a local Ray
                  started in its process; ``catalog-ray+init`` also counts starting that Ray.

Each variant runs in its own process with the same torch threads in all. Goals (issues 6 and 33):
the catalog at least 3x the plain loop and at least the sequential loop (1.0x).
``--fp32-avx2`` holds every variant to fp32 (``precision: fp32``) and torch's CPU kernels to AVX2
(``ATEN_CPU_CAPABILITY=avx2``), so that machines with and without AVX-512 compare. ``--profile``
also times each stage on its own (decode, pixels to a tensor, model, encode, write) in a loop of
their own, to show where the time goes.

    python benchmarks/catalog_throughput.py --images 120 --profile # about 4 minutes here
    python benchmarks/catalog_throughput.py --images 1000 --fp32-avx2
    python benchmarks/catalog_throughput.py --smoke-test          # 6 images at 64 px: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import STYLE, last_row, spawn  # noqa: E402

GOALS = {"plain": 3.0, "sequential": 1.0}  # the catalog's rate at least this times theirs


def make_catalog(folder: Path, n: int, seed: int = 0, long_sides: tuple[int, int] = (300, 700)) -> list[Path]:
    """``n`` JPEGs cut from the sample photos: random crops of ``long_sides`` px, flips."""
    from PIL import Image, ImageOps

    rng = random.Random(seed)
    photos = [Image.open(p).convert("RGB") for p in sorted((REPO / "samples" / "content").glob("*.jpg"))]
    paths = []
    for i in range(n):
        img = photos[i % len(photos)]
        w, h = img.size
        cw, ch = rng.randint(w // 2, w), rng.randint(h // 2, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img.crop((x, y, x + cw, y + ch))
        long_side = rng.randint(*long_sides)
        f = long_side / max(crop.size)
        crop = crop.resize((max(16, round(crop.width * f)), max(16, round(crop.height * f))))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        path = folder / f"shard{i % 10}" / f"img{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def run_loop(variant: str, catalog: Path, out: Path, size: int, precision: str) -> dict:
    """Child process: the plain or the sequential loop over every image of the catalog."""
    import torch
    from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE
    from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch
    from stylegrid.algorithms.feedforward.adain.network import (
        AdaINParams,
        get_adain_encoder,
        get_decoder,
        resolve_pair,
    )
    from stylegrid.algorithms.shared.instance_norm import CONTENT_LAYER, adain
    from stylegrid.orchestrator.catalog.manifest import list_sources
    from stylegrid.orchestrator.catalog.pipeline import encode
    from stylegrid.orchestrator.images import decode_image, load_image, resize_to, to_pil, to_tensor
    from stylegrid.orchestrator.storage.files import write_atomic

    sources = list_sources(str(catalog))
    params = AdaINParams(precision=precision)
    style = load_image(STYLE, max_side=DEFAULT_STYLE_SIZE)
    decoder_path, encoder_name = resolve_pair(params)
    encoder, decoder = get_adain_encoder(encoder_name, "cpu"), get_decoder(decoder_path, "cpu")
    cache: dict = {}
    start = time.perf_counter()
    for i, source in enumerate(sources):
        content = to_tensor(resize_to(decode_image(Path(source).read_bytes(), source), size))
        if variant == "plain":
            with torch.no_grad():
                fc = encoder(content, [CONTENT_LAYER])[CONTENT_LAYER]
                fs = encoder(style, [CONTENT_LAYER])[CONTENT_LAYER]
                image = decoder(adain(fc, fs))[..., : content.shape[-2], : content.shape[-1]].clamp(0, 1)
        else:
            image = stylize_batch(content, [style], params, cache=cache)
        write_atomic(out / f"{i:05d}.png", encode(to_pil(image), "png", 92))
    return {
        "images": len(sources),
        "seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
    }


def run_catalog(engine: str, catalog: Path, out: Path, size: int, precision: str) -> dict:
    """Child process: the catalog job in this process (``local``) or on a Ray started here
    (``ray``; joining ``RAY_ADDRESS`` where it is set)."""
    from stylegrid.orchestrator.catalog.driver import stylize_catalog
    from stylegrid.orchestrator.specs.catalog import CatalogSpec

    init = 0.0
    if engine == "ray":
        import ray

        start = time.perf_counter()
        ray.init(logging_level="ERROR", include_dashboard=False)
        init = time.perf_counter() - start
    spec = CatalogSpec(
        input=str(catalog), style=[str(STYLE)], out=str(out), size=size, engine=engine,
        params={"precision": precision},
    )  # fmt: skip
    summary = stylize_catalog(spec, quiet=True)
    assert summary.ok == summary.pairs, summary
    return {
        "images": summary.ok,
        "seconds": summary.seconds,
        "init_seconds": init,
        "actors": summary.plan.actors,
        "threads": summary.plan.threads_per_actor,
    }


STAGES = ("decode", "to tensor", "model", "encode", "write")


def run_profile(catalog: Path, out: Path, size: int, precision: str) -> dict:
    """Child process: the catalog's stages one after another on every image, each timed (the
    functions both engines call: ``load_batch``'s read, decode and resize; the pixels into a
    tensor; the model's ``stylize_batch``; the PNG encoding; the write). Their sum against the
    engines' wall time shows what overlapping them gains and what Ray Data adds."""
    import numpy as np
    import torch
    from stylegrid.algorithms.base import DEFAULT_STYLE_SIZE
    from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch
    from stylegrid.algorithms.feedforward.adain.network import AdaINParams
    from stylegrid.orchestrator.catalog.local import blocks
    from stylegrid.orchestrator.catalog.manifest import list_sources
    from stylegrid.orchestrator.catalog.pipeline import encode, load_batch
    from stylegrid.orchestrator.images import load_image, to_pil
    from stylegrid.orchestrator.storage import locations as storage

    todo = [{"source": s, "todo": "0"} for s in list_sources(str(catalog))]
    params = AdaINParams(precision=precision)
    style = load_image(STYLE, max_side=DEFAULT_STYLE_SIZE)
    cache: dict = {}
    stylize_batch(torch.rand(1, 3, 64, 64), [style], params, cache=cache)  # the model loaded
    spent = dict.fromkeys(STAGES, 0.0)
    out.mkdir(parents=True, exist_ok=True)
    for block in blocks(todo):
        t = time.perf_counter()
        batch = load_batch(block, size)
        spent["decode"] += time.perf_counter() - t
        for k in range(len(batch["source"])):
            t = time.perf_counter()
            pixels = np.frombuffer(batch["pixels"][k], dtype=np.uint8).reshape(
                batch["height"][k], batch["width"][k], 3
            )
            content = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float().div_(255.0)
            t2 = time.perf_counter()
            image = stylize_batch(content, [style], params, cache=cache)
            t3 = time.perf_counter()
            data = encode(to_pil(image), "png", 92)
            t4 = time.perf_counter()
            storage.write_bytes(str(out / f"{k}-{hash(batch['source'][k])}.png"), data)
            t5 = time.perf_counter()
            for stage, seconds in zip(STAGES[1:], (t2 - t, t3 - t2, t4 - t3, t5 - t4), strict=True):
                spent[stage] += seconds
    return {"images": len(todo), "seconds": sum(spent.values()), "threads": torch.get_num_threads(),
            "stages": spent}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--skip-plain", action="store_true", help="leave out the slow plain loop")
    ap.add_argument("--skip-ray", action="store_true", help="leave out the catalog on Ray Data")
    ap.add_argument("--fp32-avx2", action="store_true", help="fp32 and AVX2 kernels in every variant")
    ap.add_argument(
        "--profile", action="store_true", help="also time each stage on its own (where the time goes)"
    )
    ap.add_argument("--smoke-test", action="store_true", help="6 images at 64 px: checks that it runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker == "profile":
            row = run_profile(args.catalog, args.out, args.size, args.precision)
        elif args.worker.startswith("catalog"):
            engine = "ray" if args.worker == "catalog-ray" else "local"
            row = run_catalog(engine, args.catalog, args.out, args.size, args.precision)
        else:
            row = run_loop(args.worker, args.catalog, args.out, args.size, args.precision)
        print(json.dumps(row))
        return
    if args.smoke_test:
        args.images, args.size = 6, 64
    variants = ["catalog"] + ([] if args.skip_ray else ["catalog-ray"]) + ["sequential"]
    variants += [] if args.skip_plain else ["plain"]
    variants += ["profile"] if args.profile else []
    env = {"ATEN_CPU_CAPABILITY": "avx2"} if args.fp32_avx2 else {}
    precision = "fp32" if args.fp32_avx2 else "auto"
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog"
        make_catalog(catalog, args.images)
        rows = {}
        for variant in variants:
            cmd = [sys.executable, __file__, "--worker", variant, "--catalog", str(catalog)]
            cmd += ["--out", str(Path(tmp) / f"out_{variant}"), "--size", str(args.size)]
            cmd += ["--precision", precision]
            proc, peak = spawn(cmd, env)
            if proc["returncode"] != 0:
                raise RuntimeError(f"{variant} failed: {proc['stderr'][-3000:]}")
            row = last_row(proc, variant)
            row["peak_mb"] = peak
            rows[variant] = row
            print(json.dumps({"variant": variant, **row}), flush=True)
    report(
        rows,
        args.images,
        args.size,
        "fp32, AVX2 kernels" if args.fp32_avx2 else "native precision and kernels",
    )


def report(rows: dict, images: int, size: int, mode: str) -> None:
    profile = rows.pop("profile", None)
    rate = {v: r["images"] / r["seconds"] for v, r in rows.items()}
    if "catalog-ray" in rows:
        ray_row = rows["catalog-ray"]
        rate["catalog-ray+init"] = ray_row["images"] / (ray_row["seconds"] + ray_row["init_seconds"])
    base = "plain" if "plain" in rate else "sequential"
    print(f"\n{images} images at {size} px, {mode}; torch threads: "
          + ", ".join(f"{v} {r['threads']}" + (f" x {r['actors']} actors" if r.get("actors", 1) > 1 else "")
                      for v, r in rows.items()))  # fmt: skip
    print(f"{'variant':17s} {'img/s':>7s} {'vs ' + base:>9s} {'vs sequential':>14s} {'peak MB':>8s}")
    for v in ("catalog", "catalog-ray", "catalog-ray+init", "sequential", "plain"):
        if v in rate:
            peak = rows[v]["peak_mb"] if v in rows else float("nan")
            print(
                f"{v:17s} {rate[v]:7.2f} {rate[v] / rate[base]:8.2f}x {rate[v] / rate['sequential']:13.2f}x"
                f" {peak:8.0f}"
            )
    if profile:
        n, total = profile["images"], profile["seconds"]
        print(
            f"\nwhere the time goes (each stage alone, {profile['threads']} torch threads; ms per image, share):"
        )
        for stage, seconds in profile["stages"].items():
            print(f"  {stage:10s} {1000 * seconds / n:8.1f} ms {seconds / total:6.1%}")
        print(f"  {'sum':10s} {1000 * total / n:8.1f} ms; catalog (local) wall {1000 * rows['catalog']['seconds'] / n:.1f} ms"
              + (f", catalog-ray wall {1000 * rows['catalog-ray']['seconds'] / n:.1f} ms" if "catalog-ray" in rows else ""))  # fmt: skip
    for peer, goal in GOALS.items():
        if peer in rate:
            met = rate["catalog"] >= goal * rate[peer]
            print(f"goal catalog >= {goal:g}x {peer} loop: {'met' if met else 'NOT met'} "
                  f"({rate['catalog'] / rate[peer]:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()

"""Images per second of ``stylegrid stylize-catalog`` (Ray Data) beside sequential loops, in one run.

A catalog of 500 JPEGs (300-700 px crops and flips of the sample photos, made once in a temporary
folder) is stylized at 256 px with Starry Night by the shipped AdaIN decoder, written as PNG:

* ``plain``       the plain sequential loop, one image at a time: read and decode, resize, then
                  pytorch-AdaIN's test.py step (fp32; encode the content and the style, AdaIN,
                  decode), encode the PNG, write it. The same encoder and decoder weights.
* ``sequential``  the same loop calling stylegrid's model the way the catalog actors do
                  (``algorithms.adain.stylize_batch``: bf16 where native, style statistics
                  memoised): what the pipeline adds beyond the faster model call.
* ``catalog``     ``stylize_catalog`` with its defaults (actor pool sized from the resources),
                  timed from the call to its return (the actors' start and model loading
                  included); ``catalog+init`` also counts starting the local Ray.

Each variant runs in its own process. The goal (issue 6): the catalog at least 1.5x the plain loop.

    python benchmarks/catalog_throughput.py                 # 500 images at 256 px (about 6 minutes)
    python benchmarks/catalog_throughput.py --images 100 --skip-plain
    python benchmarks/catalog_throughput.py --smoke-test    # 6 images at 64 px: checks that it runs
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

from benchmarks.common import STYLE, spawn  # noqa: E402

GOAL = 1.5


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


def run_loop(variant: str, catalog: Path, out: Path, size: int) -> dict:
    """Child process: the plain or the sequential loop over every image of the catalog."""
    import torch

    from algorithms.adain import (
        CONTENT_LAYER,
        AdaINParams,
        adain,
        get_adain_encoder,
        get_decoder,
        resolve_pair,
        stylize_batch,
    )
    from algorithms.base import DEFAULT_STYLE_SIZE
    from orchestrator.catalog_manifest import list_sources
    from orchestrator.catalog_pipeline import encode
    from orchestrator.files import write_atomic
    from orchestrator.images import decode_image, load_image, resize_to, to_pil, to_tensor

    sources = list_sources(str(catalog))
    params = AdaINParams()
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
    return {"images": len(sources), "seconds": time.perf_counter() - start}


def run_catalog(catalog: Path, out: Path, size: int) -> dict:
    """Child process: the catalog job on a local Ray started here."""
    import ray

    from orchestrator.catalog import stylize_catalog
    from orchestrator.spec import CatalogSpec

    start = time.perf_counter()
    ray.init(logging_level="ERROR", include_dashboard=False)
    init = time.perf_counter() - start
    spec = CatalogSpec(input=str(catalog), style=[str(STYLE)], out=str(out), size=size)
    summary = stylize_catalog(spec, quiet=True)
    assert summary.ok == summary.pairs, summary
    return {
        "images": summary.ok,
        "seconds": summary.seconds,
        "init_seconds": init,
        "actors": summary.plan.actors,
        "threads": summary.plan.threads_per_actor,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--skip-plain", action="store_true", help="leave out the slow plain loop")
    ap.add_argument("--smoke-test", action="store_true", help="6 images at 64 px: checks that it runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker == "catalog":
            row = run_catalog(args.catalog, args.out, args.size)
        else:
            row = run_loop(args.worker, args.catalog, args.out, args.size)
        print(json.dumps(row))
        return
    if args.smoke_test:
        args.images, args.size = 6, 64
    variants = ["catalog", "sequential"] + ([] if args.skip_plain else ["plain"])
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog"
        make_catalog(catalog, args.images)
        rows = {}
        for variant in variants:
            cmd = [sys.executable, __file__, "--worker", variant, "--catalog", str(catalog)]
            cmd += ["--out", str(Path(tmp) / f"out_{variant}"), "--size", str(args.size)]
            proc, peak = spawn(cmd)
            if proc["returncode"] != 0:
                raise RuntimeError(f"{variant} failed: {proc['stderr'][-3000:]}")
            row = json.loads(proc["stdout"].strip().splitlines()[-1])
            row["peak_mb"] = peak
            rows[variant] = row
            print(json.dumps({"variant": variant, **row}), flush=True)
    report(rows, args.images, args.size)


def report(rows: dict, images: int, size: int) -> None:
    rate = {v: r["images"] / r["seconds"] for v, r in rows.items()}
    cat = rows["catalog"]
    rate["catalog+init"] = cat["images"] / (cat["seconds"] + cat["init_seconds"])
    base = "plain" if "plain" in rate else "sequential"
    print(
        f"\n{images} images at {size} px; catalog: {cat['actors']} actor(s) x {cat['threads']} torch thread(s)"
    )
    print(f"{'variant':13s} {'img/s':>7s} {'vs ' + base:>9s} {'vs sequential':>14s}")
    for v in ("catalog", "catalog+init", "sequential", "plain"):
        if v in rate:
            print(
                f"{v:13s} {rate[v]:7.2f} {rate[v] / rate[base]:8.2f}x {rate[v] / rate['sequential']:13.2f}x"
            )
    if base == "plain":
        met = rate["catalog"] >= GOAL * rate["plain"]
        print(f"goal catalog >= {GOAL}x plain loop: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()

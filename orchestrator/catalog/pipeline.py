"""The catalog's Ray Data pipeline: the stages that run in Ray tasks and actors, and how many of
each. The driver (``catalog/driver.py``) lists the sources, keeps the manifest and reads the rows this
pipeline yields.

1. ``load_batch`` (CPU tasks, on any node) reads each file's bytes, from a local path or through
   the object store of its URI (``s3://...``), decodes and resizes it; a missing, empty, truncated
   or otherwise bad file becomes an error row (status ``error`` and the reason);
2. ``CatalogStylizer`` (a pool of actors, each loading the model once, on a GPU when it has one)
   stylizes batches of same-size images, encodes them and writes each file whole or not at all
   (locally a temporary name, then a rename; on an object store a single upload), and returns
   one manifest row per (source, style).

Ray Data's own file readers are not used for step 1: one unreadable file (a permission, an object
deleted after listing) fails their whole dataset, where a catalog wants an error row for it.

The actor pool is sized from the cluster's nodes (``plan_pool``) so that the read tasks always
have a CPU on some node (actors holding every CPU starve them and the run hangs).
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from stylegrid.algorithms.shared.device import pick_device

from ..images import ImageError, decode_image, read_bytes, resize_to, to_pil, to_tensor
from ..params import build_params
from ..runtime import share_memory_with_other_workers
from ..storage import locations as storage
from ..storage.files import safe_name
from ..tracking.model_uris import localize

MANIFEST_COLUMNS = (
    "source", "style", "output", "status", "error", "in_width", "in_height", "out_width",
    "out_height", "seconds", "tiles", "run_id", "finished_at",
)  # fmt: skip


DECODE_MEMORY = 512 * 2**20  # bytes requested by each decode task (Ray measured 377 MB)


class CatalogError(ValueError):
    """A catalog job that cannot start; the message names the file or option and the reason."""


def _short_hash(text: str, n: int) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def style_id(style_path: str) -> str:
    """A folder name per style: its file stem plus a hash of its path (two styles called
    ``starry.jpg`` in different folders do not share outputs)."""
    return f"{safe_name(Path(style_path).stem)}-{_short_hash(style_path, 6)}"


def output_path(out: str, source: str, style_path: str, fmt: str) -> str:
    """Where the stylized ``source`` goes under the output location ``out`` (a folder or a URI):
    stable across runs and distinct for sources with the same base name in different folders (the
    name carries a hash of the full source path)."""
    ext = "jpg" if fmt == "jpeg" else "png"
    name = f"{safe_name(Path(source).stem, 60)}-{_short_hash(source, 10)}.{ext}"
    return storage.join(out, "images", style_id(style_path), name)


def manifest_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("source", pa.string()), ("style", pa.string()), ("output", pa.string()),
            ("status", pa.string()), ("error", pa.string()),
            ("in_width", pa.int32()), ("in_height", pa.int32()),
            ("out_width", pa.int32()), ("out_height", pa.int32()),
            ("seconds", pa.float64()), ("tiles", pa.string()), ("run_id", pa.string()),
            ("finished_at", pa.timestamp("us", tz="UTC")),
        ]
    )  # fmt: skip


@dataclass(frozen=True)
class PoolPlan:
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    threads_per_actor: int  # torch threads in each actor
    batch_size: int  # images per model call
    decode_cpus: float = 1.0  # CPUs each read and decode task asks for
    engine: str = "ray"  # "ray": Ray Data tasks and actors; "local": this process (catalog_local.py)


def plan_pool(
    resources: Mapping[str, float],
    num_gpus: float | None,
    actors: int | None,
    batch_size: int | None,
    node_cpus: Sequence[float] | None = None,
) -> PoolPlan:
    """Size the actor pool from the resources of the nodes the actors may use (``resources``, the
    sum; ``node_cpus``, each node's CPUs: the actors are spread over them).

    GPUs: one actor per GPU (``num_gpus`` caps how many; a fraction shares one GPU), one CPU each
    for its host side. CPUs only: every core runs a torch thread of some actor (several small
    actors beat one large one: torch's CPU kernels scale poorly past a few threads), and the
    actors' CPU requests leave one CPU (half of a single one) to the read and decode tasks, which
    would otherwise starve and hang the run. On 2 CPUs: two actors of one thread, 0.5 CPU each.
    Across nodes the CPU left for decoding is split between them, so a decode task asks for what
    is left on the emptiest node (at most one CPU): on two nodes of 2 CPUs, two actors of 1.5 CPU
    and decode tasks of 0.5.
    """
    cpus = float(resources.get("CPU", 1.0))
    gpus_available = float(resources.get("GPU", 0.0))
    gpus = gpus_available if num_gpus is None else num_gpus
    if gpus > gpus_available:
        raise CatalogError(f"--num-gpus {num_gpus:g}: the cluster has {gpus_available:g} GPU(s)")
    if gpus > 0:
        n = actors or max(1, math.floor(gpus))
        per_gpu = min(1.0, gpus / n)
        cpu_each = min(1.0, max(0.25, (cpus - 1) / n)) if cpus > 1 else 0.25
        return PoolPlan(n, cpu_each, per_gpu, max(1, math.floor(cpu_each)), batch_size or 8)
    cores = max(1, math.floor(cpus))
    if actors is not None and actors > cores:
        raise CatalogError(f"--actors {actors}: {cpus:g} CPUs cannot give each actor a core")
    threads = 1 if cores < 4 else 2 if cores < 32 else 4
    n = actors or max(1, cores // threads)
    threads = max(1, cores // n)
    cpu_each = (cpus - min(1.0, cpus / 2)) / n
    return PoolPlan(
        n, cpu_each, 0.0, threads, batch_size or 1, decode_share(node_cpus or [cpus], n, cpu_each)
    )


def decode_share(node_cpus: Sequence[float], actors: int, cpu_each: float) -> float:
    """The CPUs a decode task can ask for and still find them on some node, once ``actors``
    actors of ``cpu_each`` are spread over nodes of ``node_cpus`` (the largest nodes first)."""
    nodes = sorted(node_cpus, reverse=True)
    left = [c - (actors // len(nodes) + (i < actors % len(nodes))) * cpu_each for i, c in enumerate(nodes)]
    return round(min(1.0, max(left)), 4)


def block_layout(n: int, plan: PoolPlan, max_rows: int = 8, max_blocks: int = 10_000) -> tuple[int, int]:
    """(rows per block, blocks) for ``n`` sources. An actor works through whole blocks, so small
    catalogs are cut into at least four blocks per actor (else one actor gets all the work); large
    ones into blocks of ``max_rows`` (one decode task each), fewer and larger past ``max_blocks``."""
    per_actor = math.ceil(n / (4 * plan.actors))
    rows = max(1, min(max(max_rows, plan.batch_size), per_actor), math.ceil(n / max_blocks))
    return rows, max(1, math.ceil(n / rows))


def load_batch(batch: Mapping[str, np.ndarray], size: int | None) -> dict[str, np.ndarray]:
    """Read, decode and resize each source. Pixels travel as raw RGB bytes with their shape; a
    file that cannot be used becomes a row with ``error`` set and no pixels."""
    cols: dict[str, list] = {k: [] for k in ("source", "todo", "pixels", "width", "height", "in_width",
                                              "in_height", "error", "load_seconds")}  # fmt: skip
    for source, todo in zip(batch["source"], batch["todo"], strict=True):
        start = time.perf_counter()
        pixels, w, h, iw, ih, error = b"", 0, 0, 0, 0, ""
        try:
            img = decode_image(read_bytes(source), source)
            iw, ih = img.size
            if size is not None:
                img = resize_to(img, size, source)
            w, h = img.size
            pixels = np.asarray(img, dtype=np.uint8).tobytes()
        except ImageError as exc:
            error = exc.reason
        for key, value in zip(
            cols, (source, todo, pixels, w, h, iw, ih, error, time.perf_counter() - start), strict=True
        ):
            cols[key].append(value)
    return {k: np.array(v, dtype=object if k in ("source", "todo", "pixels", "error") else None)
            for k, v in cols.items()}  # fmt: skip


def encode(image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=quality, optimize=False)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class CatalogStylizer:
    """A Ray Data actor: loads the model and the style images once, then stylizes, encodes and
    writes batches; returns one manifest row per (source, style) it was given."""

    def __init__(
        self,
        algorithm: str,
        params: dict[str, Any],
        out: str,
        fmt: str,
        quality: int,
        batch_size: int,
        threads: int,
        use_gpu: bool,
        style_size: int,
        run_id: str,
        model_locations: dict[str, str],
    ):
        import torch
        from stylegrid.algorithms import get_algorithm

        torch.set_num_threads(threads)
        share_memory_with_other_workers()
        self.device = pick_device(use_gpu)
        self.algo = get_algorithm(algorithm)
        self.params = localize(build_params(self.algo.params_type, params), model_locations)
        self.style_size = style_size
        self.styles: list = []  # (path, tensor) per style, loaded by the first call
        self.out, self.fmt, self.quality = out, fmt, quality
        self.batch_size, self.run_id = batch_size, run_id
        self.cache: dict = {}

    def __call__(self, batch: Mapping[str, np.ndarray], styles: list) -> dict[str, np.ndarray]:
        """``styles``: [[(path, bytes)] per style, or an object reference to it], fetched by the
        first call (a restarted actor fetches it again; the driver holds the reference)."""
        if not self.styles:
            pairs = styles[0]
            if not isinstance(pairs, list):
                import ray

                pairs = ray.get(pairs)
            self.styles = [
                (path, to_tensor(decode_image(data, path, self.style_size))) for path, data in pairs
            ]
        rows: list[dict[str, Any]] = []
        n = len(batch["source"])
        todo = [[int(i) for i in str(batch["todo"][k]).split()] for k in range(n)]
        good = [k for k in range(n) if not batch["error"][k]]
        for k in range(n):
            if batch["error"][k]:
                for s in todo[k]:
                    rows.append(self._row(batch, k, s, "error", str(batch["error"][k]), None, 0.0))
        for s, (style_path, style) in enumerate(self.styles):
            mine = [k for k in good if s in todo[k]]
            for chunk in _same_size_chunks(batch, mine, self.batch_size):
                rows += self._stylize(batch, chunk, s, style_path, style)
        return {c: np.array([r[c] for r in rows], dtype=object) for c in MANIFEST_COLUMNS[:-1]}

    def _stylize(self, batch, chunk: list[int], s: int, style_path: str, style) -> list[dict[str, Any]]:
        import torch

        start = time.perf_counter()
        arrays = [
            np.frombuffer(batch["pixels"][k], dtype=np.uint8).reshape(
                batch["height"][k], batch["width"][k], 3
            )
            for k in chunk
        ]
        contents = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        rows = []
        try:
            images = self.algo.stylize_batch(
                contents, [style], self.params, device=self.device, cache=self.cache
            )
        except Exception as exc:  # a model failure fails these rows, not the catalog
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            return [self._row(batch, k, s, "error", reason, None, 0.0) for k in chunk]
        model_seconds = (time.perf_counter() - start) / len(chunk)
        tiles = (
            self.algo.tile_layout(self.params, contents.shape, self.device) if self.algo.tile_layout else ""
        )
        for k, image in zip(chunk, images, strict=True):
            t = time.perf_counter()
            dest = output_path(self.out, str(batch["source"][k]), style_path, self.fmt)
            pil = to_pil(image)
            try:
                storage.write_bytes(dest, encode(pil, self.fmt, self.quality))
            except OSError as exc:  # a local WriteError, or the object store's
                rows.append(self._row(batch, k, s, "error", f"cannot write {dest}: {exc}", None, 0.0))
                continue
            seconds = float(batch["load_seconds"][k]) + model_seconds + time.perf_counter() - t
            rows.append(self._row(batch, k, s, "ok", "", (dest, pil.size), seconds, tiles))
        return rows

    def _row(self, batch, k: int, s: int, status: str, error: str, written, seconds: float,
             tiles: str = "") -> dict:  # fmt: skip
        """A manifest row (``finished_at`` is added by the driver); sizes unknown for bad files."""
        dest, (w, h) = written if written else (None, (None, None))
        known = bool(batch["in_width"][k])
        return {
            "source": str(batch["source"][k]),
            "style": self.styles[s][0],
            "output": dest,
            "status": status,
            "error": error or None,
            "in_width": int(batch["in_width"][k]) if known else None,
            "in_height": int(batch["in_height"][k]) if known else None,
            "out_width": w,
            "out_height": h,
            "seconds": float(seconds or batch["load_seconds"][k]),
            "tiles": tiles or None,  # the layout a memory budget asked for; null for one pass
            "run_id": self.run_id,
        }


def _same_size_chunks(batch, rows: list[int], size: int) -> Iterator[list[int]]:
    """``rows`` grouped by image size (a model call needs one size), in chunks of ``size``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for k in rows:
        groups.setdefault((int(batch["height"][k]), int(batch["width"][k])), []).append(k)
    for members in groups.values():
        for i in range(0, len(members), size):
            yield members[i : i + size]


def actor_nodes(nodes: list[dict], wanted: Mapping[str, float]) -> list[dict]:
    """The resources of the alive nodes (``ray.nodes()``) that have ``wanted``."""
    alive = [n["Resources"] for n in nodes if n.get("Alive")]
    usable = [r for r in alive if r.get("CPU", 0.0) > 0 or r.get("GPU", 0.0) > 0]
    return [r for r in usable if all(r.get(k, 0.0) >= v for k, v in wanted.items())]


def build_pipeline(
    spec, algorithm: str, param_values: dict, styles, out: str, todo: list[dict], run_id: str,
    model_locations: dict[str, str],
):  # fmt: skip
    """The Ray Data pipeline (lazy) on the running Ray; returns the pool plan and an iterator of
    manifest tables."""
    import logging

    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver shows its own progress
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    nodes = actor_nodes(ray.nodes(), spec.actor_resources)
    if not nodes:
        wanted = ", ".join(f"{k}: {v:g}" for k, v in spec.actor_resources.items())
        raise CatalogError(f"actor_resources {{{wanted}}}: no node of the cluster has them")
    total = {k: sum(n.get(k, 0.0) for n in nodes) for k in ("CPU", "GPU")}
    plan = plan_pool(total, spec.num_gpus, spec.actors, spec.batch_size, [n.get("CPU", 0.0) for n in nodes])
    rows, blocks = block_layout(len(todo), plan)
    plan = replace(plan, actors=min(plan.actors, blocks))  # an actor without a block would idle
    ds = ray.data.from_items(todo, override_num_blocks=blocks)
    # A decode task asks for the memory a large image takes (a 64 MP image is 192 MB as RGB). The
    # request also keeps Ray Data from fusing the decoding into the model actors (it fuses stages
    # whose resource requests are equal), so decoding overlaps the model instead of preceding it.
    ds = ds.map_batches(
        load_batch,
        batch_size=rows,
        num_cpus=plan.decode_cpus,
        memory=DECODE_MEMORY,
        fn_kwargs={"size": spec.size},
    )
    ds = ds.map_batches(
        CatalogStylizer,
        batch_size=plan.batch_size,
        fn_kwargs={"styles": [ray.put(styles)]},  # a nested reference: each actor fetches it once
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.cpus_per_actor,
        num_gpus=plan.gpus_per_actor,
        resources=spec.actor_resources or None,  # pins the actors to the nodes that declare them
        fn_constructor_kwargs={
            "algorithm": algorithm,
            "params": param_values,
            "out": out,
            "fmt": spec.format,
            "quality": spec.quality,
            "batch_size": plan.batch_size,
            "threads": plan.threads_per_actor,
            "use_gpu": plan.gpus_per_actor > 0,
            "style_size": spec.style_size,
            "run_id": run_id,
            "model_locations": model_locations,
        },
    )
    return plan, ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)

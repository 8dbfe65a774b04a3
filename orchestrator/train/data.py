"""The training data of ``stylegrid train-adain`` and ``train-johnson`` (``train/driver.py``): image files as a Ray Data
dataset read where the workers run, and each worker's endless random crops from its shard.

``image_dataset`` turns the spec's locations (local files or URIs) into ``(path, bytes)`` rows;
Ray Train hands each worker its shard (``DataConfig``: the content split, the style whole).
In the worker an ``ImagePool`` per kind decodes the rows (``images.decode_image``), resizes the
shorter side and keeps up to ``keep`` images in memory, and ``CropSampler`` cuts the random
square crops of each step.
"""

from __future__ import annotations

import random

import torch
from PIL import Image

from ..images import decode_image
from ..storage.location import scheme_of


def load_training_image(data: bytes, name: str, short_side: int) -> Image.Image:
    """Decode with the shared policy (``images.decode_image``) and resize the shorter side."""
    img = decode_image(data, name, None)
    w, h = img.size
    f = short_side / min(w, h)
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BICUBIC)


def random_crop(img: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """A random ``size`` x ``size`` crop, [3, size, size] in [0, 1]."""
    w, h = img.size
    return _crop(img, rng.randint(0, w - size), rng.randint(0, h - size), size)


def centre_crop(img: Image.Image, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` crop, [3, size, size] in [0, 1]."""
    w, h = img.size
    return _crop(img, (w - size) // 2, (h - size) // 2, size)


def _crop(img: Image.Image, x: int, y: int, size: int) -> torch.Tensor:
    crop = img.crop((x, y, x + size, y + size))
    t = torch.frombuffer(bytearray(crop.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
    return t.permute(2, 0, 1).float() / 255.0


class ImagePool:
    """Decoded training images of one kind drawn from ``epochs()``, a function that returns one
    pass over ``(name, bytes)`` pairs (a Ray Data shard, or files). Up to ``keep`` decoded images
    stay in memory; once one whole pass fits there, images are drawn from memory (with
    replacement), else every draw is the next image of the stream, pass after pass. A file that
    cannot be decoded is reported through ``on_bad`` and left out."""

    def __init__(self, kind: str, epochs, short_side: int, rng: random.Random, on_bad=None, keep: int = 256):
        self.kind, self.epochs, self.short_side, self.rng, self.keep = kind, epochs, short_side, rng, keep
        self.on_bad = on_bad or (lambda name, reason: None)
        self.cache: list[Image.Image] = []
        self.complete = False  # the cache holds every readable image
        self.stream = None
        self.seen_in_pass, self.good_in_pass, self.bad = 0, 0, set()

    def _next_pair(self):
        while True:
            if self.stream is None:
                self.stream, self.seen_in_pass, self.good_in_pass = iter(self.epochs()), 0, 0
            pair = next(self.stream, None)
            if pair is not None:
                self.seen_in_pass += 1
                return pair
            self.stream = None
            if self.good_in_pass == 0:
                raise RuntimeError(
                    f"no readable {self.kind} images"
                    + (" in this worker's shard" if self.seen_in_pass else "")
                )
            if self.good_in_pass <= len(self.cache):  # the whole pass is in memory
                self.complete = True
                return None

    def draw(self) -> Image.Image:
        while not self.complete:
            pair = self._next_pair()
            if pair is None:
                break
            name, data = pair
            if name in self.bad:
                continue
            try:
                img = load_training_image(data, name, self.short_side)
            except (OSError, ValueError) as e:
                self.bad.add(name)
                self.on_bad(name, str(e))
                continue
            self.good_in_pass += 1
            if len(self.cache) < self.keep:
                self.cache.append(img)
            return img
        return self.rng.choice(self.cache)


def shard_epochs(shard, seed: int):
    """One pass over a Ray Data shard of ``read_binary_files(..., include_paths=True)`` rows,
    locally shuffled."""

    def one_pass():
        batches = shard.iter_batches(
            batch_size=8, batch_format="numpy", local_shuffle_buffer_size=64, local_shuffle_seed=seed
        )
        for batch in batches:
            yield from zip(batch["path"].tolist(), batch["bytes"].tolist(), strict=True)

    return one_pass


class CropSampler:
    """Endless random crop batches: (content, style) from two ``ImagePool``s, or (content, None)
    when there is no style pool (a network whose styles are fixed targets)."""

    def __init__(self, content: ImagePool, style: ImagePool | None, crop: int, rng: random.Random):
        self.content, self.style, self.crop, self.rng = content, style, crop, rng

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = torch.stack([random_crop(self.content.draw(), self.crop, self.rng) for _ in range(size)])
        if self.style is None:
            return c, None
        s = torch.stack([random_crop(self.style.draw(), self.crop, self.rng) for _ in range(size)])
        return c, s


def image_dataset(locations: list[str]):
    """The image files as a Ray Data dataset of ``(path, bytes)`` rows, read where the workers
    run (local files, or URIs of one store per dataset group)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()  # the dataset keeps it; the trainer prints its own progress
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    groups: dict[str, list[str]] = {}
    for loc in locations:
        groups.setdefault(scheme_of(loc), []).append(loc)
    # Reading files is I/O, and the training workers may hold every CPU of their nodes (all of
    # them on one machine): the read tasks ask for none, a few at a time.
    parts = [
        ray.data.read_binary_files(locs, include_paths=True, num_cpus=0, concurrency=min(4, len(locs)))
        for locs in groups.values()
    ]
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])

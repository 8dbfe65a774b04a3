"""The held-out part of a training corpus (``stylegrid train-*``, ``train/driver.py``): which images are
held out (a rule on their bytes), the fixed validation batch they make, the held-out loss rank 0
logs as training goes, and what the model's .json says of its data (the counts, the rule and the
corpus version)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import torch

from ..specs.loading import SpecError, spec_dir
from ..specs.train import TrainSpec
from ..storage import locations as storage
from .data import centre_crop, load_training_image
from .recipes import Recipe


def file_sha256(location: str) -> str:
    return hashlib.sha256(storage.read_bytes(location)).hexdigest()


def split_held_out(
    locations: Sequence[str], prefixes: Sequence[str], digest: Callable[[str], str] = file_sha256
) -> tuple[list[str], list[str]]:
    """(training, held out): an image is held out when the SHA-256 of its file begins with one
    of ``prefixes``. A rule on the bytes, not a list or a random draw, so that the split is the same
    on every machine, for every spec that names the rule, and for a file renamed or copied."""
    if not prefixes:
        return list(locations), []
    held = {loc for loc in locations if digest(loc).startswith(tuple(prefixes))}
    return [loc for loc in locations if loc not in held], [loc for loc in locations if loc in held]


def validation_batch(images: Sequence[tuple[str, bytes]], short_side: int, crop: int) -> torch.Tensor:
    """The held-out images as one fixed batch: the shorter side resized as in training, then the
    central crop. [N, 3, crop, crop]."""
    return torch.stack(
        [centre_crop(load_training_image(data, name, short_side), crop) for name, data in images]
    )


class Validation:
    """The held-out loss: one fixed batch of held-out content (and style) crops, the same at
    every evaluation and after a resume, through the recipe's own step without gradients."""

    def __init__(self, content: torch.Tensor, style: torch.Tensor | None):
        self.content, self.style = content, style

    @classmethod
    def of(cls, images: dict, spec: TrainSpec, device: torch.device) -> Validation | None:
        """From the driver's ``{"content": [(name, bytes)], "style": [...]}``; None without
        held-out content."""
        if not images["content"]:
            return None
        content = validation_batch(images["content"], spec.image_size, spec.crop).to(device)
        style = None
        if images["style"]:
            style = validation_batch(images["style"], spec.image_size, spec.crop).to(device)
            index = torch.arange(content.shape[0]) % style.shape[0]  # content i with style i mod n
            style = style[index.to(device)]
        return cls(content, style)

    def losses(self, recipe: Recipe, task, model, spec: TrainSpec, precision: str) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                # a fixed rng: a network of fixed styles gives every crop the same style each time
                result = recipe.step(task, model, self.content, self.style, random.Random(0), spec, precision)
        finally:
            model.train(was_training)
        return {"val_loss": float(result.total), **{f"val_{k}_loss": v for k, v in result.terms.items()}}


def data_record(spec: TrainSpec, spec_path, content, style, held_content, held_style) -> dict:
    """What the model's .json says of its data: the counts, the held-out rule and the corpus
    version (the SHA-256 of the spec's ``provenance`` file)."""
    record: dict = {
        "content_images": len(content),
        "style_images": len(style),
        "held_out_sha256": spec.held_out_sha256,
        "held_out_content_images": len(held_content),
        "held_out_style_images": len(held_style),
    }
    if spec.provenance:
        where = storage.absolute(spec.provenance, spec_dir(spec_path))
        try:
            record["corpus_sha256"] = file_sha256(where)
        except OSError as exc:
            raise SpecError(f"{spec_path}: provenance {spec.provenance!r}: cannot read it ({exc})") from None
        record["provenance"] = spec.provenance
    return record


def first_images(locations: list[str], count: int) -> list[tuple[str, bytes]]:
    """The first ``count`` images by name, as (name, bytes): they travel with the workers' config."""
    return [(loc, storage.read_bytes(loc)) for loc in sorted(locations)[:count]]

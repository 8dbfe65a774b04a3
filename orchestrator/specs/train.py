"""The specs of ``stylegrid train-adain``, ``train-johnson`` and ``train-wct`` (``train/driver.py``): the fields
every training shares (``TrainSpec``) and each network's own, read with the rules of ``specs/loading.py``
(every error names the file and the field; relative paths are taken from the file's folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from stylegrid.algorithms.shared.vgg import LAYER_INDEX, MIN_SIDE

from .loading import SpecError, read_model


class TrainSpec(BaseModel):
    """What every ``stylegrid train-*`` spec shares: data, steps, workers, checkpoints, tracking."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    content: list[str] = Field(min_length=1, description="files, globs or folders of photographs")
    style: list[str] = Field(min_length=1, description="files, globs or folders of paintings")
    steps: int = Field(160000, gt=0, description="optimiser steps (pytorch-AdaIN: 160000)")
    batch_size: int = Field(8, gt=0, description="images per step over all workers")
    image_size: int = Field(512, ge=MIN_SIDE, description="the shorter side is resized to this")
    crop: int = Field(256, ge=MIN_SIDE, description="random square crops of this side")
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(5e-5, ge=0, description="lr / (1 + lr_decay x step)")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_workers: int = Field(2, gt=0, description="Ray Train workers (one per GPU on a cluster)")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    worker_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each worker also needs, to pin the workers to the nodes "
        "that have them (e.g. {stylegrid_worker: 1} where the worker nodes declare it)",
    )
    log_every: int = Field(10, gt=0)
    sample_every: int = Field(500, gt=0)
    checkpoint_every: int = Field(1000, gt=0)
    keep_checkpoints: int = Field(3, gt=0)
    seed: int = 0
    output: str | None = Field(None, description="default runs/<name> in the current folder")
    storage: str | None = Field(
        None,
        description="where Ray Train keeps the checkpoints: a folder or URI every node reaches "
        "(s3://bucket/prefix on a cluster); default <output>/ray_train",
    )
    max_failures: int = Field(
        2,
        ge=-1,
        description="times Ray Train restarts the workers from the newest checkpoint after "
        "a worker or node is lost (-1: without limit)",
    )
    tracking_uri: str | None = Field(
        None, description="default MLFLOW_TRACKING_URI, else a SQLite store in output"
    )
    register_as: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="also register the logged MLflow model under this name (models:/<name>/<version>)",
    )
    held_out_sha256: list[str] = Field(
        default_factory=list,
        description="hold out of training every image whose file's SHA-256 begins with one of these "
        "hex prefixes (['0', '1']: about 1/8); they give the validation loss",
    )
    validate_every: int = Field(250, gt=0, description="steps between validation losses on held-out images")
    validation_images: int = Field(
        16,
        gt=0,
        le=256,
        description="held-out images of each kind in the validation batch (the first by name)",
    )
    provenance: str | None = Field(
        None,
        description="the corpus's provenance.csv: its SHA-256 is recorded as the corpus version in the "
        "model's .json",
    )

    @field_validator("held_out_sha256")
    @classmethod
    def _hex_prefixes(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if not p or len(p) > 64 or any(c not in "0123456789abcdef" for c in p.lower())]
        if bad:
            raise ValueError(f"{bad}: SHA-256 prefixes are 1 to 64 hex digits")
        return [p.lower() for p in v]


class AdaINTrainSpec(TrainSpec):
    """``experiments/train_adain.yaml``; the defaults are the paper's / pytorch-AdaIN's."""

    style_weight: float = Field(1.0, ge=0, description="weight of the mean/std style loss")
    encoder: Literal["caffe"] = "caffe"
    init_decoder: str | None = Field(None, description="start from this decoder file (fine-tuning)")


class JohnsonTrainSpec(TrainSpec):
    """``experiments/train_johnson.yaml``: one fast network for every style image (Johnson et al.
    2016 with Dumoulin et al.'s conditional instance norm); the defaults are the papers'."""

    steps: int = Field(40000, gt=0, description="optimiser steps (Johnson et al.: 40000 at batch 4)")
    batch_size: int = Field(4, gt=0, description="crops per step over all workers, each of a random style")
    image_size: int = Field(256, ge=MIN_SIDE, description="the shorter side is resized to this")
    crop: int = Field(256, ge=MIN_SIDE, description="random square crops of this side")
    lr: float = Field(1e-3, gt=0)
    lr_decay: float = Field(0.0, ge=0, description="lr / (1 + lr_decay x step)")
    style_size: int = Field(512, ge=MIN_SIDE, description="style images are used at this long side")
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(5.0, ge=0, description="weight of the mean of the Gram terms")
    tv_weight: float = Field(0.0, ge=0, description="weight of the total variation")
    content_layer: str = "relu2_2"
    style_layers: list[str] = Field(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], min_length=1)
    width: int = Field(
        32, ge=4, le=256, description="channels of the first layer (x2, x4 after each down-sampling)"
    )
    blocks: int = Field(5, ge=1, le=16, description="residual blocks")
    max_styles: int = Field(64, gt=0, description="refuse a spec whose style entries list more images")
    init_network: str | None = Field(
        None, description="start from this network file (fine-tuning; the same styles in the same order)"
    )

    @field_validator("content_layer")
    @classmethod
    def _content_layer(cls, v: str) -> str:
        return _vgg_layer(v)

    @field_validator("style_layers")
    @classmethod
    def _style_layers(cls, v: list[str]) -> list[str]:
        return [_vgg_layer(x) for x in v]


WCT_LEVELS = (
    "relu5_1",
    "relu4_1",
    "relu3_1",
    "relu2_1",
    "relu1_1",
)  # algorithms.feedforward.wct.algorithm.LEVELS (no torch here)


class WCTTrainSpec(TrainSpec):
    """``experiments/train_wct.yaml``: the reconstruction decoders of Li et al. 2017, one per
    level, trained together on photos and paintings (each step reconstructs a batch of both)."""

    steps: int = Field(40000, gt=0, description="optimiser steps")
    batch_size: int = Field(
        8, gt=0, description="photo crops per step over all workers, and as many painting crops"
    )
    image_size: int = Field(256, ge=MIN_SIDE, description="the shorter side is resized to this")
    crop: int = Field(256, ge=MIN_SIDE, description="random square crops of this side")
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(0.0, ge=0, description="lr / (1 + lr_decay x step)")
    widths: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(WCT_LEVELS, 1.0),
        description="the levels to train, each with its decoder's width as a fraction of VGG-19's "
        "channels (1: Li et al.'s decoders)",
    )
    feature_weight: float = Field(1.0, ge=0, description="the paper's lambda: weight of the feature loss")
    init_decoders: str | None = Field(
        None,
        description="start from this decoders file (fine-tuning; its levels and widths must be the spec's)",
    )
    init_relu4_1: str | None = Field(
        None,
        description="start relu4_1's decoder (width 1: the same layout) from an AdaIN decoder file; "
        "'default' is the shipped one",
    )

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError(f"name at least one level of {list(WCT_LEVELS)}")
        for level, width in v.items():
            if level not in WCT_LEVELS:
                raise ValueError(f"unknown level {level!r}; the levels are {list(WCT_LEVELS)}")
            if not 0 < width <= 1:
                raise ValueError(f"{level}: a width must be in (0, 1], got {width}")
        return v


class StyleSwapTrainSpec(TrainSpec):
    """``experiments/train_style_swap.yaml``: Chen & Schmidt's inverse network, trained on the
    photos' relu3_1 features and on those features style-swapped with paintings' patches."""

    steps: int = Field(40000, gt=0, description="optimiser steps")
    batch_size: int = Field(
        4, gt=0, description="photo crops per step over all workers, each swapped with a painting crop"
    )
    image_size: int = Field(256, ge=MIN_SIDE, description="the shorter side is resized to this")
    crop: int = Field(256, ge=MIN_SIDE, description="random square crops of this side")
    lr: float = Field(1e-4, gt=0)
    lr_decay: float = Field(0.0, ge=0, description="lr / (1 + lr_decay x step)")
    width: float = Field(1.0, gt=0, le=1, description="the network's channels as a fraction of VGG-19's")
    tv_weight: float = Field(1.0, ge=0, description="the paper's lambda: weight of the total variation")
    pixel_weight: float = Field(
        0.0, ge=0, description="weight of the photos' pixel reconstruction (not in the paper: 0)"
    )
    patch_size: int = Field(
        3, ge=1, le=9, description="side of the swapped patches at relu3_1 (the paper's 3)"
    )
    init_network: str | None = Field(
        None,
        description="start from this file: an inverse network of the same width, or WCT decoders "
        "holding relu3_1 at that width ('wct' is the shipped WCT decoders)",
    )


def _vgg_layer(name: str) -> str:
    if name not in LAYER_INDEX:
        raise ValueError(f"unknown VGG-19 layer {name!r} (e.g. relu2_2, relu3_3)")
    return name


def load_train_spec(path: str | os.PathLike, spec_type: type[TrainSpec] = AdaINTrainSpec) -> TrainSpec:
    p = Path(path)
    spec = read_model(p, spec_type, "name, content, style, steps, ...")
    if spec.crop > spec.image_size:
        raise SpecError(f"{p}: crop ({spec.crop}) must be at most image_size ({spec.image_size})")
    return spec

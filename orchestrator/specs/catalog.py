"""The catalog spec (``stylegrid stylize-catalog``): the images to stylize (files, folders, globs,
URIs or a manifest), the algorithm, its parameters and the output, from YAML or the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from stylegrid.algorithms.names import DEFAULT_SIZE, DEFAULT_STYLE_SIZE

from ..limits import check_size
from .loading import read_model, resolve_location


class CatalogSpec(BaseModel):
    """``stylegrid stylize-catalog``'s options; the YAML file has the same fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    input: str = Field(
        description="a folder (searched recursively), a glob, or a .csv / .parquet manifest; "
        "a local path or a URI (s3://bucket/photos/, gs://...)"
    )
    style: list[str] = Field(
        min_length=1, description="style image files or URIs; every source gets each one"
    )
    out: str = Field(description="output folder or URI: images/, manifest/ (and the MLflow store when local)")
    algorithm: str = "adain"
    size: int | None = Field(
        DEFAULT_SIZE, description="long side of the outputs (16..8192); null keeps each image's size"
    )
    style_size: int = Field(
        DEFAULT_STYLE_SIZE, description="maximum long side of the style images (16..8192)"
    )
    alpha: float | None = Field(None, ge=0, le=1, description="style strength (the algorithm's default)")
    memory_budget: str | None = Field(
        None,
        description="memory one model pass may take (auto, or a size such as 2GB): larger images "
        "are done in overlapping tiles, recorded in the manifest's tiles column",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="other algorithm parameters")
    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(92, ge=1, le=100, description="JPEG quality")
    batch_size: int | None = Field(
        None, gt=0, description="images per model call; default 1 on CPUs, 8 on GPUs"
    )
    num_gpus: float | None = Field(None, ge=0, description="GPUs to use; default every GPU of the cluster")
    actors: int | None = Field(None, gt=0, description="model replicas; default from the cluster's resources")
    actor_resources: dict[str, float] = Field(
        default_factory=dict,
        description="custom Ray resources each model actor also needs, to pin the actors to the nodes "
        "that have them (e.g. {stylegrid_worker: 1} where the GPU nodes declare it)",
    )
    path_column: str = Field("path", description="the manifest column holding the image paths")
    engine: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="ray: a Ray Data pipeline over the cluster; local: this process (a thread decodes "
        "ahead of the model); auto: ray where a cluster is named (RAY_ADDRESS, `ray job submit`, a "
        "Ray already joined) or actors, actor_resources or num_gpus > 0 ask for Ray's scheduling, else local",
    )
    tracking_uri: str | None = Field(
        None, description="MLflow; default MLFLOW_TRACKING_URI, else sqlite:///<out>/mlflow.db"
    )
    experiment: str = "stylize-catalog"

    @field_validator("size", "style_size")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        return value if value is None else check_size(value, "size")


def load_catalog_spec(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> CatalogSpec:
    """A YAML catalog spec with command-line ``overrides``; relative paths in the file are taken
    from the file's folder."""
    p = Path(path)
    spec = read_model(p, CatalogSpec, "input, style, out, algorithm, size, ...")
    base = p.resolve().parent
    rebased = {
        "input": resolve_location(spec.input, base),
        "out": resolve_location(spec.out, base),
        "style": [resolve_location(s, base) for s in spec.style],
    }
    return spec.model_copy(update={**rebased, **(overrides or {})})

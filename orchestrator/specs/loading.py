"""What every spec shares: reading YAML into a pydantic model (duplicate keys, aliases and
oversized files refused; every error names the file, the field and what is allowed) and the path
rules: relative paths in a file are taken from the file's folder, image lists may hold files,
globs, folders and URIs, and without ``output`` the results go to ``runs/<name>`` in the current
folder. The specs themselves: ``sweep.py`` (sweeps), ``catalog.py`` (catalogs), ``train.py``
(trainings).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import pydantic
import yaml
from pydantic import BaseModel

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class SpecError(ValueError):
    """An invalid experiment spec; the message names the file, the field and what is allowed."""


def _format_validation_error(path: Path, exc: pydantic.ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(f"{loc}: {msg}" if loc else msg)  # a whole-spec check names its fields itself
    return f"{path}: " + "; ".join(problems)


M = TypeVar("M", bound=BaseModel)


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: YAML's own rule, which PyYAML
    does not enforce (it keeps the last value, so a repeated `steps:` would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.YAMLError(
                    f"the key {key!r} is given twice (lines {seen[key]} and {key_node.start_mark.line + 1})"
                )
            seen.setdefault(key, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


def read_model(path: Path, model: type[M], fields_hint: str) -> M:
    """A YAML file (safe loader) validated into a pydantic model; errors name the file and field."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of fields ({fields_hint})")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise SpecError(_format_validation_error(path, exc)) from None


def spec_dir(path: str | os.PathLike) -> Path:
    return Path(path).resolve().parent


def resolve_path(path: str, base: Path) -> Path:
    """``path`` with ``~`` expanded, taken from ``base`` when relative."""
    full = Path(os.path.expanduser(path))
    return full if full.is_absolute() else base / full


def resolve_location(location: str, base: Path) -> str:
    """``resolve_path`` for a path that may also be a URI (``s3://bucket/prefix``), kept as it is."""
    from ..storage import locations as storage

    return storage.absolute(location, base)


def resolve_image_locations(
    patterns: list[str], base: Path, field: str, spec_path: str | os.PathLike
) -> list[str]:
    """Files, patterns and folders (their images, not recursive), on this disk or in an object
    store (``s3://bucket/photos/``, ``gs://bucket/art/*.jpg``) -> the image files in order,
    without duplicates, each written as its pattern is (``storage.find_files``)."""
    from ..storage import locations as storage

    found: list[str] = []
    for i, pattern in enumerate(patterns):
        where = f"{spec_path}: {field}[{i}] {pattern!r}"
        try:
            found += storage.find_files(pattern, IMAGE_SUFFIXES, base=base, what="image")
        except FileNotFoundError as exc:
            raise SpecError(f"{where}: {exc}") from None
        except (OSError, ValueError) as exc:  # the store refused: credentials, a missing bucket, the network
            raise SpecError(f"{where}: cannot list it ({' '.join(str(exc).split())[:200]})") from None
    return list(dict.fromkeys(found))


def resolve_images(patterns: list[str], base: Path, field: str, spec_path: str | os.PathLike) -> list[Path]:
    """``resolve_image_locations`` for a sweep, whose jobs read their images from this disk."""
    from ..storage import locations as storage

    for i, pattern in enumerate(patterns):
        if storage.is_remote(pattern):
            raise SpecError(
                f"{spec_path}: {field}[{i}] {pattern!r}: a sweep reads its images from this disk; copy "
                "them here (training and catalogs read object stores)"
            )
    return [
        Path(f.removeprefix("file://")) for f in resolve_image_locations(patterns, base, field, spec_path)
    ]


def output_location(spec: BaseModel, spec_path: str | os.PathLike, override: str | None = None) -> str:
    """``output_dir``'s rule for an output that may also be in an object store
    (``s3://bucket/sweeps/demo``): a URI as written, a path made absolute (``storage.absolute``)."""
    from ..storage import locations as storage

    if override:
        return storage.absolute(override)
    if spec.output:
        return storage.absolute(spec.output, spec_dir(spec_path))
    return str(output_dir(spec, spec_path))


def output_dir(spec: BaseModel, spec_path: str | os.PathLike, override: str | None = None) -> Path:
    """The results folder of a sweep or training spec (any spec with ``name`` and ``output``)."""
    if override:
        return Path(override).expanduser().resolve()
    if spec.output:
        return resolve_path(spec.output, spec_dir(spec_path)).resolve()
    return (Path.cwd() / "runs" / spec.name).resolve()

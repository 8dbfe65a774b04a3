"""Turning user input (``--set name=value``, later YAML) into an algorithm's parameter dataclass.

The dataclass is the single source of names, types and defaults; pydantic validates against it,
so the CLI and the experiment files accept exactly the same things.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
import yaml
from stylegrid.algorithms.names import did_you_mean

from .errors import ParameterError

M = TypeVar("M", bound=pydantic.BaseModel)


def field_names(params_type: type) -> list[str]:
    return [f.name for f in dataclasses.fields(params_type)]


def _is_sequence(annotation: Any) -> bool:
    hints = [annotation, *typing.get_args(annotation)]
    return any(typing.get_origin(h) in (tuple, list) for h in hints)


def parse_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ParameterError(f"--set expects name=value, got {text!r}")
    return name.strip(), value.strip()


def parse_cli_value(params_type: type, name: str, text: str) -> Any:
    """A ``--set`` value as YAML (``3``, ``0.5``, ``true``, ``[a, b]``, ``null``); a comma-separated
    list is accepted for sequence parameters (``style_layers=relu1_1,relu2_1``)."""
    hints = typing.get_type_hints(params_type)
    value = parse_setting(text)
    if name in hints and _is_sequence(hints[name]) and isinstance(value, str | int | float) and value != "":
        value = [yaml.safe_load(v.strip()) for v in str(text).split(",") if v.strip()]
    return value


def check_names(params_type: type, names: typing.Iterable[str], where: str = "") -> None:
    valid = field_names(params_type)
    for name in names:
        if name not in valid:
            raise ParameterError(
                f"{where}unknown parameter {name!r}{did_you_mean(name, valid)}; valid parameters: {', '.join(valid)}"
            )


@functools.cache
def _adapter(params_type: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(params_type)  # building one costs milliseconds: once per type


def build_params(params_type: type, values: Mapping[str, Any], where: str = "") -> Any:
    """Validate ``values`` against the dataclass and return an instance (defaults for the rest)."""
    check_names(params_type, values, where)
    try:
        params = _adapter(params_type).validate_python(dict(values))
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            got = f" (got {err['input']!r})" if loc and "input" in err else ""
            problems.append(f"parameter {loc!r}: {msg}{got}" if loc else msg)
        raise ParameterError(where + "; ".join(problems)) from None
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        numbers = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ParameterError(f"{where}parameter {f.name!r}: must be a finite number (got {value!r})")
    return params


def parse_setting(text: str) -> Any:
    """A ``--set`` value of a spec field, read as YAML (``3``, ``1e-4``, ``true``, ``[a, b]``)."""
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def apply_model_settings(model: M, assignments: typing.Iterable[str], where: str = "--set: ") -> M:
    """``model`` (a pydantic spec) with ``name=value`` assignments applied to its fields and
    validated again; ``ParameterError`` names an unknown field (and the nearest one) or a bad value."""
    updates = {}
    fields = list(type(model).model_fields)
    for text in assignments:
        name, raw = parse_assignment(text)
        if name not in fields:
            raise ParameterError(
                f"{where}unknown setting {name!r}{did_you_mean(name, fields)}; settings: {', '.join(fields)}"
            )
        updates[name] = parse_setting(raw)
    if not updates:
        return model
    try:
        return type(model).model_validate({**model.model_dump(), **updates})
    except pydantic.ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')} (got {e['input']!r})"
            for e in exc.errors()
        ]
        raise ParameterError(where + "; ".join(problems)) from None


def params_from_cli(params_type: type, assignments: typing.Sequence[str], fixed: Mapping[str, Any]) -> Any:
    """``fixed`` (from dedicated flags such as --steps) overridden by ``--set`` assignments."""
    values = dict(fixed)
    for text in assignments:
        name, raw = parse_assignment(text)
        check_names(params_type, [name], "--set: ")
        values[name] = parse_cli_value(params_type, name, raw)
    return build_params(params_type, values, "")


def params_to_dict(params: Any, active_only: bool = False) -> dict[str, Any]:
    """Plain JSON-able values (tuples as lists) for logging and tables; with ``active_only``,
    without the fields these values leave unused (``Params.inactive``)."""
    skip = params.inactive() if active_only and hasattr(params, "inactive") else frozenset()
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(params).items()
        if k not in skip
    }

"""The results table's schema, declared once: the fixed columns with their descriptions, then
``param.<name>`` for every parameter of every registered algorithm, typed from the parameter
dataclasses (sequences of one type as lists, anything else as JSON text), null where the parameter
does not apply to the job (another algorithm's, or unused by its values), plus ``params_json``
with all of a job's parameters that apply. Every field carries its ``description`` in the schema;
"none" is null, never "" (rows of older versions are read into this schema: ``conform``). The
pandas view (``to_pandas``: nullable integers), which rows are current, and the record of early
stopping's rungs are part of the format too. The files the rows live in are ``rows.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from stylegrid.algorithms import ALGORITHMS
from stylegrid.algorithms.shared.metrics import MEASURES

# (name, type, description): the descriptions are stored in the schema (each field's
# ``description`` metadata), so a reader of the Parquet file sees what a column means.
FIXED_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    (
        "job_id",
        pa.string(),
        "the job's id: a hash of its images' contents, algorithm, parameters, seed and sizes",
    ),
    ("sweep_id", pa.string(), "the invocation of `stylegrid sweep` that ran the job"),
    ("spec_name", pa.string(), "the spec's name"),
    (
        "status",
        pa.string(),
        "ok, failed, or stopped (early stopping ended it at a rung: its image and measures there)",
    ),
    (
        "error",
        pa.string(),
        "why the job failed, or a note on an ok job (an optimiser that stopped early); null if none",
    ),
    ("algorithm", pa.string(), "the algorithm's name"),
    (
        "variant",
        pa.string(),
        "the parameters (and seed) that tell the job apart within its algorithm in the spec; null if none",
    ),
    (
        "content",
        pa.string(),
        "the content image file, relative to the spec's folder (an absolute path in rows of older versions)",
    ),
    (
        "style",
        pa.string(),
        "the style image file, relative to the spec's folder (an absolute path in rows of older versions)",
    ),
    ("content_name", pa.string(), "the content image's file name"),
    ("style_name", pa.string(), "the style image's file name"),
    ("content_sha256", pa.string(), "SHA-256 of the content image file"),
    ("style_sha256", pa.string(), "SHA-256 of the style image file"),
    (
        "regions",
        pa.string(),
        "spatial control (JSON: name, mask, style per colour, style masks; files relative to the spec's "
        "folder); style is then the first region's; null for a job without",
    ),
    ("seed", pa.int64(), "the random seed; null where the parameters do not use it"),
    ("size", pa.int64(), "the output's long side, px"),
    ("steps", pa.int64(), "optimisation steps; null for a feed-forward algorithm"),
    ("evaluations", pa.int64(), "evaluations of the objective (L-BFGS line searches take several per step)"),
    (
        "rungs",
        pa.string(),
        "early stopping: each rung the job reached (JSON list: rung, step, evaluations, measures, go_on, reason); "
        "null without early stopping",
    ),
    ("loss_total", pa.float64(), "the final total loss"),
    ("loss_content", pa.float64(), "sum of the final content.* terms; null if the algorithm has none"),
    ("loss_style", pa.float64(), "sum of the final style.* terms; null if the algorithm has none"),
    ("losses_json", pa.string(), "every final loss term by name (JSON)"),
    *[(m.name, pa.float64(), m.summary) for m in MEASURES],
    ("wall_seconds", pa.float64(), "seconds the job took in its worker"),
    ("started_at", pa.timestamp("ms", tz="UTC"), "when the job started, in the worker"),
    ("host", pa.string(), "the worker's host"),
    ("device", pa.string(), "the device the job ran on (cpu, cuda:0)"),
    ("precision", pa.string(), "the arithmetic the networks ran in (fp32, bf16, fp16)"),
    ("tiles", pa.string(), "the tile layout a memory budget asked for; null for one pass"),
    ("output_image", pa.string(), "the output image, relative to the output folder; null if the job failed"),
    ("mlflow_run_id", pa.string(), "the job's MLflow run; null if it was not logged"),
    ("mlflow_experiment_id", pa.string(), "the MLflow experiment of the job's run; null if not logged"),
    ("attempts", pa.int64(), "how many times the job was started (retries after a lost worker or a timeout)"),
    ("finished_at", pa.timestamp("ms", tz="UTC"), "when the row was written"),
    ("code_version", pa.string(), "stylegrid's version and git commit"),
    ("params_json", pa.string(), "every parameter that applies to the job (JSON)"),
]


# String columns where an empty value means "none": stored as null (older rows' "" read as null)
NULL_WHEN_EMPTY = (
    "error", "variant", "tiles", "output_image", "mlflow_run_id", "mlflow_experiment_id", "regions", "rungs",
)  # fmt: skip


SCALARS = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def _arrow_type(annotation: Any) -> pa.DataType:
    """Arrow type of a parameter: scalars typed, Optional unwrapped, a tuple of one scalar type a
    list, anything else JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _arrow_type(args[0]) if len(args) == 1 else pa.string()
    if origin in (tuple, list):
        items = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(set(items)) == 1 and items[0] in SCALARS:
            return pa.list_(SCALARS[items[0]])
        return pa.string()
    if origin is Literal:
        kinds = {type(a) for a in typing.get_args(annotation)}
        return _arrow_type(kinds.pop()) if len(kinds) == 1 else pa.string()
    return SCALARS.get(annotation, pa.string())


def param_columns() -> list[tuple[str, pa.DataType, str]]:
    """``param.<name>`` for every parameter of every registered algorithm (string on a clash),
    described by the parameter's help text (the first algorithm's that has it)."""
    cols: dict[str, pa.DataType] = {}
    helps: dict[str, str] = {}
    for algo in ALGORITHMS.values():
        hints = typing.get_type_hints(algo.params_type)
        for f in dataclasses.fields(algo.params_type):
            t = _arrow_type(hints[f.name])
            cols[f.name] = t if cols.get(f.name, t) == t else pa.string()
            helps.setdefault(f.name, f"parameter: {f.metadata.get('help', '')}; null where it does not apply")
    return [(f"param.{k}", v, helps[k]) for k, v in sorted(cols.items())]


def result_schema() -> pa.Schema:
    """The schema for the algorithms registered now (made once per set of them: a sweep asks for
    it once per row)."""
    return _schema_of(tuple((name, algo.params_type) for name, algo in ALGORITHMS.items()))


@functools.lru_cache(maxsize=8)
def _schema_of(registered: tuple) -> pa.Schema:
    return pa.schema(
        [
            pa.field(name, kind, metadata={"description": text})
            for name, kind, text in FIXED_COLUMNS + param_columns()
        ]
    )


def param_cells(params: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    cells = {}
    for name, value in params.items():
        col = f"param.{name}"
        if col not in schema.names:
            continue
        is_text = schema.field(col).type == pa.string()
        cells[col] = json.dumps(value) if is_text and not isinstance(value, str | None) else value
    return cells


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table read from a row file, in the current ``schema``: columns a newer version made lists
    parsed from the JSON text older rows hold, other changed types cast, "" made null where it
    means none (``NULL_WHEN_EMPTY``); columns the schema lacks are kept as they are."""
    for i, name in enumerate(table.column_names):
        if name not in schema.names:
            continue
        column, want = table.column(i), schema.field(name).type
        blank = (
            name in NULL_WHEN_EMPTY
            and pa.types.is_string(column.type)
            and pc.any(pc.equal(column, "")).as_py()
        )
        if not blank and column.type == want:
            continue  # the common case: a row of this version
        if blank:
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        if pa.types.is_list(want) and pa.types.is_string(column.type):
            column = pa.array([None if v is None else json.loads(v) for v in column.to_pylist()], want)
        table = table.set_column(i, schema.field(name), column.cast(want))
    return table


def described(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the descriptions of ``schema``'s fields (where the types agree)."""
    fields = [
        schema.field(f.name) if f.name in schema.names and schema.field(f.name).type == f.type else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def nulls_for_blanks(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with "" made None in the columns where an empty value means none."""
    return {k: (None if k in NULL_WHEN_EMPTY and v == "" else v) for k, v in row.items()}


def with_current(table: pa.Table, ids: frozenset[str] | None) -> pa.Table:
    """``table`` with a boolean ``current`` column: whether the row's job is one of ``ids`` (all
    rows are current when ``ids`` is None)."""
    jobs = table.column("job_id")
    flags = pc.is_in(jobs, value_set=pa.array(sorted(ids), pa.string())) if ids is not None else None
    column = flags if flags is not None else pa.array([True] * table.num_rows, pa.bool_())
    return table.append_column(
        pa.field("current", pa.bool_(), metadata={"description": CURRENT_TEXT}), column
    )


CURRENT_TEXT = "whether the job is one of the spec's jobs as its latest sweep found it (false: history)"


def only_current(table: pa.Table, ids: frozenset[str] | None) -> pa.Table:
    """The rows of ``table`` whose jobs are ``ids`` (every row when ``ids`` is None)."""
    if ids is None:
        return table
    return table.filter(pc.is_in(table.column("job_id"), value_set=pa.array(sorted(ids), pa.string())))


def to_pandas(table: pa.Table):
    """The table as a DataFrame with nullable integers and booleans (``Int64``, ``boolean``: a
    null seed stays a missing integer, not a float NaN) and lists as lists."""
    import pandas as pd

    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def for_pandas(table: pa.Table) -> pa.Table:
    """``table`` with pandas' metadata, so that ``pd.read_parquet`` with default arguments gives
    nullable integers and booleans (``to_pandas``); the fields keep their descriptions."""
    with warnings.catch_warnings():  # pandas 3.1 deprecates what pyarrow reads of tz-aware columns
        warnings.simplefilter("ignore")
        return pa.Table.from_pandas(to_pandas(table), schema=table.schema, preserve_index=False)


def rungs_record(rungs: Sequence[dict]) -> str:
    """A row's ``rungs`` cell: JSON, "" for a job without early stopping."""
    return json.dumps(list(rungs)) if rungs else ""


def parse_rungs(cell: object) -> list[dict]:
    """The rungs of a row's cell (``[]`` for null, NaN or text that is not a list)."""
    if not isinstance(cell, str) or not cell:
        return []
    try:
        value = json.loads(cell)
    except ValueError:
        return []
    return value if isinstance(value, list) else []

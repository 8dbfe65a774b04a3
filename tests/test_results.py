"""The Parquet results table: one schema, typed parameter columns, atomic per-job rows."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from algorithms.gatys import GatysParams
from orchestrator.params import params_to_dict
from orchestrator.results import (
    FIXED_COLUMNS,
    collect,
    finished_status,
    param_cells,
    read_results,
    result_schema,
    rows_dir,
    write_row,
)


def _row(job_id: str, status: str = "ok", **params) -> dict:
    p = params_to_dict(dataclasses.replace(GatysParams(), **params))
    schema = result_schema()
    return {
        "job_id": job_id,
        "status": status,
        "algorithm": "gatys",
        "seed": 0,
        "loss_total": 0.5,
        "finished_at": datetime.now(UTC),
        "params_json": json.dumps(p),
        **param_cells(p, schema),
    }


def test_schema_has_fixed_and_typed_parameter_columns():
    schema = result_schema()
    assert schema.names[: len(FIXED_COLUMNS)] == [n for n, _ in FIXED_COLUMNS]
    assert schema.field("param.style_weight").type == pa.float64()
    assert schema.field("param.steps").type == pa.int64()
    assert schema.field("param.scales").type == pa.int64()  # int | None -> nullable int
    assert schema.field("param.preserve_color").type == pa.bool_()
    assert schema.field("param.optimizer").type == pa.string()  # Literal of strings
    assert schema.field("param.style_layers").type == pa.string()  # tuples as JSON text
    for name in ("content_distance", "style_distance", "mlflow_run_id", "wall_seconds", "error", "device"):
        assert name in schema.names


def test_rows_round_trip_and_collect(tmp_path):
    write_row(tmp_path, _row("a", style_weight=5.0))
    write_row(tmp_path, _row("b", status="failed"))
    table = read_results(tmp_path)
    assert table.schema.equals(result_schema(), check_metadata=False)
    df = table.to_pandas().set_index("job_id")
    assert df.loc["a", "param.style_weight"] == 5.0
    assert json.loads(df.loc["a", "param.style_layers"])[0] == "relu1_1"
    assert finished_status(tmp_path) == {"a": "ok", "b": "failed"}
    assert sorted(p.name for p in rows_dir(tmp_path).iterdir()) == ["a.parquet", "b.parquet"]  # no temp files
    path = collect(tmp_path)
    assert pa.parquet.read_table(path).num_rows == 2


def test_rewriting_a_row_replaces_it(tmp_path):
    write_row(tmp_path, _row("a", status="failed"))
    write_row(tmp_path, _row("a", status="ok"))
    assert finished_status(tmp_path) == {"a": "ok"}


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(KeyError, match="not in the result schema"):
        write_row(tmp_path, {**_row("a"), "colour": "red"})
    assert not rows_dir(tmp_path).exists() or not list(rows_dir(tmp_path).iterdir())


def test_empty_output_reads_as_an_empty_table(tmp_path):
    assert read_results(tmp_path).num_rows == 0
    assert finished_status(tmp_path) == {}

"""The Parquet results table: one schema, typed parameter columns, atomic per-job rows."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from stylegrid.algorithms.optimization.gatys import GatysParams
from stylegrid.orchestrator.params import params_to_dict
from stylegrid.orchestrator.results.rows import (
    collect,
    compact,
    finished_status,
    load_rows,
    part_files,
    read_results,
    rows_dir,
    write_row,
)
from stylegrid.orchestrator.results.schema import FIXED_COLUMNS, param_cells, result_schema


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
    assert schema.names[: len(FIXED_COLUMNS)] == [n for n, *_ in FIXED_COLUMNS]
    assert schema.field("param.style_weight").type == pa.float64()
    assert schema.field("param.steps").type == pa.int64()
    assert schema.field("param.scales").type == pa.int64()  # int | None -> nullable int
    assert schema.field("param.preserve_color").type == pa.bool_()
    assert schema.field("param.optimizer").type == pa.string()  # Literal of strings
    assert schema.field("param.style_layers").type == pa.list_(pa.string())  # tuples as lists
    assert schema.field("param.content_layer_weights").type == pa.list_(pa.float64())
    for field in schema:  # every column says what it means
        assert field.metadata and field.metadata[b"description"].strip(), field.name
    for name in ("content_distance", "style_distance", "mlflow_run_id", "wall_seconds", "error", "device"):
        assert name in schema.names


def test_rows_round_trip_and_collect(tmp_path):
    write_row(tmp_path, _row("a", style_weight=5.0))
    write_row(tmp_path, _row("b", status="failed"))
    table = read_results(tmp_path)
    assert table.schema.equals(result_schema(), check_metadata=False)
    df = table.to_pandas().set_index("job_id")
    assert df.loc["a", "param.style_weight"] == 5.0
    assert list(df.loc["a", "param.style_layers"])[0] == "relu1_1"
    assert finished_status(tmp_path) == {"a": "ok", "b": "failed"}
    assert sorted(p.name for p in rows_dir(tmp_path).iterdir()) == ["a.parquet", "b.parquet"]  # no temp files
    path = collect(tmp_path)
    assert pa.parquet.read_table(path).num_rows == 2
    assert [p.name for p in rows_dir(tmp_path).iterdir()] == ["part-000001.parquet"]  # gathered


def test_results_parquet_reads_as_users_expect(tmp_path):
    """pd.read_parquet with default arguments: nullable integers, lists, nulls for "none", the
    descriptions in the schema; a row of an older version (lists as JSON, "" for none) reads the same."""
    import pandas as pd
    import pyarrow.parquet as pq

    write_row(tmp_path, {**_row("a"), "variant": "", "error": "", "tiles": ""})
    write_row(tmp_path, {**_row("b"), "seed": None})
    old = {**_row("c"), "variant": "", "param.style_layers": '["relu1_1", "relu2_1"]'}
    old_schema = pa.schema(
        [f if f.name != "param.style_layers" else pa.field(f.name, pa.string()) for f in result_schema()]
    )
    pq.write_table(pa.Table.from_pylist([old], schema=old_schema), rows_dir(tmp_path) / "c.parquet")
    df = pd.read_parquet(collect(tmp_path)).set_index("job_id")
    assert str(df["seed"].dtype) == "Int64" and df.loc["a", "seed"] == 0 and df.loc["b", "seed"] is pd.NA
    assert str(df["steps"].dtype) == "Int64"
    assert df[["variant", "error", "tiles"]].isna().all().all()
    assert list(df.loc["c", "param.style_layers"]) == ["relu1_1", "relu2_1"]
    assert list(df.loc["a", "param.style_layers"])[:2] == ["relu1_1", "relu2_1"]
    described = pq.read_schema(tmp_path / "results.parquet").field("content_distance").metadata
    assert b"description" in described


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


# --- part files -----------------------------------------------------------------------------------


def _ids(output) -> list[str]:
    return sorted(read_results(output).column("job_id").to_pylist())


def test_compact_gathers_loose_rows_into_parts_exactly_once(tmp_path):
    for job in "abc":
        write_row(tmp_path, _row(job))
    assert compact(tmp_path) == 3
    assert compact(tmp_path) == 0  # nothing loose: no empty part
    write_row(tmp_path, _row("d"))
    assert compact(tmp_path) == 1
    assert [p.name for p in part_files(tmp_path)] == ["part-000001.parquet", "part-000002.parquet"]
    assert [p.name for p in rows_dir(tmp_path).iterdir() if not p.name.startswith("part-")] == []
    assert _ids(tmp_path) == ["a", "b", "c", "d"]
    # what pandas reads from the folder, one row per job
    import pandas as pd

    assert sorted(pd.read_parquet(rows_dir(tmp_path)).job_id) == ["a", "b", "c", "d"]


def test_a_job_run_again_replaces_its_row_in_the_parts(tmp_path):
    write_row(tmp_path, _row("a", status="failed"))
    write_row(tmp_path, _row("b", status="failed"))
    compact(tmp_path)
    write_row(tmp_path, _row("a", status="ok"))
    assert finished_status(tmp_path) == {"a": "ok", "b": "failed"}  # the loose row is newer
    compact(tmp_path)
    assert finished_status(tmp_path) == {"a": "ok", "b": "failed"}
    write_row(tmp_path, _row("b", status="ok"))
    compact(tmp_path)  # part 1 now holds nothing: it goes
    assert [p.name for p in part_files(tmp_path)] == ["part-000002.parquet", "part-000003.parquet"]
    table = pa.concat_tables([pa.parquet.read_table(p) for p in part_files(tmp_path)])
    assert sorted(table.column("job_id").to_pylist()) == ["a", "b"]  # each once in the parts
    assert finished_status(tmp_path) == {"a": "ok", "b": "ok"}


def test_a_crash_between_the_part_and_the_deletes_loses_and_doubles_nothing(tmp_path):
    write_row(tmp_path, _row("a", status="failed"))
    write_row(tmp_path, _row("b"))
    kept = {p.name: p.read_bytes() for p in rows_dir(tmp_path).iterdir()}
    compact(tmp_path)
    for name, data in kept.items():  # as if the loose files had not been deleted yet
        (rows_dir(tmp_path) / name).write_bytes(data)
    write_row(tmp_path, _row("a", status="ok"))  # and one job ran again before the next compact
    assert len(load_rows(tmp_path).table) == 2
    assert finished_status(tmp_path) == {"a": "ok", "b": "ok"}
    compact(tmp_path)
    table = pa.concat_tables([pa.parquet.read_table(p) for p in part_files(tmp_path)])
    assert sorted(table.column("job_id").to_pylist()) == ["a", "b"]
    assert finished_status(tmp_path) == {"a": "ok", "b": "ok"}


def test_an_unreadable_part_is_named_and_its_jobs_run_again(tmp_path):
    write_row(tmp_path, _row("a"))
    compact(tmp_path)
    write_row(tmp_path, _row("b"))
    compact(tmp_path)
    part_files(tmp_path)[0].write_bytes(b"PAR1 damaged")
    rows = load_rows(tmp_path)
    assert rows.table.column("job_id").to_pylist() == ["b"]
    assert len(rows.unreadable) == 1 and "part-000001.parquet" in rows.unreadable[0]
    write_row(tmp_path, _row("a"))
    assert compact(tmp_path) == 1  # the damaged part is left alone, the row goes to a new part
    assert finished_status(tmp_path) == {"a": "ok", "b": "ok"}

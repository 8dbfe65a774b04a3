"""Row files (``results/rows.py``): a file cut short by a crash is named and left out, never read
as a row."""

from __future__ import annotations

from stylegrid.orchestrator.results.rows import finished_status, load_rows, write_row


def test_a_row_file_cut_short_leaves_the_folder_usable(tmp_path):
    from stylegrid.orchestrator.results.schema import result_schema

    row = {name: None for name in result_schema().names}
    row.update(job_id="a" * 16, status="ok")
    write_row(tmp_path, row)
    (tmp_path / "rows" / ("b" * 16 + ".parquet")).write_bytes(b"")  # a crash of an older version
    (tmp_path / "rows" / ("c" * 16 + ".parquet")).write_bytes(b"PAR1 cut")
    rows = load_rows(tmp_path)
    assert rows.table.column("job_id").to_pylist() == ["a" * 16]
    assert len(rows.unreadable) == 2 and "0 bytes" in rows.unreadable[0]
    assert finished_status(tmp_path) == {"a" * 16: "ok"}

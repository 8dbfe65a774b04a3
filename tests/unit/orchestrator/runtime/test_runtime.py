"""What every workflow prints (``orchestrator/runtime.py``): notes and bars on stderr, nothing when
quiet; the summary's headline and places on stdout, its warnings on stderr, one line each."""

from __future__ import annotations

from stylegrid.orchestrator.runtime import Console, Summary, cluster_named, print_summary


def test_notes_go_to_stderr_and_quiet_is_silent(capsys):
    Console().say("a", "note")
    assert list(Console(quiet=True).track([1, 2, 3], 3, "img")) == [1, 2, 3]
    Console(quiet=True).say("hidden")
    out, err = capsys.readouterr()
    assert out == "" and err == "a note\n"


def test_the_summary_puts_results_on_stdout_and_warnings_on_stderr(capsys):
    print_summary(Summary("done: 3 ok", [("results", "/r/results.parquet"), ("MLflow", "run 1")],
                          ["a database error\nover two lines", "x" * 600], interrupted=True))  # fmt: skip
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "done: 3 ok", "results: /r/results.parquet", "MLflow:  run 1",
        "interrupted: re-run the same command to finish the rest (finished work is kept)",
    ]  # fmt: skip
    warnings = err.splitlines()
    assert warnings[0] == "warning: a database error over two lines" and len(warnings) == 2
    assert len(warnings[1]) == len("warning: ") + 500 and warnings[1].endswith("...")


def test_a_cluster_is_named_by_ray_address_or_an_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    import ray

    if not ray.is_initialized():
        assert not cluster_named() and cluster_named({"address": "127.0.0.1:6379"})
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert cluster_named()

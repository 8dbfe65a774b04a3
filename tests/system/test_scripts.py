"""The benchmark and the gallery script run (their --smoke-test / tiny settings), as CI checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image

pytestmark = pytest.mark.slow


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a repository script with this Python; the test fails with its stderr if it fails."""
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a repository script as ``__main__`` in this process, its standard output captured: for
    the scripts that start no process of their own, whose smoke run is less work than a new
    Python's imports."""
    import contextlib
    import io
    import runpy

    out, argv, path, environ = io.StringIO(), sys.argv, list(sys.path), dict(os.environ)
    try:
        sys.argv = [script, *args]
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(str(REPO / script), run_name="__main__")
            except SystemExit as exc:  # a script that ends with sys.exit(status)
                assert exc.code in (0, None), f"{script} exited with {exc.code}: {out.getvalue()[-3000:]}"
    finally:
        sys.argv, sys.path[:] = argv, path
        os.environ.clear()
        os.environ.update(environ)
    return subprocess.CompletedProcess([script, *args], 0, out.getvalue(), "")


def test_gatys_speed_smoke(tmp_path):
    # stylegrid and the named peer; stylegrid-fp32 and stylegrid-defaults are stylegrid's own path
    # with other parameters, and plain (the tutorial loop, 16 s) is left out for the suite's time
    variants = ("stylegrid", "pastiche")
    proc = run_script(
        "benchmarks/gatys_speed.py", "--smoke-test", "--out-dir", str(tmp_path), "--variants", *variants
    )
    table = proc.stdout.split("variant", 1)[1]
    for variant in variants:
        assert f"\n{variant} " in table
        assert (tmp_path / f"{variant}_64.png").exists()


def test_gallery_script(tmp_path):
    out = tmp_path / "g.png"
    run_in_process(
        "docs/make_gallery.py",
        "--size",
        "32",
        "--steps",
        "3",
        "--pairs",
        "tubingen:starry_night",
        "--out",
        str(out),
    )
    assert Image.open(out).size == (32 * 5, 32 + 30)


def test_sweep_overhead_smoke():
    proc = run_in_process("benchmarks/sweep_overhead.py", "--smoke-test")
    assert "orchestration overhead per job" in proc.stdout
    assert "MLflow child run logged call by call" in proc.stdout
    assert "2 workers" in proc.stdout and "steady state" in proc.stdout


def test_algorithm_speed_smoke(tmp_path):
    proc = run_script("benchmarks/algorithm_speed.py", "--smoke-test", "--out-dir", str(tmp_path))
    table = proc.stdout.split("algorithm", 1)[1]
    for algorithm in ("gatys", "mrf", "histogram"):
        assert f"\n{algorithm} " in table
        assert (tmp_path / f"{algorithm}_64.png").exists()


def test_adain_speed_smoke():
    proc = run_in_process("benchmarks/adain_speed.py", "--smoke-test")
    table = proc.stdout.split("images/s", 1)[1]
    assert "\nstylegrid     32      2" in table and "\nplain         32      1" in table


def test_fast_style_smoke():
    proc = run_script("benchmarks/fast_style.py", "--smoke-test")
    speed, quality = proc.stdout.split("johnson img/s", 1)[1].split("quality at", 1)
    assert "\n   32      2 " in speed
    for algorithm in ("johnson", "adain", "gatys"):
        assert f"\n{algorithm:<9} held-out    1 " in quality, quality


@pytest.mark.xdist_group("ray_catalog")  # catalogs on the shared head run one at a time (./run test)
def test_catalog_throughput_smoke():
    # the plain loop left out (the suite's time): the script's table and goals without it
    proc = run_script("benchmarks/catalog_throughput.py", "--smoke-test", "--skip-plain", "--profile")
    table = proc.stdout.split("vs sequential", 1)[1]
    for variant in ("catalog", "catalog-ray", "catalog-ray+init", "sequential"):
        assert f"\n{variant} " in table
    assert "goal catalog >= 1x sequential loop" in proc.stdout
    profile = proc.stdout.split("where the time goes", 1)[1]
    for stage in ("decode", "to tensor", "model", "encode", "write", "sum"):
        assert f"\n  {stage} " in profile


def test_catalog_memory_smoke():
    proc = run_script("benchmarks/catalog_memory.py", "--smoke-test")
    rows = proc.stdout.split("driver MB", 1)[1].splitlines()[1:]  # after the header
    assert [ln.split()[:2] for ln in rows if ln.strip()] == [["local", "6"]]


def test_results_scale_smoke():
    proc = run_script("benchmarks/results_scale.py", "--smoke-test")
    table = proc.stdout.split("loose / parts", 1)[1]
    for step in ("plan", "resume"):
        assert f"\n{step} " in table


def test_tiled_smoke():
    proc = run_script("benchmarks/tiled.py", "--smoke-test")
    table = proc.stdout.split("layout", 1)[1]
    assert "\nadain       384 budget 80MB " in table and "2x3 tiles of 160 px" in table
    assert "\ngatys       384 budget 250MB " in table and "2x3 tiles of 144 px" in table


def test_print_crops_script(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (400, 300), "red").save(big)
    run_script("docs/print_crops.py", str(big), "--center", "390", "10", "--crop", "120",
               "--small", "100", "--out", str(tmp_path / "p"))  # fmt: skip
    assert Image.open(tmp_path / "p_small.jpg").size == (100, 75)
    assert Image.open(tmp_path / "p_crop.jpg").size == (120, 80)  # moved inside the image


def test_held_out_benchmark_smoke():
    proc = run_in_process("benchmarks/held_out.py", "--smoke-test")
    for name in ("adain (previous)", "johnson (previous)", "mrf", "gatys"):
        assert name in proc.stdout


def test_the_rule_that_chose_the_defaults():
    import pandas as pd

    sys.path.insert(0, str(REPO))
    from benchmarks.choose_defaults import choose

    table = pd.DataFrame(
        {
            "content_distance": [0.2, 0.3, 0.5, 0.35],
            "style_distance": [0.7, 0.4, 0.3, 0.45],  # the last is dominated by the second
            "pairs": 12,
        },
        index=pd.MultiIndex.from_tuples(
            [("mrf", f"style_weight={w}") for w in (1, 2, 4, 3)], names=["algorithm", "variant"]
        ),
    )
    chosen = choose(table, photo_style=0.9)
    assert list(chosen["front"]) == [True, True, True, False]
    assert chosen.index[chosen["chosen"]].tolist() == [("mrf", "style_weight=2")]
    # the lowest sum that stylizes: at most 2/3 of the photos' own style_distance
    floor = choose(table, photo_style=0.45)  # only style_distance <= 0.3 qualifies
    assert floor.index[floor["chosen"]].tolist() == [("mrf", "style_weight=4")]


def test_a_report_published_to_docs_links_its_thumbnails():
    sys.path.insert(0, str(REPO))
    from docs.publish_report import relink

    page = '<td><a href="../images/gatys/a__b__id.png"><img src="thumbs/abc.jpg" alt="x"></a></td>'
    assert relink(page) == '<td><a href="thumbs/abc.jpg"><img src="thumbs/abc.jpg" alt="x"></a></td>'


def test_regions_speed_smoke():
    proc = run_in_process("benchmarks/regions_speed.py", "--smoke-test")
    table = proc.stdout.split("ratio", 1)[1]
    for algorithm in ("gatys", "histogram", "adain_optimize"):
        assert f"\n{algorithm} " in table


def test_cli_startup_smoke():
    proc = run_script("benchmarks/cli_startup.py", "--smoke-test")
    assert "stylegrid --help" in proc.stdout and "mlflow --help" in proc.stdout


def test_inverse_validation_smoke():
    proc = run_in_process("benchmarks/inverse_validation.py", "--smoke-test")
    rows = proc.stdout.split("vs default", 1)[1].split()
    assert rows[:2] == ["64", "default"] and "wct" in rows and rows[5] == "1.00x"


@pytest.mark.long  # 100 s in the suite (its pieces have their own tests there): ./run checks
def test_gpu_check_smoke():
    # the demo sweep, a catalog, a training and a tiled picture, checked, on the CPU
    proc = run_in_process("benchmarks/gpu_check.py", "--smoke")
    table = proc.stdout.split("check\n", 1)[1]
    for step in ("demo sweep", "catalog", "training", "tiled 384 px"):
        line = next(ln for ln in table.splitlines() if ln.startswith(step))
        assert line.endswith(" ok"), line
    assert "2x3 tiles of 160 px" in table


def test_gpu_check_without_a_gpu_says_so_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the check would run")
    proc = run_in_process("benchmarks/gpu_check.py")
    assert proc.stdout.strip().splitlines() == [
        "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False): nothing to check; "
        "`--smoke` runs the same checks on the CPU"
    ]


def test_early_stopping_smoke():
    proc = run_in_process("benchmarks/early_stopping.py", "--smoke-test")
    assert "evaluations:" in proc.stdout and "of the full grid's" in proc.stdout
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["jobs"] == 4 and result["failed"] == 0
    assert result["evaluations_halved"] <= result["evaluations_full"]
    assert 0 < result["front_share"] <= 1 and 0 < result["hypervolume_share"] <= 1


def test_video_flicker_smoke():
    proc = run_in_process("benchmarks/video_flicker.py", "--smoke-test")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) == {"floor", "adain", "johnson"} and result["floor"] >= 0
    assert all(0 < result[a]["error_ratio"] and 0 < result[a]["style_ratio"] for a in ("adain", "johnson"))


def test_a_worker_row_is_found_when_ray_logs_after_it():
    """CI on 2b44e67: a Ray worker's log line reached the benchmark worker's stdout after its JSON
    row, and the driver read the last line as the row."""
    sys.path.insert(0, str(REPO))
    from benchmarks.common import last_row

    out = '(MapWorker pid=1) loading\n{"images": 6, "seconds": 1.5}\n(raylet) [2026] worker exited {\n'
    assert last_row({"stdout": out, "stderr": ""}, "catalog") == {"images": 6, "seconds": 1.5}
    with pytest.raises(RuntimeError, match="catalog printed no JSON row"):
        last_row({"stdout": "(raylet) nothing\n", "stderr": "boom"}, "catalog")

"""Nothing lost, nothing wrong marked ok, one clear line: the cases of the reliability issue that
need no Ray (files, rows, names, sizes, numbers, grids, locks, errors). The sweeps with faults are
in test_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SAMPLES, cli_in_process
from PIL import Image
from stylegrid.orchestrator.images import ImageError, check_size, resize_to
from stylegrid.orchestrator.params import ParameterError, build_params
from stylegrid.orchestrator.specs.loading import SpecError, resolve_images
from stylegrid.orchestrator.specs.sweep import load_spec
from stylegrid.orchestrator.storage.lock import LockError, acquire, folder_lock, release
from stylegrid.orchestrator.sweep.plan import plan_jobs

STARRY = SAMPLES / "style" / "starry_night.jpg"


def stylegrid(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The CLI's entry point, in this process (its messages are the point here, not the process)."""
    return cli_in_process(*args, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def photo(path: Path, w: int = 40, h: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


# --- files ----------------------------------------------------------------------------------------


# --- names ----------------------------------------------------------------------------------------


def test_names_that_exist_are_taken_literally_brackets_and_all(tmp_path):
    literal = photo(tmp_path / "photo[1].png", seed=1)
    photo(tmp_path / "photo1.png", seed=2)
    shoot = tmp_path / "shoot [2024]"
    shoot.mkdir()
    a, b = photo(shoot / "a.png"), photo(shoot / "b.png", seed=3)
    spec = tmp_path / "s.yaml"
    assert resolve_images(["photo[1].png"], tmp_path, "content", spec) == [literal.resolve()]
    assert resolve_images(["shoot [2024]/*.png"], tmp_path, "content", spec) == [a.resolve(), b.resolve()]
    assert resolve_images(["shoot [2024]"], tmp_path, "content", spec) == [a.resolve(), b.resolve()]
    assert resolve_images(["photo?.png"], tmp_path, "content", spec) == [(tmp_path / "photo1.png").resolve()]
    with pytest.raises(SpecError, match="as a pattern it matches no image file"):
        resolve_images(["nothing[0-9].png"], tmp_path, "content", spec)


def test_catalog_sources_take_existing_names_literally(tmp_path):
    from stylegrid.orchestrator.catalog.manifest import list_sources

    shoot = tmp_path / "shoot [2024]"
    shoot.mkdir()
    a = photo(shoot / "a.png")
    assert list_sources(str(shoot)) == [str(a.resolve())]
    assert list_sources(str(shoot / "*.png")) == [str(a.resolve())]


# --- sizes ----------------------------------------------------------------------------------------


def test_sizes_are_bounded_by_one_policy(monkeypatch):
    assert check_size(16, "size") == 16 and check_size(8192, "size") == 8192
    for bad in (1, 15, 8193, 100_000):
        with pytest.raises(ValueError, match=r"16\.\.8192"):
            check_size(bad, "size")
    monkeypatch.setenv("STYLEGRID_MAX_SIZE", "10000")
    assert check_size(10_000, "size") == 10_000


def test_a_thin_image_is_refused_before_any_allocation():
    panorama = Image.new("RGB", (8000, 200))
    with pytest.raises(ImageError) as err:
        resize_to(panorama, 64, "pano.jpg")
    assert "pano.jpg" in str(err.value) and "at least 640" in str(err.value)
    assert resize_to(panorama, 640, "pano.jpg").size == (640, 16)


@pytest.mark.parametrize("size", ["1", "15", "100000"])
def test_run_refuses_sizes_outside_the_policy_in_one_line(tmp_path, size):
    line = one_line_error(
        stylegrid("run", "--content", SAMPLES / "content" / "chelsea.jpg", "--style", STARRY,
                  "--out", tmp_path / "o.png", "--size", size),
        2,
    )  # fmt: skip
    assert "16..8192" in line


def test_run_refuses_a_panorama_too_thin_for_the_size_in_one_line(tmp_path):
    pano = tmp_path / "pano.png"
    Image.new("RGB", (8000, 200), (90, 120, 200)).save(pano)
    line = one_line_error(
        stylegrid("run", "--content", pano, "--style", STARRY, "--out", tmp_path / "o.png", "--size", "64"), 1
    )
    assert str(pano) in line and "under 16 px" in line


def test_spec_sizes_are_bounded(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f"name: s\ncontent: [{STARRY}]\nstyle: [{STARRY}]\nalgorithms: [{{name: gatys}}]\nsize: 1\n"
    )
    with pytest.raises(SpecError, match=r"size: .*16\.\.8192"):
        load_spec(spec)


# --- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_parameters_are_refused(value):
    from stylegrid.algorithms.optimization.gatys import GatysParams

    with pytest.raises(ParameterError, match="style_weight") as err:
        build_params(GatysParams, {"style_weight": value})
    assert "finite" in str(err.value) or ">= 0" in str(err.value)


@pytest.mark.parametrize(
    "args", [("--set", "style_weight=.inf"), ("--set", "content_weight=.nan"), ("--style-weight", "nan")]
)
def test_run_refuses_non_finite_weights_in_one_line(tmp_path, args):
    proc = stylegrid("run", "--content", SAMPLES / "content" / "chelsea.jpg", "--style", STARRY,
                     "--out", tmp_path / "o.png", "--size", "32", *args)  # fmt: skip
    assert "finite" in one_line_error(proc, 2)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_loss_that_becomes_nan_fails_the_job_instead_of_returning_the_photo(tubingen_64, optimizer):
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.base import NonFiniteLoss
    from stylegrid.algorithms.optimization.gatys import GatysParams

    content = tubingen_64[..., :32, :32].clone()
    content[..., 3, 3] = float("nan")
    params = GatysParams(steps=2, optimizer=optimizer)
    with pytest.raises(NonFiniteLoss, match="not finite"):
        get_algorithm("gatys").stylize(content, [tubingen_64], params, device=torch.device("cpu"))


# --- grids ----------------------------------------------------------------------------------------


def grid_spec(tmp_path: Path, values: int, extra: str = "") -> Path:
    photo(tmp_path / "c.png")
    spec = tmp_path / "grid.yaml"
    weights = [1 + i / 1000 for i in range(values)]
    spec.write_text(
        f"name: grid\ncontent: [c.png]\nstyle: [{STARRY}]\nseeds: [0, 1]\n"
        f"algorithms:\n  - name: gatys\n    grid: {{style_weight: {weights}, init: [noise, content]}}\n"
        + extra
    )
    return spec


def test_a_grid_is_counted_before_it_is_expanded(tmp_path):
    spec = grid_spec(tmp_path, 30_000)  # 1 x 1 x 60,000 settings x 2 seeds = 120,000 jobs
    with pytest.raises(SpecError) as err:
        plan_jobs(load_spec(spec), str(spec))
    assert "120,000 jobs" in str(err.value) and "max_jobs=100,000" in str(err.value)
    line = one_line_error(stylegrid("plan", spec), 1)
    assert "120,000 jobs" in line


def test_max_jobs_lets_a_large_grid_through(tmp_path):
    spec = grid_spec(tmp_path, 3, "max_jobs: 12\n")  # 6 settings x 2 seeds, the seeds fold for content
    expansion = plan_jobs(load_spec(spec), str(spec))
    assert len(expansion.jobs) == 9 and expansion.folded_seeds == 3
    spec.write_text(spec.read_text().replace("max_jobs: 12", "max_jobs: 11"))
    with pytest.raises(SpecError, match="12 jobs"):
        plan_jobs(load_spec(spec), str(spec))


# --- locks ----------------------------------------------------------------------------------------


def test_one_process_per_output_folder(tmp_path):
    with folder_lock(tmp_path, "stylegrid sweep a"):
        with pytest.raises(LockError) as err:
            acquire(tmp_path, "stylegrid sweep b")
        assert f"pid {os.getpid()}" in str(err.value) and "stylegrid sweep a" in str(err.value)
    assert not (tmp_path / ".stylegrid.lock").exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    lock = tmp_path / ".stylegrid.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "what": "old"}))
    path = acquire(tmp_path, "new")
    assert json.loads(path.read_text())["pid"] == os.getpid()
    release(path)
    assert not lock.exists()


# --- errors ---------------------------------------------------------------------------------------


def test_unexpected_errors_are_one_line():
    from stylegrid.orchestrator.cli.main import describe_error

    assert describe_error(MemoryError()).startswith("out of memory")
    oom = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    assert describe_error(oom).startswith("RuntimeError: ")
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
    assert describe_error(cuda).startswith("out of memory") and "\n" not in describe_error(cuda)
    assert describe_error(FloatingPointError("x")).startswith("FloatingPointError: x")


def test_run_checks_the_output_before_computing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = stylegrid("run", "--content", SAMPLES / "content" / "chelsea.jpg", "--style", STARRY,
                     "--out", blocker / "o.png", "--size", "32", "--steps", "100000")  # fmt: skip
    line = one_line_error(proc, 1)
    assert f"cannot write {blocker / 'o.png'}" in line


def test_catalog_failed_images_are_tried_again(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from stylegrid.orchestrator.catalog.manifest import done_pairs, manifest_dir, read_manifest
    from stylegrid.orchestrator.catalog.pipeline import manifest_schema

    Path(manifest_dir(tmp_path)).mkdir()

    def part(name: str, status: str) -> None:
        row = {n: None for n in manifest_schema().names}
        row.update(
            source="/a.jpg", style="/s.jpg", status=status, error="" if status == "ok" else "read-only"
        )
        pq.write_table(
            pa.Table.from_pylist([row], schema=manifest_schema()), Path(manifest_dir(tmp_path)) / name
        )

    part("part-20260101T000000-aaaaaa-000000.parquet", "error")
    assert done_pairs(tmp_path) == set()
    part("part-20260102T000000-bbbbbb-000000.parquet", "ok")
    assert done_pairs(tmp_path) == {("/a.jpg", "/s.jpg")}
    assert read_manifest(tmp_path)["status"].tolist() == ["ok"]
    assert read_manifest(tmp_path, history=True)["status"].tolist() == ["error", "ok"]


def test_spec_docs_mention_every_reliability_field():
    from stylegrid.orchestrator.specs import sweep as spec

    for name in ("timeout_s", "max_jobs", "retries"):
        assert name in spec.__doc__ and name in spec.SweepSpec.model_fields
    assert textwrap.dedent(spec.__doc__)

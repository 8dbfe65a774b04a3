"""The command line end to end, as a user runs it (real weights, tiny images): in real processes
where the process is the point (a run with its progress bar and snapshots, a bad input, the
installed script), else through the same entry point in this process (``cli_in_process``)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import BAD, SAMPLES, cli_in_process
from helpers import CONTENT, CONVERTED, REFUSED, STYLE, run_args, stylegrid
from PIL import Image
from stylegrid.algorithms.optimization.gatys import GatysParams


def assert_clean_error(proc: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0]


@pytest.mark.slow
def test_run_end_to_end_with_snapshots(tmp_path):
    out = tmp_path / "result" / "chelsea_scream.png"
    proc = stylegrid(*run_args(out, CONTENT, STYLE, "--save-every", "2", "--seed", "1"))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "content.relu4_2=" in proc.stdout
    img = Image.open(out)
    assert img.format == "PNG" and img.mode == "RGB" and max(img.size) == 48
    assert sorted(p.name for p in out.parent.glob("*_step*.png")) == [
        "chelsea_scream_step00002.png",
        "chelsea_scream_step00004.png",
    ]
    assert "4/4" in proc.stderr  # the progress bar reached the end


@pytest.mark.slow
def test_run_blends_two_styles_and_takes_parameters(tmp_path):
    out = tmp_path / "blend.png"
    second = SAMPLES / "style" / "starry_night.jpg"
    proc = cli_in_process(
        *run_args(out),
        "--style", second, "--style-weight", "0.7", "--style-weight", "0.3",
        "--set", "style_layers=relu1_1,relu2_1", "--set", "tv_weight=0.5", "--set", "init=noise",
        "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (
        "style.gram.relu2_1=" in proc.stdout
        and "style.gram.relu3_1" not in proc.stdout
        and "tv=" in proc.stdout
    )
    assert max(Image.open(out).size) == 48


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_bad_input_gets_a_one_line_error(tmp_path, name):
    out = tmp_path / "o.png"
    real = stylegrid(*run_args(out, content=BAD / name)) if name == "truncated.jpg" else None
    for proc in filter(None, (real, cli_in_process(*run_args(out, content=BAD / name)))):
        assert_clean_error(proc, 1, str(BAD / name), REFUSED[name])
    assert_clean_error(cli_in_process(*run_args(out, style=BAD / name)), 1, str(BAD / name))
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", CONVERTED)
def test_convertible_inputs_are_converted(tmp_path, name):
    out = tmp_path / "o.png"
    proc = cli_in_process(*run_args(out, content=BAD / name, style=BAD / name))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).mode == "RGB"


def test_usage_errors(tmp_path):
    assert_clean_error(cli_in_process(*run_args(tmp_path / "o.gif")), 2, "the extension names the format")
    assert_clean_error(
        cli_in_process(*run_args(tmp_path / "o.png"), "--style-weight", "1", "--style-weight", "2"),
        2,
        "1 --style images but 2 --style-weight",
    )
    assert_clean_error(
        cli_in_process(*run_args(tmp_path / "o.png"), "--set", "stepz=3"), 2, "did you mean 'steps'"
    )
    assert_clean_error(cli_in_process(*run_args(tmp_path / "o.png"), "--set", "steps=many"), 2, "'steps'")
    assert_clean_error(
        cli_in_process(*run_args(tmp_path / "o.png"), "--set", "init=missing.png"),
        1,
        "missing.png: no such file",
    )
    assert_clean_error(
        cli_in_process(*run_args(tmp_path / "o.png"), "--set", "vgg_weights=/no/such.pth"), 1, "/no/such.pth"
    )
    assert_clean_error(
        cli_in_process(*run_args(tmp_path / "o.png"), "--algorithm", "gatis"),
        2,
        "did you mean 'gatys'?); available: adain, adain_optimize, gatys",
    )
    if not torch.cuda.is_available():
        assert_clean_error(
            cli_in_process(*run_args(tmp_path / "o.png"), "--device", "cuda"), 2, "CUDA is not available"
        )
    assert not list(tmp_path.iterdir())


def test_algorithms_lists_every_parameter_with_its_default():
    proc = cli_in_process("algorithms")
    assert proc.returncode == 0
    sections = {block.split(" ", 1)[0]: block for block in proc.stdout.strip().split("\n\n")}
    assert sorted(sections) == [
        "adain",
        "adain_optimize",
        "gatys",
        "histogram",
        "johnson",
        "mrf",
        "style_swap",
        "style_swap_optimize",
        "wct",
    ]
    assert "relu3_1" in sections["wct"] and sections["wct"].startswith("wct (feedforward)")
    assert sections["style_swap"].startswith("style_swap (feedforward)")
    assert any(
        ln.strip().startswith("patch_size ") and "3" in ln for ln in sections["style_swap"].splitlines()
    )
    gatys = sections["gatys"]
    assert gatys.startswith("gatys (optimization)")
    for f in dataclasses.fields(GatysParams):
        line = next(ln for ln in gatys.splitlines() if ln.strip().startswith(f.name + " "))
        assert repr(f.default) in line


def test_console_script_is_installed():
    exe = shutil.which("stylegrid") or os.path.join(os.path.dirname(sys.executable), "stylegrid")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout and "algorithms" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algorithm", "setting", "term"),
    [
        ("mrf", "style_rotations=1", "style.mrf.relu3_1="),
        ("histogram", "histogram_layers=relu1_1", "style.hist.relu1_1="),
        ("style_swap_optimize", "patch_size=3", "style.swap.relu3_1="),
    ],
)
def test_run_other_image_optimisation_algorithms(tmp_path, algorithm, setting, term):
    out = tmp_path / f"{algorithm}.png"
    proc = cli_in_process(*run_args(out), "--algorithm", algorithm, "--set", setting)
    assert proc.returncode == 0, proc.stderr
    assert term in proc.stdout and max(Image.open(out).size) == 48
    listing = cli_in_process("algorithms").stdout
    assert f"\n{algorithm} (optimization)" in listing


def test_algorithm_specific_parameter_errors_name_the_parameter(tmp_path):
    proc = cli_in_process(
        *run_args(tmp_path / "out" / "o.png"), "--algorithm", "mrf", "--set", "patch_size=0"
    )
    assert_clean_error(proc, 2, "patch_size must be positive")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_run_adain_out_of_the_box_with_the_shipped_decoder(tmp_path):
    out = tmp_path / "adain.png"
    second = SAMPLES / "style" / "starry_night.jpg"
    args = [a for a in run_args(out) if a not in ("--steps", "4")]
    proc = cli_in_process(
        *args, "--algorithm", "adain", "--style", second,
        "--style-weight", "0.5", "--style-weight", "0.5", "--set", "alpha=0.8", "--set", "preserve_color=true",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "content.adain.relu4_1=" in proc.stdout and max(Image.open(out).size) == 48


def test_steps_for_a_feed_forward_algorithm_is_one_line(tmp_path):
    proc = cli_in_process(*run_args(tmp_path / "o.png"), "--algorithm", "adain")
    assert_clean_error(proc, 2, "--steps: adain has no steps (feedforward: one pass per image)")
    assert not list(tmp_path.iterdir())

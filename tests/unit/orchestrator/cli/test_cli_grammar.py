"""One command-line grammar across the subcommands: -o/--output (the old --out still accepted),
--set, --tracking-uri, -q/--quiet, --version; did-you-mean; exit statuses; a fast --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, SAMPLES
from helpers import assert_one_line, cli, run_args
from PIL import Image
from stylegrid.algorithms import ALGORITHMS
from stylegrid.algorithms.names import ALGORITHM_NAMES
from stylegrid.orchestrator.cli.main import main
from stylegrid.orchestrator.cli.parser import build_parser
from stylegrid.orchestrator.cli.workflows import catalog_spec_from_args
from stylegrid.orchestrator.errors import ParameterError
from stylegrid.orchestrator.specs.sweep import apply_sweep_settings, load_spec
from stylegrid.orchestrator.specs.train import JohnsonTrainSpec, load_train_spec

DEMO = REPO / "experiments" / "demo.yaml"
HEAVY = ("torch", "ray", "mlflow", "pandas")


def test_help_and_version_load_no_heavy_module():
    """`stylegrid --help` (and a subcommand's) answers without PyTorch, Ray, MLflow or pandas:
    benchmarks/cli_startup.py times it."""
    code = (
        "import sys\nfrom stylegrid.orchestrator.cli.main import main\n"
        "for argv in (['--help'], ['sweep', '--help'], ['--version']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "stylegrid 0." in proc.stdout


def test_the_light_names_are_the_registrys():
    assert sorted(ALGORITHM_NAMES) == sorted(ALGORITHMS)


@pytest.mark.parametrize(
    "command",
    [["run", "--content", "c", "--style", "s"], ["plan", "x.yaml"], ["sweep", "x.yaml"],
     ["results"], ["report"], ["train-adain", "x.yaml"], ["train-johnson", "x.yaml"],
     ["train-wct", "x.yaml"], ["stylize-catalog", "x.yaml"]],
)  # fmt: skip
def test_every_subcommand_spells_output_alike(command):
    parser = build_parser()
    for spelling in ("-o", "--output", "--out"):
        assert parser.parse_args([*command, spelling, "dest"]).output == "dest"


def test_the_shared_flags_are_where_they_mean_something():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    flags = {name: {s for a in p._actions for s in a.option_strings} for name, p in subparsers.items()}
    for name in ("run", "sweep", "plan", "train-adain", "train-johnson", "train-wct", "stylize-catalog"):
        assert "--set" in flags[name], name
    for name in ("run", "sweep", "train-adain", "train-johnson", "train-wct", "stylize-catalog"):
        assert {"--tracking-uri", "-q", "--quiet"} <= flags[name], name
    assert "--quiet" in flags["report"]


def test_results_and_report_take_the_folder_either_way(tmp_path, capsys):
    assert_one_line(cli(capsys, "results", "-o", tmp_path / "none"), 2, "not a sweep results folder")
    assert_one_line(cli(capsys, "results", tmp_path / "a", "-o", tmp_path / "b"), 2, "two folders given")
    assert_one_line(cli(capsys, "report"), 2, "give a sweep's results folder")


def test_sweep_settings_set_spec_fields_and_algorithm_parameters():
    spec = load_spec(DEMO)
    assert any("style_weight" in a.grid for a in spec.algorithms)
    changed = apply_sweep_settings(spec, ["size=64", "style_weight=3", 'tracking_uri="sqlite:///x.db"'])
    assert changed.size == 64 and changed.tracking_uri == "sqlite:///x.db"
    gatys = [a for a in changed.algorithms if a.name == "gatys"]
    assert gatys and all(a.params["style_weight"] == 3 and "style_weight" not in a.grid for a in gatys)
    adain = next(a for a in changed.algorithms if a.name == "adain")
    assert "style_weight" not in adain.params  # a decoder pass has no style weight
    with pytest.raises(ParameterError, match="did you mean 'style_weight'"):
        apply_sweep_settings(spec, ["style_wieght=3"])
    with pytest.raises(ParameterError, match="size"):
        apply_sweep_settings(spec, ["size=big"])


def test_plan_and_train_take_set(tmp_path, capsys):
    code, changed, err = cli(capsys, "plan", DEMO, "--set", "style_weight=3", "-o", tmp_path / "demo")
    assert code == 0, err
    full = cli(capsys, "plan", DEMO, "-o", tmp_path / "demo")[1]
    fewer, more = (int(text.split(": ", 1)[1].split(" jobs")[0]) for text in (changed, full))
    assert fewer < more  # the two Gatys style weights became one
    spec_path = REPO / "experiments" / "train_johnson.yaml"
    from stylegrid.orchestrator.params import apply_model_settings

    spec = apply_model_settings(load_train_spec(spec_path, JohnsonTrainSpec), ["lr=1e-4", "batch_size=2"])
    assert spec.lr == 1e-4 and spec.batch_size == 2
    with pytest.raises(ParameterError, match="did you mean 'steps'"):
        apply_model_settings(spec, ["stepz=3"])
    assert_one_line(
        cli(capsys, "train-johnson", spec_path, "--set", "lr=fast", "-o", tmp_path / "t"), 2, "lr"
    )


def test_catalog_set_reaches_spec_fields_and_algorithm_parameters(tmp_path):
    parser = build_parser()
    args = parser.parse_args(
        ["stylize-catalog", "--input", str(SAMPLES / "content"), "--style", str(SAMPLES / "style" / "shipwreck.jpg"),
         "-o", str(tmp_path / "o"), "--set", "memory_budget=2GB", "--set", "alpha=0.5", "--set", "quality=80"]
    )  # fmt: skip
    spec = catalog_spec_from_args(args)
    assert (spec.memory_budget, spec.alpha, spec.quality, spec.out) == ("2GB", 0.5, 80, str(tmp_path / "o"))
    args.set = ["alfa=0.5"]
    with pytest.raises(ParameterError, match="did you mean 'alpha'"):
        catalog_spec_from_args(args)


def test_run_writes_the_format_its_extension_names(tmp_path, capsys):
    out = tmp_path / "o.jpg"
    code, _, err = cli(capsys, *run_args(out), "--quiet")
    assert code == 0, err
    with Image.open(out) as img:
        assert img.format == "JPEG" and max(img.size) == 48


def test_exit_statuses(capsys):
    """README's table: 0 done, 1 bad input, 2 bad usage (the rest: the sweep and catalog tests)."""
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    with pytest.raises(SystemExit) as usage:
        main(["sweep", str(DEMO), "--frobnicate"])
    assert usage.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    assert_one_line(cli(capsys, "sweep", REPO / "no_such.yaml"), 1, "no_such.yaml")

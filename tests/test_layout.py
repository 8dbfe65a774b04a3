"""The code's layout keeps its promises (README "Layout"): data flows one way, algorithms/ stays
pure, and no module grows past about 400 lines without saying why at its top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# orchestrator/ modules by layer: a module imports only from its own layer or lower ones
LAYERS = [
    {"errors", "files", "limits", "lock", "provenance", "params", "services", "storage"},
    {
        "images",
        "spec",
        "jobs",
        "results",
        "tracking",
        "pictures",
        "runtime",
        "mirror",
        "models",
        "train_spec",
        "region_jobs",
        "halving",
    },
    {
        "worker",
        "sink",
        "report",
        "catalog_pipeline",
        "catalog_manifest",
        "catalog_local",
        "train_data",
        "train_recipes",
        "train_checkpoints",
        "train_held_out",
        "regions",
        "video_io",
        "video_segments",
    },
    {"sweep", "catalog", "train", "video"},
    {"cli", "__main__", "__init__"},
]
MAX_LINES = 400


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(sibling modules imported relatively, top-level packages imported absolutely)."""
    siblings, packages = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                siblings.add(node.module.split(".")[0])
            else:
                siblings.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            packages.update(a.name.split(".")[0] for a in node.names)
    return siblings, packages


def test_every_orchestrator_module_has_a_layer():
    modules = {p.stem for p in (REPO / "orchestrator").glob("*.py")}
    placed = set().union(*LAYERS)
    assert modules == placed, f"unplaced: {modules - placed}; gone: {placed - modules}"


@pytest.mark.parametrize("path", sorted((REPO / "orchestrator").glob("*.py")), ids=lambda p: p.stem)
def test_orchestrator_imports_never_reach_back_up(path):
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    siblings, _ = _imports(path)
    upward = sorted(m for m in siblings if level.get(m, 0) > level[path.stem])
    assert not upward, f"{path.name} (layer {level[path.stem]}) imports {upward}"


@pytest.mark.parametrize("path", sorted((REPO / "algorithms").glob("*.py")), ids=lambda p: p.stem)
def test_algorithms_stay_pure(path):
    _, packages = _imports(path)
    assert not packages & {"orchestrator", "ray", "mlflow", "pyarrow", "pandas"}, path.name


@pytest.mark.parametrize(
    "path", sorted([*REPO.glob("orchestrator/*.py"), *REPO.glob("algorithms/*.py")]), ids=lambda p: p.stem
)
def test_long_modules_say_why(path):
    lines = path.read_text().count("\n")
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or "Why this module is long" in doc, f"{path.name}: {lines} lines"


def test_the_readme_quotes_the_job_counts_of_its_experiment_files():
    """The experiment table's "N jobs" are what the specs expand to (files in the row's order)."""
    import re

    from conftest import CORPUS, needs_absent_corpus

    from orchestrator.jobs import plan_jobs
    from orchestrator.spec import load_spec

    checked = 0
    for row in (REPO / "README.md").read_text().splitlines():
        if not row.startswith("| `experiments/"):
            continue
        cells = row.split(" | ")
        files = re.findall(r"`(?:experiments/)?([a-z_]+\.yaml)`", cells[0])
        counts = [int(n) for n in re.findall(r"(\d+)(?=(?:, \d+)*(?:,)? jobs)", cells[-1])]
        if not counts:
            continue  # trainings and catalogs quote steps or images
        assert len(files) == len(counts), row
        for name, count in zip(files, counts, strict=True):
            path = REPO / "experiments" / name
            if needs_absent_corpus(path):
                continue
            assert len(plan_jobs(load_spec(path), str(path)).jobs) == count, name
            checked += 1
    assert checked >= (7 if CORPUS.is_dir() else 3)

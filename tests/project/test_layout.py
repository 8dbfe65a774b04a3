"""The code's layout keeps its promises (README "Layout", docs/architecture.md): one namespace,
data flows one way, algorithms/ stays pure, no import cycles, every package says what it holds
and what it may import, and no module grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

# orchestrator/ by sub-package (and the foundation modules at its top), lowest layer first: a part
# imports only from its own layer or lower ones, and the workflows never from one another
ORCHESTRATOR_LAYERS = [
    {"errors", "limits", "provenance", "services", "params", "storage"},
    {"images", "runtime", "specs", "tracking", "results"},
    {"report"},
    {"sweep", "catalog", "train", "video"},
    {"cli"},
]
WORKFLOWS = {"sweep", "catalog", "train", "video"}
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
            packages.add(_package(node.module))
        elif isinstance(node, ast.Import):
            packages.update(_package(a.name) for a in node.names)
    return siblings, packages


def _package(module: str) -> str:
    """The top-level package of an absolute import; ``stylegrid.<x>`` counts as ``<x>``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "stylegrid" and len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    """``algorithms.shared.vgg`` for algorithms/shared/vgg.py (``stylegrid.`` left off)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(tree: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((REPO / tree).rglob("*.py"))}


def _internal_imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the same tree that ``path`` imports, at its top or inside a function."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else []
                )
            else:
                base = (node.module or "").split(".")
                base = base[1:] if base[0] == "stylegrid" else base
            target = ".".join(base)
            for alias in node.names:  # `from . import color` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("stylegrid.") for a in node.names)
    return {m for m in found if m in known and m != name}


def _cycles(tree: str) -> list[list[str]]:
    """Every import cycle among the modules of ``tree`` (one list per strongly connected set)."""
    known = _modules(tree)
    graph = {m: _internal_imports(p, known) for m, p in known.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("tree", ["algorithms", "orchestrator"])
def test_no_import_cycles(tree):
    """Imports inside functions count too: a lazy import hides a cycle, it does not remove it."""
    assert _cycles(tree) == []


# algorithms/ by sub-package: what each may import of the tree (its own modules always)
ALGORITHM_LAYERS = {
    "names": set(),
    "weights": set(),
    "base": {"names"},
    "shared": {"base", "names"},
    "optimization": {"base", "names", "shared", "weights"},
    "feedforward": {"base", "names", "shared", "weights"},
    "video": {"base", "names", "shared", "optimization"},
    "registry": {"base", "names", "optimization", "feedforward"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("path", sorted((REPO / "algorithms").rglob("*.py")), ids=_module_name)
def test_algorithms_import_down_only(path):
    known = _modules("algorithms")
    own = _part(_module_name(path))
    if own == "__init__":
        return  # the package's lazy registry
    allowed = ALGORITHM_LAYERS[own] | {own}
    wrong = sorted(m for m in _internal_imports(path, known) if _part(m) not in allowed)
    assert not wrong, f"{_module_name(path)} ({own}) imports {wrong}"


def test_every_algorithms_module_is_in_a_layer():
    parts = {_part(m) for m in _modules("algorithms")} - {"__init__"}
    assert parts == set(ALGORITHM_LAYERS), parts ^ set(ALGORITHM_LAYERS)


def test_one_namespace():
    """Code imports ``stylegrid.algorithms`` / ``stylegrid.orchestrator``, never the folders'
    own names (those are PyPI distributions of other projects), and every package folder is one
    pyproject.toml installs."""
    import tomllib

    code = [*REPO.glob("*/**/*.py")]
    for path in code:
        if path.is_relative_to(REPO / ".venv") or path.is_relative_to(REPO / "stylegrid"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            bare = [n for n in names if n and n.split(".")[0] in {"algorithms", "orchestrator"}]
            assert not bare, f"{path.relative_to(REPO)}: import {bare[0]} (use stylegrid.{bare[0]})"
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"stylegrid"} | {
        "stylegrid." + ".".join(init.parent.relative_to(REPO).parts)
        for tree in ("algorithms", "orchestrator")
        for init in (REPO / tree).rglob("__init__.py")
    }
    assert listed == folders, listed ^ folders


def test_every_package_says_what_it_holds():
    for tree in ("algorithms", "orchestrator"):
        for init in (REPO / tree).rglob("__init__.py"):
            assert ast.get_docstring(ast.parse(init.read_text())), init


def test_every_orchestrator_part_has_a_layer():
    parts = {_part(m) for m in _modules("orchestrator")} - {"__init__"}
    placed = set().union(*ORCHESTRATOR_LAYERS)
    assert parts == placed, f"unplaced: {parts - placed}; gone: {placed - parts}"


@pytest.mark.parametrize("path", sorted((REPO / "orchestrator").rglob("*.py")), ids=_module_name)
def test_orchestrator_imports_never_reach_back_up(path):
    known = _modules("orchestrator")
    level = {part: i for i, layer in enumerate(ORCHESTRATOR_LAYERS) for part in layer}
    own = _part(_module_name(path))
    if own == "__init__":
        return
    imported = {_part(m) for m in _internal_imports(path, known)} - {own, "__init__"}
    upward = sorted(p for p in imported if level[p] > level[own])
    across = sorted(p for p in imported if own in WORKFLOWS and p in WORKFLOWS)
    assert not upward, f"{_module_name(path)} (layer {level[own]}) imports {upward}"
    assert not across, f"{_module_name(path)}: one workflow imports another: {across}"


@pytest.mark.parametrize("path", sorted((REPO / "algorithms").rglob("*.py")), ids=_module_name)
def test_algorithms_stay_pure(path):
    _, packages = _imports(path)
    assert not packages & {"orchestrator", "ray", "mlflow", "pyarrow", "pandas"}, path.name


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "algorithms").rglob("*.py"), *(REPO / "orchestrator").rglob("*.py")]),
    ids=_module_name,
)
def test_modules_stay_short(path):
    """No exemption: a module that grows past the limit is split by what it does."""
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{_module_name(path)}: {lines} lines"


def test_the_readme_quotes_the_job_counts_of_its_experiment_files():
    """The experiment table's "N jobs" are what the specs expand to (files in the row's order)."""
    import re

    from conftest import CORPUS, needs_absent_corpus
    from stylegrid.orchestrator.specs.sweep import load_spec
    from stylegrid.orchestrator.sweep.plan import plan_jobs

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


def test_unit_test_folders_mirror_the_packages():
    """tests/unit/<tree>/<package>/... names a package (or a foundation module) of that tree, and
    each of its test files imports from it: a moved or renamed package moves its tests."""
    unit = REPO / "tests" / "unit"
    folders = [
        d for d in unit.rglob("*") if d.is_dir() and d.name != "__pycache__" and any(d.glob("test_*.py"))
    ]
    assert folders
    for folder in folders:
        parts = folder.relative_to(unit).parts
        assert (REPO.joinpath(*parts)).is_dir() or (REPO.joinpath(*parts).with_suffix(".py")).is_file(), (
            folder
        )
        module = ".".join(("stylegrid", *parts))
        for test in folder.glob("test_*.py"):
            assert f"from {module}" in test.read_text() or f"import {module}" in test.read_text(), test

"""The documentation site builds with --strict (no broken link or anchor, no page left out of the
navigation), its reference pages are generated from the code, and the README stays short and
points into it."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _text(html: Path) -> str:
    return re.sub(r"<[^>]+>", " ", html.read_text())


def test_the_parameter_reference_lists_every_parameter_of_every_algorithm(site):
    from stylegrid.algorithms import ALGORITHMS

    page = _text(site / "reference" / "parameters" / "index.html")
    for name, algo in ALGORITHMS.items():
        assert f"{name}" in page
        for f in dataclasses.fields(algo.params_type):
            assert f.name in page, (name, f.name)
            if f.metadata.get("help"):
                # the help text, as the dataclass says it (HTML-escaped apostrophes aside)
                assert f.metadata["help"].split("'")[0][:40] in page.replace("&#39;", "'"), (name, f.name)


def test_the_spec_results_and_cli_references_come_from_the_code(site):
    from stylegrid.orchestrator.results.schema import result_schema
    from stylegrid.orchestrator.specs.catalog import CatalogSpec
    from stylegrid.orchestrator.specs.sweep import SweepSpec
    from stylegrid.orchestrator.specs.train import JohnsonTrainSpec

    specs = _text(site / "reference" / "specs" / "index.html")
    for model in (SweepSpec, CatalogSpec, JohnsonTrainSpec):
        for name in model.model_fields:
            assert name in specs, (model.__name__, name)
    results = _text(site / "reference" / "results" / "index.html")
    for field in result_schema():
        assert field.name in results
    cli = _text(site / "reference" / "cli" / "index.html")
    for sub in (
        "run",
        "sweep",
        "plan",
        "results",
        "report",
        "stylize-catalog",
        "train-adain",
        "train-johnson",
        "train-wct",
    ):
        assert f"stylegrid {sub}" in cli, sub
    assert "--tracking-uri" in cli and "--set" in cli


def test_an_unknown_generated_section_is_an_error():
    sys.path.insert(0, str(REPO / "docs" / "_hooks"))
    try:
        import reference
    finally:
        sys.path.remove(str(REPO / "docs" / "_hooks"))
    with pytest.raises(ValueError, match="x.md: unknown marker stylegrid:nope"):
        reference.expand("# t\n\n<!-- stylegrid:nope -->\n", "x.md")
    assert "| `style_weight` |" in reference.expand("<!-- stylegrid:parameters -->")


def test_the_readme_is_short_and_its_links_into_the_docs_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert (REPO / link).is_file(), link
    ci = (REPO / ".ci" / "run").read_text()
    assert "./run test" in readme and "./run test" in ci and "./run demo" in readme

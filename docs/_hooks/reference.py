"""MkDocs hook: the reference pages are generated from the code, so they cannot drift from it.

A page holds a marker line such as ``<!-- stylegrid:parameters -->``; at build time the marker is
replaced by Markdown made from what the program itself reads:

* ``parameters``: every registered algorithm's parameter dataclass (``param()`` help texts);
* ``specs``: the pydantic models of the sweep, catalog and training specs (field descriptions);
* ``results``: the Parquet schema of ``results.parquet`` (its field descriptions) and the
  catalog manifest's columns;
* ``cli``: every subcommand's ``--help``, from the parser ``stylegrid`` runs.

An unknown marker fails the build (``mkdocs build --strict`` runs in the test suite).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- stylegrid:([a-z_]+) -->$", re.MULTILINE)


def _cell(value: Any) -> str:
    """A value as a Markdown table cell: code, pipes escaped, no line breaks."""
    text = value if isinstance(value, str) else repr(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{_cell(value)}`"


def _type_name(annotation: Any) -> str:
    text = (
        annotation
        if isinstance(annotation, str)
        else getattr(annotation, "__name__", None) or str(annotation)
    )
    return re.sub(r"\b(typing|collections\.abc)\.", "", str(text))


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def parameters_md() -> str:
    from stylegrid.algorithms import ALGORITHMS

    out = []
    for name in sorted(ALGORITHMS):
        algo = ALGORITHMS[name]
        out += [f"## `{name}`", "", f"{algo.summary} ({algo.kind}). {algo.citation}", ""]
        rows = [
            (_code(field), _code(kind), _code(default), _cell(help_text))
            for field, kind, default, help_text in algo.parameter_table()
        ]
        out += [table(("parameter", "type", "default", "meaning"), rows), ""]
    return "\n".join(out)


def model_table(model: Any) -> str:
    from pydantic_core import PydanticUndefined

    rows = []
    for name, info in model.model_fields.items():
        if info.default is not PydanticUndefined:
            default = _code(info.default)
        elif info.default_factory is not None:
            default = _code(info.default_factory())
        else:
            default = "required"
        rows.append((_code(name), _code(_type_name(info.annotation)), default, _cell(info.description or "")))
    return table(("field", "type", "default", "meaning"), rows)


def specs_md() -> str:
    from stylegrid.orchestrator.specs.catalog import CatalogSpec
    from stylegrid.orchestrator.specs.sweep import AlgorithmSpec, Resources, SweepSpec
    from stylegrid.orchestrator.specs.train import AdaINTrainSpec, JohnsonTrainSpec

    sections = [
        ("Sweep spec (`stylegrid sweep`, `stylegrid plan`)", SweepSpec),
        ("`algorithms:` entries of a sweep spec", AlgorithmSpec),
        ("`resources:` of a sweep spec", Resources),
        ("Catalog spec (`stylegrid stylize-catalog`)", CatalogSpec),
        ("AdaIN decoder training spec (`stylegrid train-adain`)", AdaINTrainSpec),
        ("Fast style network training spec (`stylegrid train-johnson`)", JohnsonTrainSpec),
    ]
    out = []
    for title, model in sections:
        out += [f"## {title}", "", f"`{model.__module__}.{model.__name__}`", "", model_table(model), ""]
    return "\n".join(out)


def results_md() -> str:
    from stylegrid.orchestrator.catalog.pipeline import manifest_schema
    from stylegrid.orchestrator.results.schema import result_schema

    def schema_rows(schema) -> list[tuple[str, ...]]:
        return [
            (
                _code(f.name),
                _code(str(f.type)),
                _cell((f.metadata or {}).get(b"description", b"").decode()),
            )
            for f in schema
        ]

    return "\n".join(
        [
            "## `results.parquet` (a sweep's table)",
            "",
            "One row per job. `pq.read_schema(path).field(name).metadata[b'description']` gives the same "
            "text; `param.<name>` columns come from the algorithms' parameters.",
            "",
            table(("column", "Arrow type", "meaning"), schema_rows(result_schema())),
            "",
            "## `manifest/` (a catalog's table)",
            "",
            "One row per (image, style) attempt; the latest row of a pair is its result.",
            "",
            table(("column", "Arrow type", "meaning"), schema_rows(manifest_schema())),
            "",
        ]
    )


def cli_md() -> str:
    import argparse

    from stylegrid.orchestrator.cli.parser import build_parser

    parser = build_parser()
    out = ["## `stylegrid`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:  # argparse keeps its subparsers here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"## `stylegrid {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


GENERATORS = {"parameters": parameters_md, "specs": specs_md, "results": results_md, "cli": cli_md}


def expand(markdown: str, where: str = "page") -> str:
    """``markdown`` with every marker replaced by its generated text."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{where}: unknown marker stylegrid:{name} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs's signature
    return expand(markdown, page.file.src_uri)

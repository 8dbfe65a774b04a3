"""The exit statuses every command ends with (``orchestrator/errors.py``) are the ones the docs
list, and each kind of error is what the command line expects of it."""

from __future__ import annotations

from conftest import REPO
from stylegrid.orchestrator.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ParameterError,
    UsageError,
    UserError,
)


def test_the_docs_document_the_exit_statuses():
    section = (REPO / "docs" / "cli.md").read_text().split("## Exit statuses", 1)[1].split("\n#", 1)[0]
    for code in (EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED):
        assert f"`{code}`" in section
    assert "stylize-catalog" in section and "sweep" in section
    assert (EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED) == (0, 1, 2, 3, 130)


def test_usage_and_parameter_errors_are_value_errors_and_user_errors_are_not():
    assert issubclass(UsageError, ValueError) and issubclass(ParameterError, ValueError)
    assert not issubclass(UserError, ValueError)  # a folder in use is not a bad value: status 1

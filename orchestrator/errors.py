"""The errors a user can cause, and what the command line makes of them: light (no PyTorch, Ray,
MLflow or pandas), so that every subcommand can name them before it loads anything."""

from __future__ import annotations


class UserError(Exception):
    """An error the user can put right whose message says it all (the folder in use, a server
    that does not answer): one line on the command line, exit status 1, no traceback hint."""


class UsageError(ValueError):
    """A command-line mistake: reported on one line, exit status 2."""


class ParameterError(ValueError):
    """Bad parameter name or value; the message names it and says what is allowed (exit status 2
    on the command line)."""


# The exit statuses of every command (README "Exit statuses").
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

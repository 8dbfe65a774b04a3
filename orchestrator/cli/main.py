"""The ``stylegrid`` command line. Subcommands:

* ``stylegrid run``        stylize one content image with one or more style images
* ``stylegrid algorithms`` list every algorithm with its parameters, types and defaults
* ``stylegrid plan``       expand an experiment spec and show its jobs without running them
* ``stylegrid sweep``      run an experiment spec on Ray (MLflow runs + Parquet rows)
* ``stylegrid results``    print a sweep's results table or export it as CSV
* ``stylegrid report``     write a sweep's HTML report (pictures side by side, trade-off charts)
* ``stylegrid train-adain`` (``train-johnson``, ``train-wct``, ``train-style-swap``) train a network on Ray Train
* ``stylegrid stylize-catalog`` stylize a catalog of images with a feed-forward model on Ray Data
* ``stylegrid stylize-video`` stylize a video clip without flicker, in segments on Ray (resumable)

The grammar is ``parser.py``; ``run`` and ``algorithms`` are ``run.py``, the workflows' commands
``workflows.py``; here are the entry point and the one-line error policy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Only light modules at the top: `stylegrid --help` and a usage error answer without loading
# PyTorch, Ray, MLflow or pandas (tests/unit/orchestrator/cli/test_cli_grammar.py checks; benchmarks/cli_startup.py
# times it). Each subcommand imports what it needs.
from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ParameterError, UsageError, UserError
from ..services import ClusterLost
from .parser import build_parser
from .run import cmd_algorithms, cmd_run
from .workflows import (
    cmd_plan,
    cmd_report,
    cmd_results,
    cmd_stylize_catalog,
    cmd_stylize_video,
    cmd_sweep,
    cmd_train,
    exit_now,
)

# each subcommand's function (train-adain, train-johnson, ... share one, told apart by ``kind``)
COMMANDS = {
    "run": cmd_run,
    "algorithms": cmd_algorithms,
    "plan": cmd_plan,
    "sweep": cmd_sweep,
    "results": cmd_results,
    "report": cmd_report,
    "stylize-catalog": cmd_stylize_catalog,
    "stylize-video": cmd_stylize_video,
}


def results_folder(args: argparse.Namespace) -> None:
    """``results`` and ``report`` take the folder as a positional or as -o/--output; one of them."""
    if args.folder and args.output and args.folder != args.output:
        raise UsageError(f"two folders given ({args.folder} and -o {args.output}): give one")
    args.output = args.output or args.folder
    if not args.output:
        raise UsageError(f"give a sweep's results folder (stylegrid {args.command} runs/demo)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "folder"):
            results_folder(args)
        status = (cmd_train if args.command.startswith("train-") else COMMANDS[args.command])(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return status
    except BrokenPipeError:  # the reader went away (`stylegrid plan ... | head -1`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (UsageError, ParameterError) as exc:
        print(f"stylegrid {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClusterLost as exc:  # a training or a video whose cluster went away mid-run
        print(f"stylegrid {args.command}: error: {one_line(exc)}", file=sys.stderr)
        exit_now(EXIT_ERROR)
    except Exception as exc:  # every other failure: one line (STYLEGRID_DEBUG=1 shows the traceback)
        if os.environ.get("STYLEGRID_DEBUG"):
            raise
        print(f"stylegrid {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_ERROR


def known_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message says it all: stylegrid's own (ValueErrors: a bad image, spec or
    parameter), the system's (OSError) and missing VGG weights (if that module was loaded at all)."""
    vgg = sys.modules.get("stylegrid.algorithms.shared.vgg")
    return (ValueError, OSError, UserError, *([vgg.WeightsUnavailable] if vgg else []))


def one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """One line for any error: the message of the errors stylegrid raises, the kind and the
    message for the rest (out of memory, a torch or database error)."""
    if isinstance(exc, MemoryError):
        return f"out of memory{f' ({one_line(exc)})' if str(exc) else ''}; try a smaller size"
    if isinstance(exc, known_errors()) and str(exc):
        return one_line(exc)
    text = one_line(exc)
    if "out of memory" in text.lower():
        return f"out of memory ({text}); try a smaller size"
    return f"{type(exc).__name__}: {text} (STYLEGRID_DEBUG=1 shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())

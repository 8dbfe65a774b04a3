"""What the command line needs to know about the algorithms before any of them is loaded: their
names, the default sizes and the memory-budget help. Nothing here imports PyTorch, so that
``stylegrid --help`` and a mistyped algorithm answer at once (``tests/unit/orchestrator/cli/test_cli_grammar.py`` checks
that these names are the registry's)."""

from __future__ import annotations

import difflib

ALGORITHM_NAMES = (
    "gatys",
    "mrf",
    "histogram",
    "adain",
    "adain_optimize",
    "johnson",
    "style_swap",
    "style_swap_optimize",
    "wct",
)

# The sizes every entry point starts from unless told otherwise (`stylegrid run`, sweep specs,
# catalogs, the quality measures, the benchmarks): the scale at which the defaults were chosen.
DEFAULT_SIZE = 512  # output long side, px
DEFAULT_STYLE_SIZE = 512  # style images are used (and measured) with at most this long side, px
MIN_SIDE = 16  # the smallest image side: VGG-19 pools four times before relu5_1, 16 px leaves one position
MAX_STEPS = 100_000  # optimisation steps a job may ask for (a typo guard: 100,000 L-BFGS steps take days)

BUDGET_HELP = (
    "memory one pass may take: auto (60% of a GPU, half the RAM) or a size such as 2GB; a larger "
    "image is done in overlapping tiles with the whole image's statistics (the same picture)"
)


def did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'gatys'?)`` for a near miss, else an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_algorithm(name: str) -> str:
    """The one-line message for an algorithm name that is not registered."""
    return f"unknown algorithm {name!r}{did_you_mean(name, ALGORITHM_NAMES)}; available: {', '.join(sorted(ALGORITHM_NAMES))}"


def check_algorithm_name(name: str) -> str:
    """``name`` if an algorithm has it; ``ValueError`` with a did-you-mean otherwise."""
    if name not in ALGORITHM_NAMES:
        raise ValueError(unknown_algorithm(name))
    return name

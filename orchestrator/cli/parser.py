"""The ``stylegrid`` command line's grammar: one argument parser per subcommand with its help text,
the flag types (positive integers, sizes, finite numbers) and the flags every workflow shares.
Only light modules here: ``stylegrid --help`` and a usage error answer without loading PyTorch,
Ray, MLflow or pandas (``tests/unit/orchestrator/cli/test_cli_grammar.py`` checks; ``benchmarks/cli_startup.py`` times
it).
"""

from __future__ import annotations

import argparse
import math

from stylegrid.algorithms.names import ALGORITHM_NAMES, BUDGET_HELP, DEFAULT_SIZE, DEFAULT_STYLE_SIZE

from ..errors import EXIT_USAGE
from ..limits import check_size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size(text: str) -> int:
    try:
        return check_size(_positive_int(text), "size")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("size: ")) from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (the full usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _output(p: argparse.ArgumentParser, help: str, required: bool = False) -> None:
    """``-o/--output``, every subcommand's one spelling (``--out`` is still accepted)."""
    p.add_argument("-o", "--output", "--out", dest="output", metavar="PATH", required=required, help=help)


def _settings(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help=f"{help} (repeatable)")


def _tracking(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--tracking-uri", metavar="URI", help=f"MLflow tracking URI (default {default})")


def _quiet(p: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=what)


def _folder(p: argparse.ArgumentParser, what: str) -> None:
    """A sweep's results folder, as a positional or as -o/--output (the same folder a sweep wrote)."""
    p.add_argument("folder", nargs="?", metavar="OUTPUT", help=what)
    _output(p, f"the same, as an option: {what}")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("stylegrid")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="stylegrid",
        description="Neural style transfer experiments. Every subcommand spells its options alike: "
        "-o/--output, --set NAME=VALUE, --tracking-uri, -q/--quiet.",
    )
    parser.add_argument("--version", action="version", version=f"stylegrid {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="stylize a content image", description="Stylize one content image.")
    run.add_argument("--algorithm", default="gatys", help=f"one of: {', '.join(sorted(ALGORITHM_NAMES))}")
    run.add_argument("--content", required=True, help="content image file")
    run.add_argument("--style", action="append", help="style image file (repeat to blend)")
    run.add_argument(
        "--style-weight",
        action="append",
        type=_finite,
        help="blend weight per --style, in order (default equal)",
    )
    run.add_argument(
        "--mask",
        metavar="FILE",
        help="spatial control: a label image whose colours name regions of the content",
    )
    run.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="COLOUR=STYLE",
        help="with --mask: the style image of the region of that colour, or none to keep the photo (repeat)",
    )
    run.add_argument(
        "--style-mask",
        action="append",
        default=[],
        metavar="COLOUR=FILE",
        help="a label image of that region's style image: its pixels of COLOUR are the part to use",
    )
    _output(run, f"output image; its extension names the format ({', '.join(RUN_FORMATS)})", required=True)
    run.add_argument(
        "--size",
        type=_size,
        default=DEFAULT_SIZE,
        help=f"output long side in pixels, 16..8192 (default {DEFAULT_SIZE})",
    )
    run.add_argument(
        "--style-size",
        type=_size,
        default=DEFAULT_STYLE_SIZE,
        help=f"maximum long side of style images (default {DEFAULT_STYLE_SIZE})",
    )
    run.add_argument("--steps", type=_positive_int, help="optimisation steps (default: the algorithm's)")
    _settings(run, "any algorithm parameter (`stylegrid algorithms` lists them)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument(
        "--save-every", type=_positive_int, metavar="N", help="also save the image every N steps"
    )
    _tracking(run, "$MLFLOW_TRACKING_URI; the store of a model=models:/... parameter")
    _quiet(run)

    sub.add_parser("algorithms", help="list algorithms and their parameters")

    plan = sub.add_parser("plan", help="show the jobs of an experiment spec without running them")
    plan.add_argument("spec", help="experiment YAML file")
    _output(plan, "results folder (default: the spec's)")
    _settings(plan, "a field of the spec (size, steps, seeds, ...) or a parameter of its algorithms")
    plan.add_argument("--sample", type=_positive_int, default=10, help="jobs to list (default 10)")

    sweep = sub.add_parser("sweep", help="run an experiment spec on Ray")
    sweep.add_argument("spec", help="experiment YAML file")
    _output(sweep, "results folder (default: the spec's output, else runs/<name>)")
    _settings(
        sweep,
        "a field of the spec (size, steps, seeds, ...), else a parameter of every algorithm that has "
        "it, fixed for all their jobs",
    )
    sweep.add_argument("--max-concurrent", type=_positive_int, help="jobs at once (default: the spec's)")
    _tracking(sweep, "the spec's tracking_uri, else $MLFLOW_TRACKING_URI, else a SQLite store in the output")
    _quiet(sweep)

    results = sub.add_parser("results", help="print or export a sweep's results table")
    _folder(results, "a sweep's results folder")
    results.add_argument("--csv", metavar="FILE", help="write every column to FILE as CSV")
    results.add_argument("--all-columns", action="store_true", help="print every column")
    results.add_argument(
        "--history",
        action="store_true",
        help="also the rows of jobs the spec no longer has (an image dropped or replaced, a grid value "
        "changed), with a current column (default: the spec's jobs as its latest sweep found them)",
    )

    report = sub.add_parser(
        "report",
        help="write a sweep's HTML report",
        description="Write OUTPUT/report/index.html from a sweep's results: the outputs side by side, "
        "the measures' trade-offs, parameter effects, time per job, a summary and the failures.",
    )
    _folder(report, "a sweep's results folder")
    report.add_argument(
        "--spec",
        help="show only this spec's jobs as it stands (default: the jobs of the folder's latest sweep)",
    )
    _tracking(report, "$MLFLOW_TRACKING_URI, else the folder's own mlflow.db: where the links to the runs go")
    _quiet(report, "no summary line")

    for kind, what, example in (
        ("adain", "an AdaIN decoder", "experiments/train_adain.yaml"),
        ("johnson", "a multi-style fast network (Johnson et al., conditional instance norm)",
         "experiments/train_johnson.yaml"),
        ("wct", "WCT's reconstruction decoders, one per level (Li et al. 2017)", "experiments/train_wct.yaml"),
        ("style-swap", "the style-swap inverse network (Chen & Schmidt 2016)", "experiments/train_style_swap.yaml"),
    ):  # fmt: skip
        train = sub.add_parser(
            f"train-{kind}",
            help=f"train {what} with Ray Train",
            description=f"Train (or resume) {what} as the YAML file says ({example}); the result is "
            "also logged as an MLflow model.",
        )
        train.add_argument("spec", help="training YAML file")
        _output(train, "folder for checkpoints, MLflow and the model (default: the spec's)")
        _settings(train, "a field of the training spec (lr=1e-4, batch_size=2, ...)")
        train.add_argument("--steps", type=_positive_int, help="total steps (default: the spec's)")
        train.add_argument(
            "--num-workers", type=_positive_int, help="Ray Train workers (default: the spec's)"
        )
        train.add_argument(
            "--export", metavar="PATH", help="also write the final model here in fp16, with its .json"
        )
        train.add_argument(
            "--register-as", metavar="NAME",
            help="register the MLflow model under NAME (models:/NAME/<version>); default: the spec's register_as",
        )  # fmt: skip
        _tracking(
            train, "the spec's tracking_uri, else $MLFLOW_TRACKING_URI, else a SQLite store in the output"
        )
        _quiet(train)
        train.set_defaults(kind=kind)

    cat = sub.add_parser(
        "stylize-catalog",
        help="stylize a catalog of images with a feed-forward model on Ray Data",
        description="Stylize every image of a folder, glob or CSV/Parquet manifest with each --style, "
        "streaming on Ray Data; re-running resumes. Options override the YAML file's fields.",
    )
    cat.add_argument("spec", nargs="?", help="catalog YAML file (experiments/catalog.yaml)")
    cat.add_argument("--input", help="folder (recursive), glob, or .csv / .parquet manifest")
    cat.add_argument("--style", action="append", help="style image (repeat: each image gets every style)")
    _output(cat, "output folder or URI")
    cat.add_argument("--algorithm", help="a feed-forward algorithm (default adain)")
    cat.add_argument(
        "--size", type=_size, help=f"long side of the outputs, 16..8192 (default {DEFAULT_SIZE})"
    )
    cat.add_argument("--alpha", type=_finite, help="style strength, 0..1")
    cat.add_argument("--memory-budget", help=f"{BUDGET_HELP} (default auto)".replace("%", "%%"))
    cat.add_argument("--format", choices=["png", "jpeg"], help="output format (default png)")
    cat.add_argument("--quality", type=_positive_int, help="JPEG quality (default 92)")
    cat.add_argument(
        "--batch-size", type=_positive_int, help="images per model call (default 1 on CPUs, 8 on GPUs)"
    )
    cat.add_argument("--num-gpus", type=float, help="GPUs to use (default: every GPU of the cluster)")
    cat.add_argument(
        "--actors", type=_positive_int, help="model replicas (default: from the cluster's resources)"
    )
    cat.add_argument("--path-column", help="the manifest's path column (default path)")
    cat.add_argument(
        "--engine",
        choices=["auto", "ray", "local"],
        help="ray: Ray Data over the cluster; local: in this process; auto (default): ray where a "
        "cluster is named (RAY_ADDRESS) or actors/actor_resources/num_gpus > 0 are given, else local",
    )
    _settings(cat, "a field of the catalog spec (memory_budget, quality, ...) or an algorithm parameter")
    _tracking(cat, "$MLFLOW_TRACKING_URI, else sqlite:///OUTPUT/mlflow.db; needed for a URI --output")
    _quiet(cat)

    vid = sub.add_parser(
        "stylize-video",
        help="stylize a video clip without flicker, in segments on Ray; re-running resumes",
        description="Stylize a video file, a folder of frames (with --fps) or a video's URI into OUTPUT/"
        "<name>.mp4 with the source's timestamps and audio, plus OUTPUT/manifest.json and one MLflow "
        "run. Consecutive frames are kept consistent along the optical flow (--temporal-weight).",
    )
    vid.add_argument("input", help="video file, folder of frames, or s3://... URI of a video file")
    vid.add_argument("--style", action="append", required=True, help="style image (repeat to blend)")
    _output(vid, "output folder (the video, manifest.json, segments/ for resuming)", required=True)
    vid.add_argument(
        "--algorithm", default="adain", help="any algorithm; the feed-forward ones are fast (default adain)"
    )
    vid.add_argument(
        "--size", type=_size, default=DEFAULT_SIZE, help=f"long side of the frames (default {DEFAULT_SIZE})"
    )
    vid.add_argument("--style-size", type=_size, default=DEFAULT_STYLE_SIZE,
                     help=f"maximum long side of style images (default {DEFAULT_STYLE_SIZE})")  # fmt: skip
    vid.add_argument("--start", type=_finite, default=0.0, help="seconds into the source (default 0)")
    vid.add_argument("--duration", type=_finite, help="seconds to stylize (default: to the end)")
    vid.add_argument("--fps", type=_finite, help="frame rate of a folder of frames")
    vid.add_argument(
        "--temporal-weight",
        type=_finite,
        help="0 = frame by frame; feed-forward: share of the warped previous frame, 0..1 (default 0.5); "
        "optimisation: weight of the temporal loss (default 0.5)",
    )
    vid.add_argument("--segment-frames", type=_positive_int, default=48, help="frames per segment, the unit "
                     "of scheduling and of resuming (default 48)")  # fmt: skip
    vid.add_argument(
        "--overlap", type=int, default=4, help="frames a segment stylizes before its own (default 4)"
    )
    vid.add_argument(
        "--name", help="the output video's file name: .mp4, .mkv or .mov (default: the input's name, .mp4)"
    )
    vid.add_argument("--engine", choices=["auto", "ray", "local"], default="auto",
                     help="ray: segments as Ray tasks; local: in this process; auto (default): ray where a "
                     "cluster is named (RAY_ADDRESS)")  # fmt: skip
    vid.add_argument("--baseline", action="store_true", help="optimisation algorithms: also stylize every "
                     "frame on its own, to report the warping error beside frame by frame's (twice the "
                     "time; networks always report it)")  # fmt: skip
    vid.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _settings(vid, "any algorithm parameter (`stylegrid algorithms` lists them)")
    _tracking(vid, "$MLFLOW_TRACKING_URI, else sqlite:///OUTPUT/mlflow.db")
    _quiet(vid)
    return parser


# Output formats of `stylegrid run`, by the extension of --output (orchestrator.images.FORMATS)
RUN_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")

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

Why this module is long (about 500 lines): it is the whole user-facing edge, one argument parser
per subcommand with its help text (about 130 lines), each subcommand's few lines of glue, and the
one-line error policy; the work itself is in the modules each subcommand calls.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules at the top: `stylegrid --help` and a usage error answer without loading
# PyTorch, Ray, MLflow or pandas (tests/test_cli_grammar.py checks; benchmarks/cli_startup.py
# times it). Each subcommand imports what it needs.
from stylegrid.algorithms.names import (
    ALGORITHM_NAMES,
    BUDGET_HELP,
    DEFAULT_SIZE,
    DEFAULT_STYLE_SIZE,
    check_algorithm_name,
)

from .errors import ParameterError, UsageError, UserError
from .limits import check_size

if TYPE_CHECKING:
    import torch
    from stylegrid.algorithms import StepInfo

# Output formats of `stylegrid run`, by the extension of --output (orchestrator.images.FORMATS)
RUN_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


def resolve_device(name: str) -> torch.device:
    from stylegrid.algorithms.shared.device import pick_device

    try:
        return pick_device(name)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None


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
    run.set_defaults(func=cmd_run)

    algos = sub.add_parser("algorithms", help="list algorithms and their parameters")
    algos.set_defaults(func=cmd_algorithms)

    plan = sub.add_parser("plan", help="show the jobs of an experiment spec without running them")
    plan.add_argument("spec", help="experiment YAML file")
    _output(plan, "results folder (default: the spec's)")
    _settings(plan, "a field of the spec (size, steps, seeds, ...) or a parameter of its algorithms")
    plan.add_argument("--sample", type=_positive_int, default=10, help="jobs to list (default 10)")
    plan.set_defaults(func=cmd_plan)

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
    sweep.set_defaults(func=cmd_sweep)

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
    results.set_defaults(func=cmd_results)

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
    report.set_defaults(func=cmd_report)

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
        train.set_defaults(func=cmd_train, kind=kind)

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
    cat.set_defaults(func=cmd_stylize_catalog)

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
    vid.set_defaults(func=cmd_stylize_video)
    return parser


# --- run -----------------------------------------------------------------------------------------


class ProgressPrinter:
    """The CLI's step callback: a progress bar with losses and ETA, and periodic snapshots."""

    def __init__(self, out: Path, save_every: int | None, quiet: bool):
        self.out, self.save_every, self.quiet = out, save_every, quiet
        self.bar = None  # created at the first step, once the total is known
        self.latest: torch.Tensor | None = None

    def __call__(self, info: StepInfo) -> None:
        from stylegrid.algorithms.base import group_sums

        from .images import save_image

        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=info.total_steps, unit="step", disable=self.quiet, file=sys.stderr, dynamic_ncols=True
            )
        losses = info.losses
        content, style = group_sums(losses)
        self.bar.set_postfix(
            scale=f"{info.scale + 1}/{info.num_scales}",
            total=f"{losses.get('total', 0.0):.4g}",
            content="-" if content is None else f"{content:.3g}",
            style="-" if style is None else f"{style:.3g}",
            refresh=False,
        )
        self.bar.update(1)
        self.latest = info.image
        if self.save_every and info.step % self.save_every == 0:
            save_image(
                info.image, self.out.with_name(f"{self.out.stem}_step{info.step:05d}{self.out.suffix}")
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def check_output_format(out: Path) -> None:
    """``stylegrid run`` writes the format its output's extension names."""
    if out.suffix.lower() not in RUN_FORMATS:
        raise UsageError(
            f"--output {out}: the extension names the format; give one of {', '.join(RUN_FORMATS)}"
        )


def check_style_args(args: argparse.Namespace) -> list | None:
    """Either --style (blended by --style-weight) or --mask with a --region per colour: the
    parsed regions with --mask, else None."""
    if args.mask:
        if args.style or args.style_weight:
            raise UsageError(
                "--mask: the styles are the --region values; leave out --style and --style-weight"
            )
        if not args.region:
            raise UsageError("--mask needs a --region COLOUR=STYLE (or COLOUR=none) per colour of the mask")
        from .sweep.regions import parse_regions

        try:
            return parse_regions(args.region, args.style_mask)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.region or args.style_mask:
        raise UsageError("--region and --style-mask need --mask (the label image whose colours they name)")
    if not args.style:
        raise UsageError("--style is required (or --mask with --region values)")
    return None


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    check_output_format(out)
    try:
        check_algorithm_name(args.algorithm)
    except ValueError as exc:
        raise UsageError(f"--algorithm: {exc}") from None
    region_args = check_style_args(args)
    if args.style_weight is not None and len(args.style_weight) != len(args.style):
        raise UsageError(
            f"{len(args.style)} --style images but {len(args.style_weight)} --style-weight values"
        )

    import torch
    from stylegrid.algorithms import get_algorithm

    from .images import load_image, read_image, resize_to, save_image, to_tensor
    from .params import params_from_cli
    from .storage.files import check_writable
    from .tracking.model_uris import localize_here

    algorithm = get_algorithm(args.algorithm)
    fixed = {"steps": args.steps} if args.steps is not None else {}
    if fixed and "steps" not in {f for f, *_ in algorithm.parameter_table()}:
        raise UsageError(f"--steps: {algorithm.name} has no steps ({algorithm.kind}: one pass per image)")
    params = params_from_cli(algorithm.params_type, args.set, fixed)
    params = localize_here(
        params, args.tracking_uri
    )  # model=models:/...: that store's, else MLFLOW_TRACKING_URI's
    device = resolve_device(args.device)

    content = to_tensor(resize_to(read_image(args.content), args.size, args.content))
    if region_args is not None:
        if not algorithm.spatial_control:
            able = ", ".join(n for n in sorted(ALGORITHM_NAMES) if get_algorithm(n).spatial_control)
            raise UsageError(f"--mask: {algorithm.name} has no spatial control (these have: {able})")
        from .sweep.regions import load_regions

        styles, regions = load_regions(args.mask, region_args, content.shape[-2:], args.style_size)
        spatial = {"regions": regions}
    else:
        styles, spatial = [load_image(s, max_side=args.style_size) for s in args.style], {}
    init = getattr(params, "init", "content")
    init_image = None if init in ("content", "noise") else load_image(init)
    torch.manual_seed(args.seed)
    check_writable(out)  # now, not after the computation

    progress = ProgressPrinter(out, args.save_every, args.quiet)
    start = time.perf_counter()
    try:
        result = algorithm.stylize(
            content,
            styles,
            params,
            style_weights=args.style_weight,
            init_image=init_image,
            seed=args.seed,
            device=device,
            callback=progress,
            **spatial,
        )
    except KeyboardInterrupt:
        progress.close()
        if progress.latest is not None:
            partial = save_image(
                progress.latest.clamp(0, 1), out.with_name(f"{out.stem}_interrupted{out.suffix}")
            )
            print(f"interrupted; the last image is in {partial}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    save_image(result.image, out)
    if result.stopped_early:
        print(f"note: the optimiser stopped early ({result.stopped_early})", file=sys.stderr)
    losses = ", ".join(f"{k}={v:.4g}" for k, v in result.final_losses.items())
    print(
        f"wrote {out} ({result.image.shape[-1]}x{result.image.shape[-2]}) in {time.perf_counter() - start:.1f}s: "
        f"{result.evaluations} evaluations on {result.device} ({result.precision}); {losses}"
        + (f"; in {result.tiles}" if result.tiles else "")
    )
    return 0


# --- algorithms ----------------------------------------------------------------------------------


def format_algorithms() -> str:
    from stylegrid.algorithms import ALGORITHMS

    lines = []
    for name in sorted(ALGORITHMS):
        algo = ALGORITHMS[name]
        lines += [f"{name} ({algo.kind}): {algo.summary}", f"  {algo.citation}"]
        rows = [(n, t, repr(d), h) for n, t, d, h in algo.parameter_table()]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def cmd_algorithms(args: argparse.Namespace) -> int:
    sys.stdout.write(format_algorithms())
    return 0


# --- sweeps --------------------------------------------------------------------------------------


def spec_settings(args: argparse.Namespace) -> list[str]:
    """``--set`` assignments, with ``--tracking-uri`` as one more (a JSON string is YAML)."""
    tracking = getattr(args, "tracking_uri", None)
    return [*args.set, *([f"tracking_uri={json.dumps(tracking)}"] if tracking else [])]


def cmd_plan(args: argparse.Namespace) -> int:
    from .sweep.driver import plan

    print(plan(args.spec, args.output, args.sample, settings=spec_settings(args)))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .runtime import print_summary
    from .sweep.driver import run_sweep

    summary = run_sweep(
        args.spec,
        output=args.output,
        max_concurrent=args.max_concurrent,
        quiet=args.quiet,
        settings=spec_settings(args),
    )
    print_summary(summary.summary())
    if summary.cluster_lost:  # Ray's exit handler would wait about 60 s for the lost cluster
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_ERROR)
    return EXIT_ERROR if summary.lost else exit_status(summary.interrupted, summary.failed)


# The exit statuses of every command (README "Exit statuses").
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def exit_status(interrupted: bool, failed: int) -> int:
    """``sweep`` and ``stylize-catalog``: 130 interrupted, 3 if any job or image failed, else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .train.driver import train

    train(
        args.spec,
        kind=args.kind,
        register_as=args.register_as,
        output=args.output,
        steps=args.steps,
        num_workers=args.num_workers,
        export=args.export,
        quiet=args.quiet,
        settings=spec_settings(args),
    )
    return 0


CATALOG_FLAGS = ("input", "algorithm", "size", "alpha", "memory_budget", "format", "quality",
                 "batch_size", "num_gpus", "actors", "path_column", "engine", "tracking_uri")  # fmt: skip


def catalog_spec_from_args(args: argparse.Namespace):
    """The YAML file's spec (if any) with the command-line options on top."""
    from stylegrid.algorithms import get_algorithm

    from .params import check_names, parse_assignment, parse_cli_value, parse_setting
    from .specs.sweep import CatalogSpec, load_catalog_spec

    overrides = {k: getattr(args, k) for k in CATALOG_FLAGS if getattr(args, k) is not None}
    if args.output is not None:
        overrides["out"] = args.output
    if args.style:
        overrides["style"] = args.style
    spec = load_catalog_spec(args.spec) if args.spec else None
    pairs = [parse_assignment(text) for text in args.set]
    fields = {k: parse_setting(v) for k, v in pairs if k in CatalogSpec.model_fields and k != "params"}
    overrides.update(fields)
    algorithm_params = [(k, v) for k, v in pairs if k not in fields]
    if algorithm_params:
        algorithm = get_algorithm(overrides.get("algorithm") or (spec.algorithm if spec else "adain"))
        check_names(algorithm.params_type, [k for k, _ in algorithm_params], "--set: ")
        overrides["params"] = {k: parse_cli_value(algorithm.params_type, k, v) for k, v in algorithm_params}
    if spec is not None:
        if "params" in overrides:
            overrides["params"] = {**spec.params, **overrides["params"]}
        return CatalogSpec.model_validate({**spec.model_dump(), **overrides})
    missing = [
        f"--{k}" for k in ("input", "style", "output") if ("out" if k == "output" else k) not in overrides
    ]
    if missing:
        raise UsageError(f"give a catalog YAML file or {', '.join(missing)}")
    return CatalogSpec.model_validate(overrides)


def cmd_stylize_catalog(args: argparse.Namespace) -> int:
    import pydantic

    from .catalog.driver import stylize_catalog
    from .runtime import print_summary

    try:
        spec = catalog_spec_from_args(args)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from None
    summary = stylize_catalog(spec, quiet=args.quiet)
    print_summary(summary.summary())
    return exit_status(summary.interrupted, summary.failed)


def cmd_stylize_video(args: argparse.Namespace) -> int:
    try:
        check_algorithm_name(args.algorithm)
    except ValueError as exc:
        raise UsageError(f"--algorithm: {exc}") from None
    from stylegrid.algorithms import get_algorithm

    from .params import check_names, parse_assignment, parse_cli_value
    from .runtime import print_summary
    from .video.driver import VideoJob, stylize_video

    algorithm = get_algorithm(args.algorithm)
    values = {}
    for name, raw in map(parse_assignment, args.set):
        check_names(algorithm.params_type, [name], "--set: ")
        values[name] = parse_cli_value(algorithm.params_type, name, raw)
    job = VideoJob(
        input=args.input, styles=tuple(args.style), out=Path(args.output), algorithm=args.algorithm,
        params=values, size=args.size, style_size=args.style_size, start=args.start,
        duration=args.duration, fps=args.fps, temporal_weight=args.temporal_weight,
        segment_frames=args.segment_frames, overlap=args.overlap, engine=args.engine, seed=args.seed,
        baseline=args.baseline,
        name=args.name, tracking_uri=args.tracking_uri,
    )  # fmt: skip
    summary = stylize_video(job, quiet=args.quiet)
    print_summary(summary.summary())
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


SUMMARY_COLUMNS = [
    "job_id", "status", "algorithm", "variant", "content_name", "style_name", "seed", "loss_total",
    "content_distance", "content_ssim", "style_distance", "style_swd", "color_swd", "wall_seconds", "error",
]  # fmt: skip


def cmd_results(args: argparse.Namespace) -> int:
    import pandas as pd

    from .results.rows import current_jobs, only_current, read_results, rows_dir, to_pandas, with_current
    from .storage import locations as storage

    current = None
    if storage.is_remote(args.output):  # a sweep's output in an object store: its rows, read here
        from .sweep.mirror import store_results

        table = store_results(args.output)
        if table is None:
            raise UsageError(f"{args.output}: not a sweep's output (no rows/ inside)")
    else:
        out = Path(args.output)
        if not rows_dir(out).is_dir():
            raise UsageError(f"{out}: not a sweep results folder (no {rows_dir(out).name}/ inside)")
        table, current = read_results(out, strict=True), current_jobs(out)
    shown = with_current(table, current) if args.history else only_current(table, current)
    if not args.history and shown.num_rows < table.num_rows:
        print(f"({table.num_rows - shown.num_rows} rows of jobs the spec no longer has not shown; "
              "--history shows them)", file=sys.stderr)  # fmt: skip
    df = to_pandas(shown)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} rows to {args.csv}")
        return 0
    columns = [*SUMMARY_COLUMNS, *(["current"] if args.history else [])]
    shown = df if args.all_columns else df[[c for c in columns if c in df.columns]]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(shown.to_string(index=False))
    return 0


def report_ui(args: argparse.Namespace) -> str | None:
    """The MLflow UI the report's run links open: that of --tracking-uri, else of
    MLFLOW_TRACKING_URI, else ``mlflow ui``'s own when the folder holds its store."""
    from .tracking.tracker import default_tracking_uri, ui_base

    folder = Path(args.output)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri and (folder / "mlflow.db").is_file():
        uri = default_tracking_uri(folder)
    return ui_base(uri or None)


def cmd_report(args: argparse.Namespace) -> int:
    from .report.html import ReportError, write_report
    from .storage import locations as storage

    if storage.is_remote(args.output):
        raise UsageError(
            f"{args.output}: reports are made in a local folder; a sweep into an object store uploads its "
            f"report when it ends ({storage.join(args.output.rstrip('/'), 'report', 'index.html')}), and "
            "running the sweep again makes it anew"
        )

    from .results.rows import current_jobs

    job_ids = current_jobs(Path(args.output))  # the folder's latest sweep's jobs (None: every row)
    if args.spec:
        from .specs.sweep import load_spec
        from .sweep.plan import expand

        job_ids = {j.job_id for j in expand(load_spec(args.spec), args.spec)}
    try:
        report = write_report(Path(args.output), job_ids, strict=True, ui=report_ui(args))
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    older = f"; {report.not_shown} rows of jobs the spec no longer has not shown" if report.not_shown else ""
    if not args.quiet:
        stopped = f", {report.stopped} stopped early" if report.stopped else ""
        print(f"{report.jobs} jobs ({report.ok} ok{stopped}, {report.failed} failed{older}): {report.path}")
    return 0


# --- entry point ---------------------------------------------------------------------------------


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
        status = args.func(args)
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

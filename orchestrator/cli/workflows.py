"""The subcommands that run or read a workflow: ``plan``, ``sweep``, ``results``, ``report``,
``train-*``, ``stylize-catalog`` and ``stylize-video``: each a few lines of glue between the parsed
flags and the workflow's driver, which each imports only when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stylegrid.algorithms.names import check_algorithm_name

from ..errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, UsageError


def spec_settings(args: argparse.Namespace) -> list[str]:
    """``--set`` assignments, with ``--tracking-uri`` as one more (a JSON string is YAML)."""
    tracking = getattr(args, "tracking_uri", None)
    return [*args.set, *([f"tracking_uri={json.dumps(tracking)}"] if tracking else [])]


def cmd_plan(args: argparse.Namespace) -> int:
    from ..sweep.driver import plan

    print(plan(args.spec, args.output, args.sample, settings=spec_settings(args)))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..runtime import print_summary
    from ..sweep.driver import run_sweep

    summary = run_sweep(
        args.spec,
        output=args.output,
        max_concurrent=args.max_concurrent,
        quiet=args.quiet,
        settings=spec_settings(args),
    )
    print_summary(summary.summary())
    if summary.cluster_lost:
        exit_now(EXIT_ERROR)
    return EXIT_ERROR if summary.lost else exit_status(summary.interrupted, summary.failed)


def exit_now(status: int) -> None:
    """End the process after a lost Ray cluster: Ray's exit handler would wait about 60 s for it
    (and then print its own lines)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def exit_status(interrupted: bool, failed: int) -> int:
    """``sweep`` and ``stylize-catalog``: 130 interrupted, 3 if any job or image failed, else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failed else EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from ..train.driver import train

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

    from ..params import check_names, parse_assignment, parse_cli_value, parse_setting
    from ..specs.catalog import CatalogSpec, load_catalog_spec

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

    from ..catalog.driver import stylize_catalog
    from ..runtime import print_summary

    try:
        spec = catalog_spec_from_args(args)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from None
    summary = stylize_catalog(spec, quiet=args.quiet)
    print_summary(summary.summary())
    if summary.cluster_lost:
        exit_now(EXIT_ERROR)
    return exit_status(summary.interrupted, summary.failed)


def cmd_stylize_video(args: argparse.Namespace) -> int:
    try:
        check_algorithm_name(args.algorithm)
    except ValueError as exc:
        raise UsageError(f"--algorithm: {exc}") from None
    from stylegrid.algorithms import get_algorithm

    from ..params import check_names, parse_assignment, parse_cli_value
    from ..runtime import print_summary
    from ..video.driver import VideoJob, stylize_video

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

    from ..results.rows import current_jobs, read_results
    from ..results.schema import only_current, to_pandas, with_current
    from ..sweep.mirror import rows_here

    with rows_here(args.output) as folder:  # an object store's: a temporary copy of its rows
        if folder is None:
            raise UsageError(f"{args.output}: not a sweep results folder (no rows/ inside)")
        table, current = read_results(folder, strict=True), current_jobs(folder)
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
    from ..tracking.tracker import default_tracking_uri
    from ..tracking.ui import ui_base

    folder = Path(args.output)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri and (folder / "mlflow.db").is_file():
        uri = default_tracking_uri(folder)
    return ui_base(uri or None)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report.html import ReportError, write_report
    from ..storage import locations as storage

    if storage.is_remote(args.output):
        raise UsageError(
            f"{args.output}: reports are made in a local folder; a sweep into an object store uploads its "
            f"report when it ends ({storage.join(args.output.rstrip('/'), 'report', 'index.html')}), and "
            "running the sweep again makes it anew"
        )

    from ..results.rows import current_jobs

    job_ids = current_jobs(Path(args.output))  # the folder's latest sweep's jobs (None: every row)
    if args.spec:
        from ..specs.sweep import load_spec
        from ..sweep.plan import expand

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

"""``stylegrid run`` (one content image, one or more styles, here and now) and ``stylegrid
algorithms`` (every algorithm with its parameters, types and defaults).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from stylegrid.algorithms.names import ALGORITHM_NAMES, check_algorithm_name

from ..errors import EXIT_INTERRUPTED, UsageError
from .parser import RUN_FORMATS

if TYPE_CHECKING:
    import torch
    from stylegrid.algorithms import StepInfo


def resolve_device(name: str) -> torch.device:
    from stylegrid.algorithms.shared.device import pick_device

    try:
        return pick_device(name)
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None


class ProgressPrinter:
    """The CLI's step callback: a progress bar with losses and ETA, and periodic snapshots."""

    def __init__(self, out: Path, save_every: int | None, quiet: bool):
        self.out, self.save_every, self.quiet = out, save_every, quiet
        self.bar = None  # created at the first step, once the total is known
        self.latest: torch.Tensor | None = None

    def __call__(self, info: StepInfo) -> None:
        from stylegrid.algorithms.base import group_sums

        from ..images import save_image

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
        from ..sweep.regions import parse_regions

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

    from ..images import load_image, read_image, resize_to, save_image, to_tensor
    from ..params import params_from_cli
    from ..storage.files import check_writable
    from ..tracking.model_uris import localize_here

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
        from ..sweep.regions import load_regions

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

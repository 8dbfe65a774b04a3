"""The image-optimisation loop shared by Gatys, MRF, histogram and the other optimisation methods.

An algorithm supplies a *style term* (which layers it needs and how to turn their activations
into named losses); this module supplies everything else: content loss, total variation,
initialisation, the coarse-to-fine pyramid, colour preservation, mixed precision and a stable
L-BFGS / Adam loop that reports every step to the callback. What is minimised at each level is
``objective.py``; a pyramid level too large for the memory budget is optimised in tiles
(``tiles.py`` has the layout and the stitching).
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

import torch

from ..base import Callback, StepInfo, StepLoss, StylizeResult, check_finite
from ..shared import color
from ..shared.device import resolve_precision
from ..shared.memory import budget_bytes, budget_note
from ..shared.parameters import ImageOptimParams
from ..shared.regions import Region, check_regions
from ..shared.sizing import resize
from ..shared.vgg import MIN_SIDE, encode_targets, get_encoder
from . import lbfgs
from .objective import LevelObjectives, Objective, StyleTermFactory, Temporal, regional, style_at_scale
from .tiles import level_core, level_steps, optimize_level_in_tiles

# --- pure helpers for the pyramid ----------------------------------------------------------------


def pyramid_sizes(height: int, width: int, scales: int) -> list[tuple[int, int]]:
    """Sizes coarse -> fine, halving each level, never below MIN_SIDE; duplicates dropped."""
    sizes: list[tuple[int, int]] = []
    for level in reversed(range(scales)):
        f = 0.5**level
        size = (max(MIN_SIDE, round(height * f)), max(MIN_SIDE, round(width * f)))
        if not sizes or sizes[-1] != size:
            sizes.append(size)
    return sizes


def split_rounds(steps: int, every: int) -> list[int]:
    """``steps`` in rounds of ``every`` (the last one shorter); one round when ``every`` is 0."""
    if every <= 0 or every >= steps:
        return [steps]
    return [every] * (steps // every) + ([steps % every] if steps % every else [])


def split_steps(total: int, parts: int) -> list[int]:
    """``total`` steps over ``parts`` scales, equal shares, the remainder to the finest."""
    base = total // parts
    return [base] * (parts - 1) + [total - base * (parts - 1)]


# Relative noise of the total loss by encoder precision: bf16 activations make the loss fluctuate
# by about 2e-4 of its value between nearly identical images near convergence (the spread of the
# totals over the last steps of a bf16 run); fp32 is exact to rounding.
LOSS_NOISE = {"fp32": 1e-6, "bf16": 3e-4}


# --- the optimisation loop -----------------------------------------------------------------------


@dataclass
class _Tracker:
    """Counts steps and evaluations over all scales and forwards each step to the callback."""

    total_steps: int
    num_scales: int
    start: float
    callback: Callback | None
    history: list[StepLoss] = field(default_factory=list)
    step: int = 0
    evaluations: int = 0  # over the finished scales
    stopped: list[str] = field(default_factory=list)

    def record(self, scale: int, image: torch.Tensor, losses: dict[str, float], scale_evals: int) -> None:
        self.step += 1
        self.history.append(StepLoss(self.step, scale, losses))
        if self.callback is not None:
            self.callback(
                StepInfo(
                    step=self.step,
                    scale=scale,
                    losses=losses,
                    total_steps=self.total_steps,
                    num_scales=self.num_scales,
                    size=(image.shape[-2], image.shape[-1]),
                    evaluations=self.evaluations + scale_evals,
                    elapsed=time.perf_counter() - self.start,
                    image=image.detach(),
                )
            )


def optimize_scale(
    image: torch.Tensor,
    objective: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    steps: int,
    optimizer: str,
    learning_rate: float,
    precision: str,
    on_step: Callable[[torch.Tensor, dict[str, float], int], None],
) -> tuple[torch.Tensor, int, str]:
    """Minimise ``objective(image)["total"]`` for ``steps`` steps.

    Returns the image, the number of loss evaluations and why it stopped early ("" if it did not).

    ``on_step(image, losses, evaluations_so_far)`` is called after every step. The pixels are
    never clamped while optimising (clamping inside the closure moves the point L-BFGS believes
    it evaluated, corrupting its curvature pairs: that recipe diverged here); the range penalty
    keeps them near [0, 1] and the caller clamps once at the end.
    """
    shape = image.shape
    evaluations = 0

    def fg(flat: torch.Tensor) -> tuple[float, torch.Tensor, dict[str, float]]:
        nonlocal evaluations
        x = flat.view(shape).detach().requires_grad_(True)
        terms = objective(x)
        total = terms["total"]
        total.backward()
        evaluations += 1
        losses = {k: float(v.detach()) for k, v in terms.items()}
        if evaluations == 1:  # the starting point; line-search trials may overflow and back off
            check_finite(losses, evaluations)
        # the encoder runs channels-last; the flat vector needs the default layout
        return losses["total"], x.grad.contiguous().view(-1), losses

    if optimizer == "lbfgs":

        def report(flat: torch.Tensor, loss: float, losses: dict[str, float]) -> None:
            check_finite(losses, evaluations)
            on_step(flat.view(shape), losses, evaluations)

        outcome = lbfgs.minimize(
            fg, image.detach().contiguous().view(-1), steps, report, relative_noise=LOSS_NOISE[precision]
        )
        return outcome.x.view(shape), outcome.evaluations, outcome.stopped

    x = image.detach().clone().contiguous().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=learning_rate)
    for _ in range(steps):
        loss, grad, losses = fg(x.detach().view(-1))
        check_finite(losses, evaluations)
        x.grad = grad.view(shape)
        opt.step()
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"Adam diverged after {evaluations} evaluations (loss {loss})")
        on_step(x.detach(), losses, evaluations)
    return x.detach(), evaluations, ""


def initial_image(
    init: str, content: torch.Tensor, init_image: torch.Tensor | None, seed: int
) -> torch.Tensor:
    """The starting image at the content's size (before the pyramid shrinks it)."""
    if init == "content":
        return content.clone()
    if init == "noise":
        # White noise around mid-grey from a private generator: the same seed gives the same image
        # on any device, and the global RNG is left alone.
        g = torch.Generator(device="cpu").manual_seed(seed)
        noise = 0.5 + 0.25 * torch.randn(content.shape, generator=g)
        return noise.clamp(0, 1).to(content.device)
    if init_image is None:
        raise ValueError(f"init={init!r} is a file; the caller must load it and pass init_image")
    return resize(init_image.to(content.device), tuple(content.shape[-2:]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Method:
    """What an algorithm brings to the shared loop: the loop's parameters, its style term, the
    layers that term reads, and its own regional term where one per region will not do (MRF)."""

    params: ImageOptimParams
    style_term_factory: StyleTermFactory
    style_layers: Sequence[str]
    regional_factory: Callable[[StyleTermFactory, Sequence[Region]], StyleTermFactory] | None = None


def run_image_optimization(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    method: Method,
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
    regions: Sequence[Region] | None = None,
    temporal: Temporal | None = None,
) -> StylizeResult:
    """Coarse-to-fine image optimisation by ``method``; the keywords are ``base.StylizeFn``'s.

    ``temporal``: a video frame's temporal term (``Temporal``, at the content's size): the
    previous stylized frame warped onto this one, added to every level's objective.

    ``regions``: spatial control (``regions.py``): each region of the content takes its own style
    (or none); the style term is computed per region, by ``regional`` (each region's positions
    selected) or by the method's own ``regional_factory`` (a patch term keeps the layout).

    ``cache``: a dict the caller keeps between runs; style targets are memoised in it (keyed by
    the style images' values), so a worker running many jobs on one style computes them once.
    """
    start, params, style_term_factory = time.perf_counter(), method.params, method.style_term_factory
    device = torch.device(device)
    if not styles:
        raise ValueError("at least one style image is needed")
    weights = list(style_weights) if style_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles):
        raise ValueError(f"{len(styles)} style images but {len(weights)} style weights")
    if regions:
        if style_weights is not None:
            raise ValueError("style weights blend styles over the whole image; with regions each takes one")
        check_regions(regions, content.shape[-2:], len(styles))
        style_term_factory = (method.regional_factory or regional)(style_term_factory, regions)
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder(
        [*params.content_layers, *method.style_layers],
        source=params.vgg_weights,
        pooling=params.pooling,
        device=device,
    )
    content = content.to(device).float()
    styles = [s.to(device).float() for s in styles]
    start_image = initial_image(params.init, content, init_image, seed)
    if params.preserve_color:
        content_y = color.luminance(content)
        styles = [color.grey(color.match_luminance(color.luminance(s), content_y)) for s in styles]
        opt_content = color.grey(content_y)
        start_image = color.grey(color.luminance(start_image))
    else:
        opt_content = content

    scales = params.scales or params.default_scales(max(content.shape[-2:]))
    sizes = pyramid_sizes(*content.shape[-2:], scales)
    steps = split_steps(params.steps, len(sizes))
    budget = budget_bytes(params.memory_budget, device)
    cores = [level_core(h, w, budget) for h, w in sizes]
    if temporal is not None and any(core is not None for core in cores):
        raise ValueError(
            f"a video frame of {content.shape[-1]}x{content.shape[-2]} px needs tiles within "
            f"memory_budget={params.memory_budget}, and the temporal term is not tiled: raise "
            "memory_budget or lower the size"
        )
    if regions and any(core is not None for core in cores):
        raise ValueError(
            f"spatial control runs every pyramid level in one pass, and {content.shape[-1]}x"
            f"{content.shape[-2]} px needs tiles within memory_budget={params.memory_budget}: "
            "raise memory_budget or lower the size"
        )
    total = sum(level_steps(*size, core, n) for size, core, n in zip(sizes, cores, steps, strict=True))
    tracker = _Tracker(total, len(sizes), start, callback)
    cache = {} if cache is None else cache  # tiles share the style targets of their level
    level = LevelObjectives(encoder, params, style_term_factory, weights, precision, device, cache, temporal)
    x = start_image
    tiled: list[str] = []
    for scale, (size, n, core) in enumerate(zip(sizes, steps, cores, strict=True)):
        factor = size[0] / content.shape[-2]
        scaled_styles = [
            style_at_scale(s, params.style_scale, max(content.shape[-2:]), factor) for s in styles
        ]
        area = size[0] * size[1] / (content.shape[-2] * content.shape[-1])
        x, layout = _optimize_level(
            resize(x, size), resize(opt_content, size), scaled_styles, area, n, core, scale, tracker, level
        )
        if layout:
            tiled.append(f"scale {scale + 1}/{len(sizes)}: {layout}")

    out = x.detach().clamp(0, 1)
    measured = None
    if tiled:  # the whole result's losses, on a copy small enough for one pass
        measured = level.measure(out, opt_content, styles, params.style_scale, budget)
    if params.preserve_color:
        out = color.recombine_luminance(out, content)
    return StylizeResult(
        image=out.cpu(),
        history=tracker.history,
        evaluations=tracker.evaluations,
        stopped_early="; ".join(tracker.stopped),
        elapsed=time.perf_counter() - start,
        precision=precision,
        device=str(device),
        tiles=budget_note("; ".join(tiled), budget) if tiled else "",
        measured=measured,
    )


def _optimize_level(x: torch.Tensor, content: torch.Tensor, scaled_styles: Sequence[torch.Tensor],
                    area: float, steps: int, core: int | None, scale: int, tracker: _Tracker,
                    level: LevelObjectives) -> tuple[torch.Tensor, str]:  # fmt: skip
    """One pyramid level (``area``: its pixels / the output's): whole when ``core`` is None, else
    in tiles of that core (the layout's description is returned then; "" for a whole level)."""
    where = f"scale {scale + 1}/{tracker.num_scales}"
    if core is not None:
        x = x.clone()  # the tiles are written into it: the level's own copy
    whole = x

    def on_step(img: torch.Tensor, losses: dict[str, float], evals: int) -> None:
        # a tile reports its own losses, and the whole image as it stands
        tracker.record(scale, img if core is None else whole, losses, evals)

    def optimize(part: torch.Tensor, content_part: torch.Tensor, k: int) -> torch.Tensor:
        objective = level.build(content_part, scaled_styles, area)
        return _optimize_rounds(part, objective, k, level.params, level.precision, on_step, tracker, where)

    if core is None:
        return optimize(x, content, steps), ""
    return x, optimize_level_in_tiles(x, content, core, steps, optimize)


def _optimize_rounds(
    x: torch.Tensor,
    objective: Objective,
    steps: int,
    params: ImageOptimParams,
    precision: str,
    on_step: Callable[[torch.Tensor, dict[str, float], int], None],
    tracker: _Tracker,
    where: str,
) -> torch.Tensor:
    """``steps`` steps on ``objective``, in rounds when its style term's targets follow the image
    (MRF's matches, fixed for a round from the image as it stands)."""
    encoder = objective.encoder
    rounds = split_rounds(steps, getattr(objective.style, "refresh_every", 0))
    for i, k in enumerate(rounds):
        if len(rounds) > 1:
            objective.style.refresh(encode_targets(encoder, x, objective.style.layers, precision))
        x, evaluations, stopped = optimize_scale(
            x, objective, k, params.optimizer, params.learning_rate, precision, on_step
        )
        tracker.evaluations += evaluations
        if stopped and i == len(rounds) - 1 and where not in " ".join(tracker.stopped):
            tracker.stopped.append(f"{where} after {evaluations} evaluations: {stopped}")
    return x


def image_optimization_stylize(
    params_type: type,
    style_term_factory_for: Callable[[ImageOptimParams], StyleTermFactory],
    style_layers_of: Callable[[ImageOptimParams], Sequence[str]],
    loop_params_of: Callable[[ImageOptimParams], ImageOptimParams] = lambda p: p,
    spatial_control: bool = True,
    regional_factory_for: Callable[[ImageOptimParams], Callable] | None = None,
):
    """An algorithm's ``stylize`` (the interface of ``base.StylizeFn``) from its parameter type,
    the style-term factory it builds for given parameters, and the layers that term reads.
    ``loop_params_of`` gives the parameters the shared loop sees (an algorithm whose term owns
    the content loss switches the loop's off there). ``spatial_control``: whether its term can
    be computed per region (``regions.py``); ``regional_factory_for``: the algorithm's own way
    of doing so for given parameters (default: its term on each region's positions)."""

    def stylize(
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        params: ImageOptimParams | None = None,
        *,
        style_weights: Sequence[float] | None = None,
        init_image: torch.Tensor | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        callback: Callback | None = None,
        cache: MutableMapping | None = None,
        regions: Sequence[Region] | None = None,
        temporal: Temporal | None = None,
    ) -> StylizeResult:
        """Stylize ``content`` [1, 3, H, W] with ``styles`` (RGB in [0, 1]), per region when
        ``regions`` are given; ``temporal``: a video frame's temporal term."""
        if regions and not spatial_control:
            raise ValueError(f"{params_type.__name__}: this algorithm has no spatial control")
        params = params or params_type()
        method = Method(
            loop_params_of(params),
            style_term_factory_for(params),
            style_layers_of(params),
            regional_factory_for(params) if regional_factory_for else None,
        )
        return run_image_optimization(
            content,
            styles,
            method,
            style_weights=style_weights,
            init_image=init_image,
            seed=seed,
            device=device,
            callback=callback,
            cache=cache,
            regions=regions,
            temporal=temporal,
        )

    stylize.spatial_control = spatial_control  # type: ignore[attr-defined]
    stylize.temporal = True  # type: ignore[attr-defined]  (takes a video frame's temporal term)
    return stylize

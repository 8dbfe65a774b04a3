"""The image-optimisation loop shared by Gatys, MRF, histogram and the other optimisation methods.

An algorithm supplies a *style term* (which layers it needs and how to turn their activations
into named losses); this module supplies everything else: content loss, total variation,
initialisation, the coarse-to-fine pyramid, colour preservation, mixed precision and a stable
L-BFGS / Adam loop that reports every step to the callback. A pyramid level too large for the
memory budget is optimised in tiles (``optimize_tiles.py`` has the layout and the stitching).

Why this module is long: it is the one loop four algorithms share, and its parts (the objective,
the step tracker, a level whole or in tiles, the rounds of a term whose targets follow the image)
each read the others' state; split, they would pass that state around instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from . import color, lbfgs
from .base import Callback, StepInfo, StepLoss, StylizeResult, check_finite
from .device import autocast, resolve_precision
from .losses import content_loss, laplacian, laplacian_loss, range_penalty, total_variation
from .memory import budget_bytes, budget_note
from .optimize_tiles import level_core, level_steps, optimize_level_in_tiles
from .parameters import ImageOptimParams, layer_weights
from .regions import MaskedEncoder, Region, RegionTerms, area_shares, check_regions, with_mask
from .vgg import MIN_SIDE, VGGEncoder, encode_targets, get_encoder

LOSS_SIDE = 1024  # a result optimised in tiles has its losses measured on a copy this long at most
FORWARD_BYTES_PER_PIXEL = 1000  # one forward pass without gradients (relu1_1 and its neighbour)

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


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True)


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    f = long_side / max(h, w)
    return resize(image, (max(1, round(h * f)), max(1, round(w * f))))


# Relative noise of the total loss by encoder precision (measured here: bf16 activations made the
# loss fluctuate by about 2e-4 of its value between nearly identical images near convergence).
LOSS_NOISE = {"fp32": 1e-6, "bf16": 3e-4}


# --- the style-term protocol ---------------------------------------------------------------------


class StyleTerm(Protocol):
    """Built by an algorithm for one scale: the layers it reads and its named losses.

    A term whose targets depend on the image itself (MRF's nearest patches) may also have
    ``refresh_every`` (steps) and ``refresh(features)``: the loop then runs the scale in rounds
    of that many steps and, before each, hands the term the current image's features to fix its
    targets from, so that the optimiser sees a smooth loss within a round.
    """

    layers: tuple[str, ...]

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class TermInputs:
    """What an algorithm builds its style term of one pyramid level (or of one tile of it) from."""

    encoder: VGGEncoder
    content: torch.Tensor  # the level's content as optimised (grey when preserving colour), or a tile
    styles: Sequence[torch.Tensor]  # the style images resized for this level
    weights: Sequence[float]  # the styles' blend weights
    precision: str  # what the encoder runs in: "fp32" or "bf16"
    memo: MutableMapping | None  # the caller's memo for expensive style targets (see ``memo``), or None
    # This level's pixels / the output's (1 at the finest level, 1/4 one level coarser). A term
    # that sums over positions, as CNNMRF's MRF term does, weighs a level by it.
    level: float = 1.0


# Builds the style term of one level from its ``TermInputs``.
StyleTermFactory = Callable[[TermInputs], StyleTerm]


def regional(factory: StyleTermFactory, regions: Sequence[Region]) -> StyleTermFactory:
    """The factory of a spatially controlled level (``regions.py``): the algorithm's own term
    once per region, built from the region's style (the level's content itself where the region
    keeps the photo) seen through its masks, and summed by ``RegionTerms``."""
    shares = area_shares(regions)

    def build(t: TermInputs) -> StyleTerm:
        masked = MaskedEncoder(t.encoder)
        size = tuple(t.content.shape[-2:])
        terms, masks = [], []
        for r in regions:
            mask = F.interpolate(r.mask.float().to(t.content.device), size=size, mode="area")
            region_content = with_mask(t.content, mask)
            style = region_content if r.style is None else with_mask(t.styles[r.style], r.style_mask)
            inputs = TermInputs(masked, region_content, [style], [1.0], t.precision, t.memo, t.level)
            terms.append(factory(inputs))
            masks.append(mask)
        return RegionTerms(terms, masks, shares)

    return build


@dataclass
class Temporal:
    """Ruder, Dosovitskiy & Brox's short-term temporal loss for a video frame: ``weight`` times
    the mean squared difference to the previous stylized frame warped onto this one
    (``target``), over the pixels where the optical flow is reliable (``mask``, 0 or 1); the
    mean is over every pixel and channel (their 1/D), so occluded pixels are free."""

    target: torch.Tensor  # [1, 3, H, W]
    mask: torch.Tensor  # [1, 1, H, W]
    weight: float

    def at(self, size: tuple[int, int], device: torch.device, grey: bool = False) -> Temporal:
        """The same term for a pyramid level of ``size`` (a mask resized stays 1 only where
        every pixel it covers was reliable); ``grey``: the luminance only (preserve_color)."""
        target = resize(self.target.to(device).float(), size)
        if grey:
            target = color.grey(color.luminance(target))
        mask = resize(self.mask.to(device).float(), size)
        return Temporal(target, (mask > 0.999).float(), self.weight)

    def loss(self, image: torch.Tensor) -> torch.Tensor:
        return self.weight * (self.mask * (image - self.target) ** 2).mean()


@dataclass
class Objective:
    """The full loss at one scale: content + style term + TV + range penalty."""

    encoder: VGGEncoder
    content_targets: dict[str, torch.Tensor]
    content_weights: dict[str, float]
    content_weight: float
    style: StyleTerm
    tv_weight: float
    range_weight: float
    precision: str
    device: torch.device
    laplacian_weight: float = 0.0
    content_laplacian: torch.Tensor | None = None
    temporal: Temporal | None = None  # a video frame's previous stylized frame, at this level's size

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.content_targets, *self.style.layers)))

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(self.precision, self.device):
            feats = self.encoder(image.contiguous(memory_format=torch.channels_last), self.layers)
        terms: dict[str, torch.Tensor] = {}
        for name, target in self.content_targets.items():
            terms[f"content.{name}"] = (
                self.content_weight * self.content_weights[name] * content_loss(feats[name], target)
            )
        terms.update(self.style(feats))
        if self.tv_weight:
            terms["tv"] = self.tv_weight * total_variation(image)
        if self.laplacian_weight and self.content_laplacian is not None:
            terms["laplacian"] = self.laplacian_weight * laplacian_loss(image, self.content_laplacian)
        if self.temporal is not None:
            terms["temporal"] = self.temporal.loss(image)
        # Keeps L-BFGS from wandering far outside the displayable range; zero inside it. Weighted
        # like the rest of the loss so that scaling every weight changes nothing but the numbers.
        terms["range"] = self.range_weight * range_penalty(image)
        terms["total"] = sum(terms.values())  # type: ignore[assignment]
        return terms


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


def run_image_optimization(
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    params: ImageOptimParams,
    style_term_factory: StyleTermFactory,
    style_layers: Sequence[str],
    *,
    style_weights: Sequence[float] | None = None,
    init_image: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callback | None = None,
    cache: MutableMapping | None = None,
    regions: Sequence[Region] | None = None,
    regional_factory: Callable[[StyleTermFactory, Sequence[Region]], StyleTermFactory] | None = None,
    temporal: Temporal | None = None,
) -> StylizeResult:
    """Coarse-to-fine image optimisation; see the module docstring.

    ``temporal``: a video frame's temporal term (``Temporal``, at the content's size): the
    previous stylized frame warped onto this one, added to every level's objective.

    ``regions``: spatial control (``regions.py``): each region of the content takes its own style
    (or none); the style term is computed per region, by ``regional`` (each region's positions
    selected) or by the algorithm's own ``regional_factory`` (a patch term keeps the layout).

    ``cache``: a dict the caller keeps between runs; style targets are memoised in it (keyed by
    the style images' values), so a worker running many jobs on one style computes them once.
    """
    start = time.perf_counter()
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
        style_term_factory = (regional_factory or regional)(style_term_factory, regions)
    precision = resolve_precision(params.precision, device)
    encoder = get_encoder(
        [*params.content_layers, *style_layers],
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
    level = _LevelObjectives(encoder, params, style_term_factory, weights, precision, device, cache, temporal)
    x = start_image
    tiled: list[str] = []
    for scale, (size, n, core) in enumerate(zip(sizes, steps, cores, strict=True)):
        factor = size[0] / content.shape[-2]
        scaled_styles = [
            _style_at_scale(s, params.style_scale, max(content.shape[-2:]), factor) for s in styles
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
                    level: _LevelObjectives) -> tuple[torch.Tensor, str]:  # fmt: skip
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


@dataclass
class _LevelObjectives:
    """Builds the objective of a pyramid level (or of a tile of one) from its content."""

    encoder: VGGEncoder
    params: ImageOptimParams
    style_term_factory: StyleTermFactory
    weights: Sequence[float]
    precision: str
    device: torch.device
    cache: MutableMapping
    temporal: Temporal | None = None

    def build(self, content: torch.Tensor, scaled_styles: Sequence[torch.Tensor], level: float) -> Objective:
        """The objective of a level whose pixels are ``level`` times the output's (or a tile of it)."""
        p = self.params
        return Objective(
            encoder=self.encoder,
            content_targets=(
                encode_targets(self.encoder, content, p.content_layers, self.precision)
                if p.content_weight
                else {}
            ),
            content_weights=layer_weights(p.content_layers, p.content_layer_weights),
            content_weight=p.content_weight,
            style=self.style_term_factory(
                TermInputs(
                    self.encoder, content, scaled_styles, self.weights, self.precision, self.cache, level
                )
            ),
            tv_weight=p.tv_weight,
            range_weight=p.content_weight + p.style_weight,
            precision=self.precision,
            device=self.device,
            laplacian_weight=p.laplacian_weight,
            content_laplacian=laplacian(content) if p.laplacian_weight else None,
            temporal=(
                self.temporal.at(tuple(content.shape[-2:]), self.device, grey=p.preserve_color)
                if self.temporal is not None
                else None
            ),
        )

    def measure(self, image: torch.Tensor, content: torch.Tensor, styles: Sequence[torch.Tensor],
                style_scale: float | None, budget: int) -> dict[str, float]:  # fmt: skip
        """The objective's terms for the whole ``image`` at ``LOSS_SIDE`` px or, when one forward
        pass at that size does not fit ``budget``, the largest halving that does."""
        side = min(LOSS_SIDE, max(image.shape[-2:]))
        while side > MIN_SIDE and FORWARD_BYTES_PER_PIXEL * math.prod(_fit(image, side)) > budget:
            side //= 2
        size = _fit(image, side)
        factor = size[0] / content.shape[-2]
        scaled = [_style_at_scale(s, style_scale, max(content.shape[-2:]), factor) for s in styles]
        objective = self.build(resize(content, size), scaled, 1.0)  # the losses of the output's own level
        with torch.no_grad():
            return {k: float(v) for k, v in objective(resize(image, size)).items()}


def _fit(image: torch.Tensor, side: int) -> tuple[int, int]:
    """``image``'s size with its long side at ``side`` (never larger than it is)."""
    h, w = image.shape[-2:]
    f = min(1.0, side / max(h, w))
    return max(MIN_SIDE, round(h * f)), max(MIN_SIDE, round(w * f))


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
        return run_image_optimization(
            content,
            styles,
            loop_params_of(params),
            style_term_factory_for(params),
            style_layers_of(params),
            style_weights=style_weights,
            init_image=init_image,
            seed=seed,
            device=device,
            callback=callback,
            cache=cache,
            regions=regions,
            regional_factory=regional_factory_for(params) if regional_factory_for else None,
            temporal=temporal,
        )

    stylize.spatial_control = spatial_control  # type: ignore[attr-defined]
    stylize.temporal = True  # type: ignore[attr-defined]  (takes a video frame's temporal term)
    return stylize


def _style_at_scale(
    style: torch.Tensor, style_scale: float | None, out_long: int, factor: float
) -> torch.Tensor:
    """The style image as used at one pyramid level (``factor`` = level size / final size)."""
    long_side = max(style.shape[-2:]) if style_scale is None else style_scale * out_long
    return resize_long_side(style, max(MIN_SIDE, round(long_side * factor)))

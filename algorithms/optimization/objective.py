"""What the optimisation loop minimises: the style-term protocol an algorithm implements
(``StyleTerm``, built from ``TermInputs`` by its factory), the objective of one pyramid level
(content, style, total variation, the temporal term of video, the range penalty) and the
objectives of every level of a run, which also measure a finished result
(``LevelObjectives.measure``). The loop that runs the optimiser over them is ``loop.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from ..names import MIN_SIDE
from ..shared import color
from ..shared.device import autocast
from ..shared.losses import content_loss, laplacian, laplacian_loss, range_penalty, total_variation
from ..shared.parameters import ImageOptimParams, layer_weights
from ..shared.regions import MaskedEncoder, Region, RegionTerms, area_shares, with_mask
from ..shared.sizing import MEASURE_SIDE, fitted_size, resize, resize_long_side
from ..shared.vgg import VGGEncoder, encode_targets

FORWARD_BYTES_PER_PIXEL = 1000  # one forward pass without gradients (relu1_1 and its neighbour)


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


@dataclass
class LevelObjectives:
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
        """The objective's terms for the whole ``image`` at ``MEASURE_SIDE`` px or, when one forward
        pass at that size does not fit ``budget``, the largest halving that does."""
        side = min(MEASURE_SIDE, max(image.shape[-2:]))
        while (
            side > MIN_SIDE
            and FORWARD_BYTES_PER_PIXEL
            * math.prod(fitted_size(*image.shape[-2:], side, enlarge=False, min_side=MIN_SIDE))
            > budget
        ):
            side //= 2
        size = fitted_size(*image.shape[-2:], side, enlarge=False, min_side=MIN_SIDE)
        factor = size[0] / content.shape[-2]
        scaled = [style_at_scale(s, style_scale, max(content.shape[-2:]), factor) for s in styles]
        objective = self.build(resize(content, size), scaled, 1.0)  # the losses of the output's own level
        with torch.no_grad():
            return {k: float(v) for k, v in objective(resize(image, size)).items()}


def style_at_scale(
    style: torch.Tensor, style_scale: float | None, out_long: int, factor: float
) -> torch.Tensor:
    """The style image as used at one pyramid level (``factor`` = level size / final size)."""
    long_side = max(style.shape[-2:]) if style_scale is None else style_scale * out_long
    return resize_long_side(style, max(MIN_SIDE, round(long_side * factor)))

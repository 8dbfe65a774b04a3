"""Spatial control: a different style, or none, on each region of the photo (Gatys, Ecker,
Bethge, Hertzmann & Shechtman, "Controlling Perceptual Factors in Neural Style Transfer",
CVPR 2017, section 4; Champandard, "Semantic Style Transfer and Turning Two-Bit Doodles into
Fine Artworks", 2016).

A ``Region`` is a mask on the content image, the style it takes (an index into the styles, or
None: the photo keeps its own look there) and optionally a mask on that style image (the part of
the painting to draw from). For the optimisation algorithms every statistic the style term
matches is computed over the region's positions only, at each layer:

* the mask is brought to the layer's size by area averaging and its positions are those where it
  is at least one half (the paper's "guidance channels" downsampled; with hard masks the guided
  Gram matrix of the paper is the Gram matrix of the region's feature vectors, divided here by
  their number as every Gram matrix of ``losses.py`` is by H*W);
* the style's targets come from the style image's features at its mask's positions (all of them
  without a mask);
* each region's terms are weighted by its share of the photo's pixels, so that the pressure per
  pixel is what one style on the whole photo would give, and one region covering the photo is
  the plain algorithm exactly.

A region without a style takes the photo itself (in that region) as its style: its statistics are
held at the photo's own, which keeps it close to the photo for every algorithm, including those
whose content term is their own (``adain_optimize``).

Selecting positions (instead of multiplying the features by the mask) lets every existing term
(Gram, mean / std, histogram, AdaIN target) run unchanged on the region's features, shaped
[1, C, n, 1]. Patch-based terms (MRF, style swap) need the spatial layout and are not covered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Region:
    mask: torch.Tensor  # [1, 1, H, W] in [0, 1], at the content image's size
    style: int | None  # index into the styles; None: the photo keeps its own look here
    style_mask: torch.Tensor | None = None  # [1, 1, h, w] on that style image; None: all of it
    name: str = ""  # how messages call it (the colour that marks it)


def check_regions(regions: Sequence[Region], content_size: Sequence[int], num_styles: int) -> None:
    """``ValueError`` naming the first region that cannot be used with this content and styles."""
    if not regions:
        raise ValueError("spatial control needs at least one region")
    if all(r.style is None for r in regions):
        raise ValueError("every region keeps the photo: no region names a style")
    for i, r in enumerate(regions):
        what = f"region {r.name or i}"
        if r.mask.dim() != 4 or r.mask.shape[:2] != (1, 1):
            raise ValueError(f"{what}: its mask must be [1, 1, H, W], not {list(r.mask.shape)}")
        if tuple(r.mask.shape[-2:]) != tuple(content_size):
            raise ValueError(
                f"{what}: its mask is {r.mask.shape[-1]}x{r.mask.shape[-2]} px, the content "
                f"{content_size[-1]}x{content_size[-2]}"
            )
        if r.style is not None and not 0 <= r.style < num_styles:
            raise ValueError(f"{what}: style {r.style} of {num_styles}")
        if r.style is None and r.style_mask is not None:
            raise ValueError(f"{what}: keeps the photo, so it cannot have a style mask")
        if float(r.mask.max()) < 0.5:
            raise ValueError(f"{what}: its mask marks no pixel of the content")
        if r.style_mask is not None and float(r.style_mask.max()) < 0.5:
            raise ValueError(f"{what}: its style mask marks no pixel of the style image")


def area_shares(regions: Sequence[Region]) -> list[float]:
    """Each region's share of the photo's pixels (its mask's mean)."""
    return [float(r.mask.float().mean()) for r in regions]


def positions(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The flat indices of the positions of an [h, w] feature map that ``mask`` [1, 1, H, W]
    covers: area-averaged to the map's size, at least one half. A region too small for the map
    keeps its one strongest position (a coarse layer still sees it)."""
    m = F.interpolate(mask.float(), size=tuple(size), mode="area").reshape(-1)
    idx = torch.nonzero(m >= 0.5).reshape(-1)
    return idx if idx.numel() else m.argmax().reshape(1)


def partition(regions, size: Sequence[int]) -> torch.Tensor:
    """The region of every position of an [h, w] feature map ([h * w] indices into ``regions``):
    the one whose mask, area-averaged to the map's size, covers it most (regions meet without
    gaps or overlaps at every level)."""
    cover = torch.cat([F.interpolate(r.mask.float(), size=tuple(size), mode="area") for r in regions], dim=1)
    return cover.reshape(len(regions), -1).argmax(0)


def regional_style_statistics(
    kind: str,
    reduce,
    encoder,
    styles,
    regions: Sequence[Region],
    layers: Sequence[str],
    precision: str,
    cache,
) -> list[dict | None]:
    """Per region, ``reduce`` (a statistic of [1, C, n, 1] features: mean / std, moments) of its
    style's features at every layer, over the style mask's positions (all of the style image
    without one), memoised by the images' values under ``kind``; None for a region that keeps
    the photo (the feed-forward algorithms' spatial control: ``feedforward/adain/regions``, ``feedforward/wct/regions``)."""
    from .memo import memo, style_key
    from .vgg import encode_targets

    out: list[dict | None] = []
    for r in regions:
        if r.style is None:
            out.append(None)
            continue
        style = styles[r.style]

        def compute(style=style, r=r) -> dict:
            feats = encode_targets(encoder, style, list(layers), precision)
            if r.style_mask is None:
                return {layer: reduce(f) for layer, f in feats.items()}
            return {
                layer: reduce(select(f, positions(r.style_mask, f.shape[-2:]))) for layer, f in feats.items()
            }

        masks = () if r.style_mask is None else (r.style_mask,)
        out.append(
            memo(cache, style_key(kind, encoder, [style, *masks], precision, "max", tuple(layers)), compute)
        )
    return out


def select(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The feature vectors of [B, C, H, W] at the flat positions ``index``: [B, C, n, 1]."""
    b, c = features.shape[:2]
    return features.reshape(b, c, -1).index_select(2, index.to(features.device)).unsqueeze(-1)


def with_mask(image: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``image`` [1, 3, H, W] with ``mask`` (resized to it) as a fourth channel, which
    ``MaskedEncoder`` reads as the positions to keep; unchanged without a mask."""
    if mask is None:
        return image
    m = F.interpolate(mask.float().to(image.device), size=tuple(image.shape[-2:]), mode="area")
    return torch.cat([image, m.to(image.dtype)], dim=1)


@dataclass
class MaskedEncoder:
    """The encoder, for images that carry their region as a fourth channel (``with_mask``):
    their features at the region's positions only ([1, C, n, 1]). Images of three channels go
    through whole. A term's target builder takes it in place of the encoder unchanged; its
    ``source`` tells the memo of style targets that these targets are of a region."""

    encoder: torch.nn.Module

    @property
    def source(self) -> str:
        return f"{self.encoder.source}|region"

    def __getattr__(self, name: str):
        return getattr(self.__dict__["encoder"], name)

    def __call__(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        if image.shape[1] != 4:
            return self.encoder(image, layers)
        mask = image[:, 3:].float()
        feats = self.encoder(image[:, :3].contiguous(memory_format=torch.channels_last), layers)
        return {k: select(v, positions(mask, v.shape[-2:])) for k, v in feats.items()}


@dataclass
class RegionTerms:
    """The style terms of every region, summed name by name, each weighted by its region's share
    of the photo; each sees the output's features at its region's positions only."""

    terms: Sequence  # one style term per region (optimize.StyleTerm)
    masks: Sequence[torch.Tensor]  # each region's content mask at this level's size
    shares: Sequence[float]
    _index: dict[tuple[int, tuple[int, int]], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for t in self.terms for name in t.layers))

    def _positions(self, r: int, size: tuple[int, int]) -> torch.Tensor:
        if (r, size) not in self._index:
            self._index[(r, size)] = positions(self.masks[r], size)
        return self._index[(r, size)]

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for r, (term, share) in enumerate(zip(self.terms, self.shares, strict=True)):
            own = {
                n: select(features[n], self._positions(r, tuple(features[n].shape[-2:]))) for n in term.layers
            }
            for name, value in term(own).items():
                out[name] = out[name] + share * value if name in out else share * value
        return out


LABEL_TOLERANCE = 48.0  # a pixel farther than this (RGB distance, 0-255) from every named colour is unnamed
UNNAMED_LIMIT = 0.01  # more than this share of unnamed pixels: the mask is not the one the regions describe


def colour_mask(labels: torch.Tensor, colour: tuple[int, int, int]) -> torch.Tensor:
    """The pixels of a label image [1, 3, H, W] in [0, 1] near ``colour`` (0-255): [1, 1, H, W]."""
    rgb = labels.float() * 255
    target = torch.tensor(colour, dtype=torch.float32).reshape(1, 3, 1, 1)
    return ((rgb - target).pow(2).sum(dim=1, keepdim=True).sqrt() <= LABEL_TOLERANCE).float()


def label_masks(labels: torch.Tensor, colours: Sequence[tuple[int, int, int]]) -> list[torch.Tensor]:
    """One mask [1, 1, H, W] per colour of a label image [1, 3, H, W] in [0, 1]: each pixel goes
    to the nearest colour (so the soft edges of a brush or JPEG noise are fine). ``ValueError``
    when more than 1 % of the pixels are near none of them, naming the commonest such colours."""
    rgb = (labels[0].float() * 255).round().reshape(3, -1).T  # [N, 3]
    palette = torch.tensor(colours, dtype=torch.float32)
    distance = torch.cdist(rgb, palette)  # [N, K]
    nearest = distance.argmin(dim=1)
    unnamed = distance.min(dim=1).values > LABEL_TOLERANCE
    if float(unnamed.float().mean()) > UNNAMED_LIMIT:
        found, counts = torch.unique(rgb[unnamed].to(torch.int64), dim=0, return_counts=True)
        top = [
            f"#{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in found[counts.argsort(descending=True)[:3]]
        ]
        raise ValueError(
            f"{float(unnamed.float().mean()):.0%} of its pixels are none of the regions' colours "
            f"({', '.join(f'#{r:02x}{g:02x}{b:02x}' for r, g, b in colours)}); the commonest: {', '.join(top)}"
        )
    h, w = labels.shape[-2:]
    return [(nearest == k).float().reshape(1, 1, h, w) for k in range(len(colours))]

"""Li & Wand, "Combining Markov Random Fields and Convolutional Neural Networks for Image
Synthesis" (CVPR 2016, CNNMRF): a style loss on local patches of VGG-19 feature maps.

Every 3x3 patch of the output's feature map (taken with the *synthesis stride*, 2) is matched to
the patch of the style's feature map (taken with the *sample stride*, 2) with the highest
normalised cross-correlation, and the loss is the squared distance to that match; the match is
a target, not differentiated. Matching is a convolution of the output's features with the
normalised style patches as filters, run over the patch bank in chunks so that its memory stays
bounded whatever the bank's size. As CNNMRF: relu3_1 and relu4_1, content relu4_2, start from the
content, three resolutions, the style image scaled to the output's size at every level
(``style_scale`` 1), optional rotated (pi/24 apart) and scaled (x1.05 apart) copies of the style
for a richer bank ("2n + 1" copies each, as CNNMRF's ``num_rotation`` / ``num_scale``).

The balance between the levels, as CNNMRF has it. CNNMRF's MRF gradient is a fixed weight (1e-4)
times each feature's distance to its matched patches, summed over the positions, while its content
loss is a mean: the MRF term weighs four times less, relative to the content, at each coarser
level. The coarse levels therefore set the layout from the photo and the fine levels bring in the
style's local structure. A loss that is a mean at every level (stylegrid's convention for its
other terms) would give the 64 px level the full style weight; there a 3x3 patch of
relu4_1 spans most of the picture, so whole objects of the painting would be pasted into the layout (a
painted eye across a face, stars over a torso) and the finer levels would only refine them (docs/mrf.md
shows it). Here each
level's MRF term is multiplied by its pixels relative to the output's (``TermInputs.level``): the
finest level has ``style_weight``, the one below a quarter of it. Where this departs from CNNMRF:
the finest level has the same balance at any output size (CNNMRF's grows with the pixels, so its
weights hold at its 384 px only).

The balance between the layers: CNNMRF weighs every feature equally (1e-4 for relu3_1 and relu4_1
alike); in relative units that gives relu4_1 about 5.5 times relu3_1's weight (its activations
are about ten times larger in mean square on half as many positions: 1.02 : 5.59 on CNNMRF's
own portrait x Picasso pair at 384 px, ``docs/mrf.md``), hence the default layer weights.

Matching, where this departs from CNNMRF: the nearest patches are found once every
``match_every`` steps and held fixed in between, as in the alternating (EM-like) texture
optimisation of Kwatra et al. (2005), instead of at every evaluation of the loss. With matches
that change inside a line search the loss is not smooth and L-BFGS backtracks; with held matches
each round minimises a smooth quadratic, and re-matching between rounds lets the patches move on.
``match_every=0`` matches at every evaluation, as CNNMRF does.

Normalisation, as for every term here (``losses.py``): each layer's loss is the mean squared
distance of a patch to its match divided by the mean squared norm of the bank's patches, so a
value of 1 means "as far as zero activations would be". Several style images pool their patches
into one bank (NN matching has nothing to blend); a style with weight 0 is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..base import Algorithm
from ..shared.memo import memo, style_key
from ..shared.parameters import (
    ImageOptimParams,
    check_layer_weights,
    check_layers,
    check_non_negative,
    check_positive,
    layer_weights,
    param,
)
from ..shared.patches import centre_index, extract_patches, nearest_patches, normalise_rows
from ..shared.regions import Region, area_shares
from ..shared.vgg import VGGEncoder, encode_targets
from .loop import image_optimization_stylize
from .objective import TermInputs

ROTATION_STEP = math.pi / 24  # CNNMRF's spacing of the rotated copies
SCALE_STEP = 1.05  # and of the scaled copies
MRF_COARSEST = 64  # the automatic pyramid keeps its coarsest long side >= this


@dataclass(frozen=True, kw_only=True)
class MRFParams(ImageOptimParams):
    style_weight: float = param(
        2.0, "weight of the MRF (patch) style loss at the finest level (a quarter of it one level coarser)"
    )
    style_scale: float | None = param(
        1.0, "style long side relative to the output's (CNNMRF: 1, the output's size); None: as loaded"
    )
    scales: int | None = param(
        None, "coarse-to-fine levels; default 3 as CNNMRF, fewer to keep the coarsest >= 64 px"
    )
    steps: int = param(200, "optimisation steps in total, split equally over the scales")
    mrf_layers: tuple[str, ...] = param(("relu3_1", "relu4_1"), "VGG-19 layers whose patches are matched")
    mrf_layer_weights: tuple[float, ...] | None = param(
        (0.15, 0.85), "one per MRF layer (CNNMRF's equal weight per feature is about 1 : 5.5); None: equal"
    )
    patch_size: int = param(3, "side of the square feature patches")
    sample_stride: int = param(2, "stride between the style's patches (the bank)")
    synthesis_stride: int = param(2, "stride between the output's patches")
    style_rotations: int = param(0, "rotated style copies each way, pi/24 apart (2n + 1 in the bank)")
    style_rescales: int = param(0, "scaled style copies each way, x1.05 apart (2n + 1 in the bank)")
    match_every: int = param(
        10, "steps between re-matchings of the patches, held fixed in between; 0 = at every evaluation"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers(self, "mrf_layers")
        check_layer_weights(self, "mrf_layers", "mrf_layer_weights")
        check_positive(self, "patch_size", "sample_stride", "synthesis_stride")
        if self.style_rotations < 0 or self.style_rescales < 0:
            raise ValueError("style_rotations and style_rescales must be >= 0")
        check_non_negative(self, "match_every")

    def default_scales(self, long_side: int) -> int:
        """Three resolutions as CNNMRF, fewer when the coarsest would be under MRF_COARSEST px."""
        levels = 1
        while levels < 3 and long_side / 2**levels >= MRF_COARSEST:
            levels += 1
        return levels


# --- pure functions --------------------------------------------------------------------------------


def mrf_loss(
    features: torch.Tensor,
    bank: torch.Tensor,
    filters: torch.Tensor,
    bank_sq_norm: float,
    patch_size: int,
    stride: int,
    index: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared distance of the output's patches to their best matches in ``bank`` [N, K],
    relative to the bank's mean squared patch norm; no gradient through the matching.
    ``index``: matches found earlier (``nearest_patches``) to use instead of matching now;
    ``keep``: only these patches count (a region's, ``centre_index``)."""
    if index is None:
        with torch.no_grad():
            index = nearest_patches(features.detach().to(filters.dtype), filters, stride)
    patches = extract_patches(features, patch_size, stride).float()
    if keep is not None:
        patches, index = patches[keep], index[keep]
    return (patches - bank[index]).pow(2).sum(dim=1).mean() / (bank_sq_norm + 1e-8)


def style_variants(style: torch.Tensor, rotations: int, rescales: int) -> list[torch.Tensor]:
    """The style and its rotated (+-n x pi/24, reflected at the borders) and scaled (x1.05^+-n)
    copies, as CNNMRF builds its patch bank."""
    out = [style]
    for i in range(1, rotations + 1):
        out += [rotate(style, sign * i * ROTATION_STEP) for sign in (-1, 1)]
    h, w = style.shape[-2:]
    for i in range(1, rescales + 1):
        for f in (SCALE_STEP**-i, SCALE_STEP**i):
            size = (max(1, round(h * f)), max(1, round(w * f)))
            out.append(F.interpolate(style, size=size, mode="bicubic", align_corners=False, antialias=True))
    return out


def rotate(image: torch.Tensor, angle: float) -> torch.Tensor:
    """``image`` rotated by ``angle`` radians about its centre, same size, borders reflected."""
    c, s = math.cos(angle), math.sin(angle)
    h, w = image.shape[-2:]
    # affine_grid works in [-1, 1] coordinates; correct for the aspect ratio
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta[None], list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# --- the style term --------------------------------------------------------------------------------


@dataclass
class PatchBank:
    patches: torch.Tensor  # [N, C*k*k] fp32: the match targets
    filters: torch.Tensor  # [N, C, k, k] unit norm, in the encoder's dtype: the matching filters
    sq_norm: float  # mean squared norm of the patches


def build_banks(
    encoder: VGGEncoder,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: MRFParams,
    precision: str,
    masks: Sequence[torch.Tensor | None] | None = None,
) -> dict[str, PatchBank]:
    """The patch banks of every MRF layer; ``masks[i]`` [1, 1, H, W] keeps only style ``i``'s
    patches centred in it (a region's style mask; rotated and scaled with its style)."""
    k = params.patch_size
    per_layer: dict[str, list[torch.Tensor]] = {name: [] for name in params.mrf_layers}
    for style, w, mask in zip(styles, weights, masks or [None] * len(styles), strict=True):
        if w <= 0:
            continue
        both = style if mask is None else torch.cat([style, mask.to(style)], dim=1)
        for variant in style_variants(both, params.style_rotations, params.style_rescales):
            feats = encode_targets(encoder, variant[:, :3], params.mrf_layers, precision)
            for name, f in feats.items():
                if min(f.shape[-2:]) >= k:
                    patches = extract_patches(f, k, params.sample_stride)
                    if mask is not None:
                        patches = patches[centre_index(variant[:, 3:], f.shape[-2:], k, params.sample_stride)]
                    per_layer[name].append(patches)
    banks = {}
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    for name, parts in per_layer.items():
        if not parts:
            raise ValueError(
                f"mrf: the style images are too small for {k}x{k} patches at {name} at this scale "
                f"(style {tuple(styles[0].shape[-2:])} px); use larger style images or fewer scales"
            )
        patches = torch.cat(parts)
        c = patches.shape[1] // (k * k)
        filters = normalise_rows(patches).reshape(-1, c, k, k).to(dtype)
        filters = filters.contiguous(memory_format=torch.channels_last)
        banks[name] = PatchBank(patches, filters, float(patches.pow(2).sum(dim=1).mean()))
    return banks


@dataclass
class MRFStyleTerm:
    banks: Mapping[str, PatchBank]
    weights: Mapping[str, float]
    style_weight: float
    patch_size: int
    stride: int
    refresh_every: int = 0  # steps between matchings; 0: match at every evaluation
    level: float = 1.0  # the level's pixels / the output's: the weight's factor (module docstring)
    region: torch.Tensor | None = None  # [1, 1, H, W] at the level's size: only patches centred in it count
    matches: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _keep: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.banks)

    def refresh(self, features: Mapping[str, torch.Tensor]) -> None:
        """Match the patches of the image these features come from, and keep the matches (the
        loop calls this every ``refresh_every`` steps)."""
        with torch.no_grad():
            for name, bank in self.banks.items():
                f = self._checked(name, features[name])
                self.matches[name] = nearest_patches(
                    f.detach().to(bank.filters.dtype), bank.filters, self.stride
                )

    def _checked(self, name: str, f: torch.Tensor) -> torch.Tensor:
        if min(f.shape[-2:]) < self.patch_size:
            raise ValueError(
                f"mrf: the output's {name} map is {tuple(f.shape[-2:])}, smaller than the "
                f"{self.patch_size}x{self.patch_size} patches; use a larger size or fewer scales"
            )
        return f

    def keep(self, size: tuple[int, int]) -> torch.Tensor | None:
        """The region's patches of a map of ``size`` (None: all of them)."""
        if self.region is None:
            return None
        if size not in self._keep:
            self._keep[size] = centre_index(self.region, size, self.patch_size, self.stride)
        return self._keep[size]

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = {}
        for name, bank in self.banks.items():
            f = self._checked(name, features[name])
            loss = mrf_loss(
                f,
                bank.patches,
                bank.filters,
                bank.sq_norm,
                self.patch_size,
                self.stride,
                self.matches.get(name),
                self.keep(tuple(f.shape[-2:])),
            )
            terms[f"style.mrf.{name}"] = self.style_weight * self.level * self.weights[name] * loss
        return terms


def mrf_term_factory(params: MRFParams):
    """The MRF style term for ``params``; its patch banks memoised by the style images."""
    lw = layer_weights(params.mrf_layers, params.mrf_layer_weights)

    def factory(t: TermInputs):
        key = style_key(
            "mrf", t.encoder, t.styles, t.precision, params.pooling,
            tuple(w > 0 for w in t.weights), params.mrf_layers, params.patch_size, params.sample_stride,
            params.style_rotations, params.style_rescales,
        )  # fmt: skip
        banks = memo(t.memo, key, lambda: build_banks(t.encoder, t.styles, t.weights, params, t.precision))
        return MRFStyleTerm(
            banks, lw, params.style_weight, params.patch_size, params.synthesis_stride, params.match_every,
            t.level,
        )  # fmt: skip

    return factory


# --- spatial control -------------------------------------------------------------------------------
# Spatial control for MRF (``mrf.stylize(..., regions=)``): each region's output patches matched
# only within its own style's patches (Champandard's semantic style transfer, 2016, whose
# "neural patches" are CNNMRF's, with the matching kept to the region instead of steered by
# extra map channels).
#
# A patch term needs the map's layout, so unlike the statistics of ``regions.RegionTerms`` the
# features are not cut to the region's positions: at every level and layer each region's term
# sees the whole map, counts only the output patches centred in the region (``patches.centre_index``)
# and matches them against a bank of its style's patches, only those centred in the style mask
# when there is one. A region that keeps the photo takes the photo itself, within the region, as
# its bank: its patches are pulled back to the photo's own. Each region's term is weighted by
# its share of the photo, so one region over the whole photo is the plain term.


@dataclass
class RegionalMRF:
    """Every region's MRF term, summed name by name, each weighted by its region's share."""

    terms: Sequence[MRFStyleTerm]
    shares: Sequence[float]
    refresh_every: int

    @property
    def layers(self) -> tuple[str, ...]:
        return self.terms[0].layers

    def refresh(self, features: Mapping[str, torch.Tensor]) -> None:
        for term in self.terms:
            term.refresh(features)

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for term, share in zip(self.terms, self.shares, strict=True):
            for name, value in term(features).items():
                out[name] = out[name] + share * value if name in out else share * value
        return out


def regional_mrf(params: MRFParams):
    """The ``regional_factory`` of MRF's ``loop.Method``."""
    weights = layer_weights(params.mrf_layers, params.mrf_layer_weights)

    def regional(_plain, regions: Sequence[Region]):
        shares = area_shares(regions)

        def build(t: TermInputs) -> RegionalMRF:
            device = t.content.device
            terms = []
            for r in regions:
                mask = F.interpolate(r.mask.float().to(device), size=tuple(t.content.shape[-2:]), mode="area")
                if r.style is None:  # the photo, within the region, is the bank
                    style, style_mask = t.content, mask
                else:
                    style = t.styles[r.style]
                    style_mask = r.style_mask
                    if style_mask is not None:
                        style_mask = F.interpolate(style_mask.float().to(device), size=tuple(style.shape[-2:]),
                                                   mode="area")  # fmt: skip
                images = [style] if style_mask is None else [style, style_mask]
                key = style_key(
                    "mrf-region", t.encoder, images, t.precision, params.pooling, params.mrf_layers,
                    params.patch_size, params.sample_stride, params.style_rotations, params.style_rescales,
                )  # fmt: skip

                def banks(style=style, style_mask=style_mask):
                    return build_banks(t.encoder, [style], [1.0], params, t.precision, [style_mask])

                terms.append(
                    MRFStyleTerm(
                        memo(t.memo, key, banks),
                        weights,
                        params.style_weight,
                        params.patch_size,
                        params.synthesis_stride,
                        params.match_every,
                        t.level,
                        region=mask,
                    )  # fmt: skip
                )
            return RegionalMRF(terms, shares, params.match_every)

        return build

    return regional


# spatial control: each region's patches matched within its own style's (regional_mrf)
stylize = image_optimization_stylize(
    MRFParams, mrf_term_factory, lambda p: p.mrf_layers, regional_factory_for=regional_mrf
)


ALGORITHM = Algorithm(
    name="mrf",
    params_type=MRFParams,
    stylize=stylize,
    summary="patch nearest-neighbour (MRF) style loss on feature maps, image optimisation",
    citation="Li & Wand, Combining Markov Random Fields and Convolutional Neural Networks for Image "
    "Synthesis, CVPR 2016",
)

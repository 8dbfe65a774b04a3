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
style's local structure. A loss that is a mean at every level (stylegrid's convention, and this
module's until it was measured) gives the 64 px level the full style weight; there a 3x3 patch of
relu4_1 spans most of the picture, so whole objects of the painting were pasted into the layout (a
painted eye across a face, stars over a torso) and the finer levels only refined them. Here each
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

from .base import Algorithm
from .memo import memo, style_key
from .optimize import TermInputs, image_optimization_stylize
from .parameters import (
    ImageOptimParams,
    check_layer_weights,
    check_layers,
    check_non_negative,
    check_positive,
    layer_weights,
    param,
)
from .vgg import VGGEncoder, encode_targets

ROTATION_STEP = math.pi / 24  # CNNMRF's spacing of the rotated copies
SCALE_STEP = 1.05  # and of the scaled copies
MRF_COARSEST = 64  # the automatic pyramid keeps its coarsest long side >= this
MATCH_CHUNK_ELEMENTS = 1 << 24  # scores held at once while matching: 64 MB in fp32


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


def extract_patches(features: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """[1, C, H, W] -> [N, C*size*size], N patches in row-major order of their top-left corner."""
    return F.unfold(features, size, stride=stride)[0].t()


def centre_index(mask: torch.Tensor, size: Sequence[int], k: int, stride: int) -> torch.Tensor:
    """The ``extract_patches`` indices of the k x k patches (at ``stride``) of an [h, w] map whose
    centres lie in ``mask`` [1, 1, H, W] (area-averaged to [h, w], at least one half); the patch
    with the most of the mask at its centre when none does (a small region at a coarse layer)."""
    h, w = size
    m = F.interpolate(mask.float(), size=(h, w), mode="area")[0, 0]
    rows = torch.arange(0, h - k + 1, stride, device=m.device) + k // 2
    cols = torch.arange(0, w - k + 1, stride, device=m.device) + k // 2
    at_centres = m[rows][:, cols].reshape(-1)
    index = torch.nonzero(at_centres >= 0.5).reshape(-1)
    return index if index.numel() else at_centres.argmax().reshape(1)


def normalise_rows(patches: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return patches / (patches.float().norm(dim=1, keepdim=True) + eps).to(patches.dtype)


def nearest_patches(
    features: torch.Tensor, filters: torch.Tensor, stride: int, chunk_elements: int = MATCH_CHUNK_ELEMENTS
) -> torch.Tensor:
    """Index of the best-matching filter for every output patch, in ``extract_patches`` order.

    ``filters`` [N, C, k, k] are the unit-norm style patches: the convolution of ``features``
    [1, C, H, W] with them is each output patch's cross-correlation with each style patch, up to
    the output patch's own norm, which does not change which style patch is best. The filters
    run in chunks, keeping a running maximum, so that the scores held at once stay under
    ``chunk_elements`` whatever the size of the bank.
    """
    k = filters.shape[-1]
    h = (features.shape[-2] - k) // stride + 1
    w = (features.shape[-1] - k) // stride + 1
    chunk = max(1, chunk_elements // (h * w))
    best = torch.full((h * w,), -math.inf, device=features.device)
    index = torch.zeros(h * w, dtype=torch.long, device=features.device)
    for start in range(0, filters.shape[0], chunk):
        scores = F.conv2d(features, filters[start : start + chunk], stride=stride)[0].flatten(1).float()
        value, arg = scores.max(dim=0)
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + start, index)
    return index


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


def _regional(params: MRFParams):
    from .mrf_regions import regional_mrf

    return regional_mrf(params)


# spatial control: each region's patches matched within its own style's (mrf_regions.py)
stylize = image_optimization_stylize(
    MRFParams, mrf_term_factory, lambda p: p.mrf_layers, regional_factory_for=_regional
)


ALGORITHM = Algorithm(
    name="mrf",
    params_type=MRFParams,
    stylize=stylize,
    summary="patch nearest-neighbour (MRF) style loss on feature maps, image optimisation",
    citation="Li & Wand, Combining Markov Random Fields and Convolutional Neural Networks for Image "
    "Synthesis, CVPR 2016",
)

"""Quality measures, the same for every algorithm: every sweep job is scored by all of them.

Five measures, computed on the output as written (RGB in [0, 1], its own size; an output larger
than ``MAX_SIDE`` px, from a memory budget's tiles, on a copy resized to it: the measures of a
4096 px print would otherwise be a VGG pass of several GB themselves), against the
content image resized to the output's size and the style image at most ``STYLE_MAX_SIDE`` px on
its long side. Features come from the caffe VGG-19 in fp32, whatever the algorithm used.

Content (how much of the photo survives):

* ``content_distance`` = ||F(out) - F(content)||^2 / ||F(content)||^2 at relu4_2. Lower is
  better; 0 for the photo itself. This is Gatys's content loss.
* ``content_ssim`` = mean SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) between the luminances
  (Y of YIQ) of output and content: 11x11 Gaussian window, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2
  for a data range of 1. Higher is better; 1 for the photo itself. No algorithm optimises it.

Style (how close the output's statistics come to the painting's):

* ``style_distance`` = mean over relu1_1..relu5_1 of ||G(out) - G(style)|| / ||G(style)||
  (Frobenius norms, Gram matrices divided by H*W). Lower is better. This is Gatys's style loss
  (square-rooted), so it favours Gatys by construction; the two below do not.
* ``style_swd`` = mean over relu1_1..relu4_1 of the sliced Wasserstein-2 distance between the
  output's and the style's feature distributions (each position's C-vector a sample),
  ``SW(l) = sqrt(mean_k mean_q (Q_out,k(q) - Q_style,k(q))^2) / sqrt(mean_k mean_q Q_style,k(q)^2)``
  over ``SWD_PROJECTIONS`` unit directions k drawn once from a fixed seed and the quantiles q of
  the projected values: relative like every stylegrid loss (1 = as far as all-zero features).
  It compares whole distributions along directions that mix channels, where Gram matrices see
  second moments only and the histogram loss the channels one at a time. Lower is better.
* ``color_swd`` = the same sliced Wasserstein-2 distance between the output's and the style's
  pixel colours in CIE L*a*b* (``SWD_PROJECTIONS`` directions in 3-D), not normalised: in Lab
  units, where 1 is about a just-noticeable colour difference. Lower is better.

No algorithm here optimises ``content_ssim``, ``style_swd`` or ``color_swd``. The quantiles are
those of the smaller of the two samples (linear interpolation in the larger), and at most
``SWD_MAX_SAMPLES`` positions of a layer are used (a fixed, evenly strided subset), so a measure
of a 512 px image costs about a second on one CPU core.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..base import DEFAULT_STYLE_SIZE
from .color import luminance, rgb_to_lab
from .losses import gram_matrix, relative_squared_error, target_quantiles
from .memo import fingerprint, memo
from .parameters import STYLE_LAYERS_GATYS
from .regions import Region, positions, select
from .sizing import MEASURE_SIDE, resize, resize_long_side
from .vgg import get_encoder

CONTENT_LAYER = "relu4_2"
STYLE_MAX_SIDE = DEFAULT_STYLE_SIZE
MAX_SIDE = MEASURE_SIDE  # px: a larger output is measured on a copy of this long side
SWD_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SWD_PROJECTIONS = 64
SWD_MAX_SAMPLES = 1 << 16
SWD_SEED = 0


@dataclass(frozen=True)
class Measure:
    name: str
    kind: str  # "content" or "style"
    better: str  # "lower" or "higher"
    summary: str


# Every measure, in the order of the results table; the report, the Parquet schema and MLflow
# read this list.
MEASURES = (
    Measure("content_distance", "content", "lower", "relative squared distance of relu4_2 features"),
    Measure("content_ssim", "content", "higher", "SSIM of the luminance"),
    Measure("style_distance", "style", "lower", "relative distance of Gram matrices, relu1_1..5_1"),
    Measure("style_swd", "style", "lower", "sliced Wasserstein distance of VGG features, relu1_1..4_1"),
    Measure("color_swd", "style", "lower", "sliced Wasserstein distance of Lab colours"),
)


@dataclass(frozen=True)
class Quality:
    content_distance: float
    content_ssim: float
    style_distance: float
    style_swd: float
    color_swd: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# --- pure measures ------------------------------------------------------------------------------


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of two single-channel images [1, 1, H, W] (Wang et al. 2004, the published
    constants, over the positions where the window fits; it shrinks for images under 11 px)."""
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    size = min(11, *x.shape[-2:])
    # float64: E[x^2] - E[x]^2 loses the variances of flat regions to rounding in float32
    w = _gaussian_window(size, 1.5 * size / 11).to(x.device, torch.float64)[None, None]
    x, y = x.double(), y.double()
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mx**2
    syy = F.conv2d(y * y, w) - my**2
    sxy = F.conv2d(x * y, w) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean()


@functools.cache
def projections(dim: int, count: int = SWD_PROJECTIONS, seed: int = SWD_SEED) -> torch.Tensor:
    """``count`` unit vectors in ``dim`` dimensions [dim, count], the same on every machine."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + dim)
    p = torch.randn(dim, count, generator=g, dtype=torch.float64)
    return (p / p.norm(dim=0, keepdim=True)).float()


def _samples(x: torch.Tensor, limit: int) -> torch.Tensor:
    """[B, C, H, W] -> [N, C] positions as samples, at most ``limit`` (evenly strided)."""
    flat = x.float().flatten(2).transpose(1, 2).reshape(-1, x.shape[1])
    if flat.shape[0] > limit:
        idx = torch.linspace(0, flat.shape[0] - 1, limit, device=flat.device).round().long()
        flat = flat[idx]
    return flat


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, *, relative: bool, limit: int = SWD_MAX_SAMPLES
) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between the position-wise samples of ``a`` and ``b``
    ([1, C, H, W] each, sizes may differ); relative to ``b``'s root mean square projection when
    ``relative`` (see the module docstring)."""
    pa, pb = _samples(a, limit), _samples(b, limit)
    proj = projections(a.shape[1]).to(a.device)
    qa, qb = _sorted_rows((pa @ proj).T), _sorted_rows((pb @ proj).T)  # [K, N]
    n = min(qa.shape[1], qb.shape[1])
    qa, qb = target_quantiles(qa, n), target_quantiles(qb, n)
    distance = (qa - qb).pow(2).mean().sqrt()
    return distance / (qb.pow(2).mean().sqrt() + 1e-8) if relative else distance


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row sorted ascending; numpy's SIMD sort on the CPU (4x torch.sort here)."""
    if x.device.type != "cpu":
        return x.sort(dim=1).values
    return torch.from_numpy(np.sort(x.contiguous().numpy(), axis=1))


# --- all of them on one output ------------------------------------------------------------------


def _measured(output: torch.Tensor, content: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The output as measured (at most ``MAX_SIDE`` px) and the content at its size."""
    output = output.to(device).float().clamp(0, 1)
    if max(output.shape[-2:]) > MAX_SIDE:
        output = resize_long_side(output, MAX_SIDE).clamp(0, 1)
    return output, resize(content.to(device).float(), tuple(output.shape[-2:]))  # type: ignore[arg-type]


def _measured_style(style: torch.Tensor, device) -> torch.Tensor:
    style = style.to(device).float()
    return resize_long_side(style, STYLE_MAX_SIDE) if max(style.shape[-2:]) > STYLE_MAX_SIDE else style


@torch.no_grad()
def quality(
    output: torch.Tensor,
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> Quality:
    """Every measure of the module docstring for one output [1, 3, H, W]. ``cache``: a dict
    kept between calls, in which the style's features are memoised (a sweep worker keeps one)."""
    enc = get_encoder((CONTENT_LAYER, *STYLE_LAYERS), source="caffe", device=device)
    output, content = _measured(output, content, device)
    style = _measured_style(style, device)
    fs = memo(cache, ("quality", fingerprint(style), str(style.device)), lambda: _style_features(enc, style))
    fo = enc(output, (CONTENT_LAYER, *STYLE_LAYERS))
    fc = enc(content, (CONTENT_LAYER,))
    grams = [relative_squared_error(gram_matrix(fo[n]), fs["gram"][n]).sqrt() for n in STYLE_LAYERS_GATYS]
    swd = [sliced_wasserstein(fo[n], fs[n], relative=True) for n in SWD_LAYERS]
    return Quality(
        content_distance=float(relative_squared_error(fo[CONTENT_LAYER], fc[CONTENT_LAYER])),
        content_ssim=float(ssim(luminance(output), luminance(content.clamp(0, 1)))),
        style_distance=float(torch.stack(grams).mean()),
        style_swd=float(torch.stack(swd).mean()),
        color_swd=float(sliced_wasserstein(rgb_to_lab(output), fs["lab"], relative=False)),
    )


STYLE_LAYERS = tuple(dict.fromkeys((*STYLE_LAYERS_GATYS, *SWD_LAYERS)))


@torch.no_grad()
def regional_quality(
    output: torch.Tensor,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    regions: Sequence[Region],
    *,
    device: str | torch.device = "cpu",
    cache: MutableMapping | None = None,
) -> Quality:
    """The measures of an output made with spatial control. The content measures are the whole
    picture's, as for any output. Each style measure is taken region by region, the output's
    features (or colours) at the region's positions against those of its own painting within the
    painting's mask, then averaged weighted by the regions' areas. A region that keeps the photo
    takes no part in the style measures: its faithfulness is in the content measures. One region
    over the whole picture gives ``quality``'s numbers."""
    enc = get_encoder((CONTENT_LAYER, *STYLE_LAYERS), source="caffe", device=device)
    output, content = _measured(output, content, device)
    fo = enc(output, (CONTENT_LAYER, *STYLE_LAYERS))
    fc = enc(content, (CONTENT_LAYER,))
    styled = [r for r in regions if r.style is not None]
    shares = torch.tensor([float(r.mask.float().mean()) for r in styled], dtype=torch.float64)
    shares = shares / shares.sum()
    per_region = []
    for region in styled:
        style = _measured_style(styles[region.style], device)
        key = (
            "quality",
            fingerprint(style),
            None if region.style_mask is None else fingerprint(region.style_mask),
        )
        fs = memo(
            cache,
            (*key, str(style.device)),
            lambda s=style, m=region.style_mask: _masked_style_features(enc, s, m),
        )
        mine = {n: select(fo[n], positions(region.mask, fo[n].shape[-2:])) for n in STYLE_LAYERS}
        pixels = select(rgb_to_lab(output), positions(region.mask, output.shape[-2:]))
        per_region.append(
            (
                torch.stack([relative_squared_error(gram_matrix(mine[n]), fs["gram"][n]).sqrt()
                             for n in STYLE_LAYERS_GATYS]).mean(),
                torch.stack([sliced_wasserstein(mine[n], fs[n], relative=True) for n in SWD_LAYERS]).mean(),
                sliced_wasserstein(pixels, fs["lab"], relative=False),
            )
        )  # fmt: skip
    style_distance, style_swd, color_swd = (
        float(sum(share * float(values[i]) for share, values in zip(shares, per_region, strict=True)))
        for i in range(3)
    )
    return Quality(
        content_distance=float(relative_squared_error(fo[CONTENT_LAYER], fc[CONTENT_LAYER])),
        content_ssim=float(ssim(luminance(output), luminance(content.clamp(0, 1)))),
        style_distance=style_distance,
        style_swd=style_swd,
        color_swd=color_swd,
    )


def _masked_style_features(enc, style: torch.Tensor, mask: torch.Tensor | None) -> dict:
    """``_style_features`` of the painting's part under ``mask`` (all of it without one)."""
    if mask is None:
        return _style_features(enc, style)
    feats = enc(style, STYLE_LAYERS)
    part = {n: select(feats[n], positions(mask, feats[n].shape[-2:])) for n in STYLE_LAYERS}
    return {
        **{n: part[n] for n in SWD_LAYERS},
        "gram": {n: gram_matrix(part[n]) for n in STYLE_LAYERS_GATYS},
        "lab": select(rgb_to_lab(style), positions(mask, style.shape[-2:])),
    }


def _style_features(enc, style: torch.Tensor) -> dict:
    feats = enc(style, STYLE_LAYERS)
    return {
        **{n: feats[n] for n in SWD_LAYERS},
        "gram": {n: gram_matrix(feats[n]) for n in STYLE_LAYERS_GATYS},
        "lab": rgb_to_lab(style),
    }

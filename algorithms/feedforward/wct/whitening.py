"""The whitening and colouring transform of Li et al., "Universal Style Transfer via Feature
Transforms" (NeurIPS 2017), as pure functions on feature maps.

Whitening removes the content features' correlations: with the centred features ``f_c`` [C, N]
and the eigen-decomposition ``f_c f_c^T / (N - 1) = E_c D_c E_c^T``, the whitened features are
``E_c D_c^-1/2 E_c^T f_c``, whose covariance is the identity (equation 1 of the paper).
Colouring gives them the style's: ``E_s D_s^1/2 E_s^T f_w + m_s`` has the style features'
covariance and mean (equation 2). ``wct`` blends the result with the content's own features by
``alpha`` (equation 3).

The numerical care the transform needs, and why:

* covariances and eigen-decompositions in float64, whatever the features' precision: relu
  features of 512 channels give covariances whose eigenvalues span ten or more decades, and a
  float32 ``eigh`` of such a matrix returns small negative eigenvalues and vectors that are not
  orthogonal;
* an eigenvalue floor: directions of (near) zero variance are dropped, not inverted (the
  published code keeps eigenvalues above 1e-5 and discards the rest): dividing by the square root
  of a tiny eigenvalue would multiply rounding noise by hundreds. The floor is relative to the
  largest eigenvalue too, so that it does not depend on the features' scale;
* a batch dimension everywhere (``torch.linalg.eigh`` decomposes a batch of matrices at once),
  so that a batch of contents is one call;
* an optional mask over positions, so that the statistics can be those of a region (spatial
  control: a region's content features coloured to its own style);
* moments summed chunk by chunk (``MomentSums``: a large image's tiles) and the transform as one
  matrix and bias (``transform``, float64) applied to the features in their own precision
  (``apply``): a float64 copy of relu1_1 features costs 512 bytes per pixel, the matrix a few MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

ABSOLUTE_FLOOR = 1e-5  # eigenvalues at or below this are dropped (the published code's threshold)
RELATIVE_FLOOR = 1e-8  # ... and at or below this fraction of the largest eigenvalue


@dataclass(frozen=True)
class Moments:
    """The first two moments of feature maps over their positions, per batch item, in float64:
    ``mean`` [B, C, 1] and ``cov`` [B, C, C] (sample covariance, N - 1 in the denominator)."""

    mean: torch.Tensor
    cov: torch.Tensor


def _flat(features: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] (or [B, C, N]) -> [B, C, N] in float64."""
    return features.flatten(2).double()


def _weights(mask: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor:
    """[B, 1, N] float64 weights of the positions (1 everywhere without a mask). A mask is
    [B or 1, 1, H, W] with values in [0, 1], resized to the features by the caller."""
    b, _, n = _flat(features).shape
    if mask is None:
        return torch.ones(b, 1, n, dtype=torch.float64, device=features.device)
    w = mask.flatten(2).double()
    if w.shape[-1] != n:
        raise ValueError(f"the mask has {w.shape[-1]} positions, the features {n}")
    return w.expand(b, 1, n)


def moments(features: torch.Tensor, mask: torch.Tensor | None = None) -> Moments:
    """Mean and covariance of ``features`` [B, C, H, W] over the positions ``mask`` selects
    (all of them without one). A selection of fewer than two positions is an error."""
    f = _flat(features)
    w = _weights(mask, features)
    n = w.sum(-1, keepdim=True)  # [B, 1, 1]
    if bool((n < 2).any()):
        raise ValueError("a covariance needs at least two positions; the mask selects fewer")
    mean = (f * w).sum(-1, keepdim=True) / n
    centred = (f - mean) * w.sqrt()
    cov = centred @ centred.transpose(1, 2) / (n - 1)
    return Moments(mean, cov)


def _matrix_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """``cov ** power`` for symmetric positive semi-definite [B, C, C] (float64), through its
    eigen-decomposition, with eigenvalues at or below the floor dropped (their directions map
    to zero)."""
    values, vectors = torch.linalg.eigh(cov)
    floor = torch.clamp(values.amax(-1, keepdim=True) * RELATIVE_FLOOR, min=ABSOLUTE_FLOOR)
    keep = values > floor
    scaled = torch.where(keep, values.clamp_min(ABSOLUTE_FLOOR).pow(power), torch.zeros_like(values))
    return (vectors * scaled.unsqueeze(-2)) @ vectors.transpose(-1, -2)


def whiten(features: torch.Tensor, content: Moments) -> torch.Tensor:
    """``features`` [B, C, H, W] centred by ``content.mean`` and decorrelated by
    ``content.cov ** -1/2`` -> [B, C, H, W] float64 (covariance the identity on the kept
    directions)."""
    f = _flat(features)
    out = _matrix_power(content.cov, -0.5) @ (f - content.mean)
    return out.reshape(features.shape)


def colour(whitened: torch.Tensor, style: Moments) -> torch.Tensor:
    """Whitened features [B, C, H, W] given ``style``'s covariance and mean -> float64."""
    f = _flat(whitened)
    out = _matrix_power(style.cov, 0.5) @ f + style.mean
    return out.reshape(whitened.shape)


def wct(
    content: torch.Tensor,
    style: Moments,
    alpha: float = 1.0,
    content_moments: Moments | None = None,
) -> torch.Tensor:
    """The transform of the paper: ``content`` [B, C, H, W] whitened (by its own moments, or by
    ``content_moments``: a whole image's, for one of its tiles or regions), coloured to
    ``style``'s and blended with the content by ``alpha`` (0 = the content's own features), in
    the content's dtype."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    own = content_moments if content_moments is not None else moments(content)
    coloured = colour(whiten(content, own), style)
    return (alpha * coloured + (1 - alpha) * content.double()).to(content.dtype)


class MomentSums:
    """``moments`` of features seen in parts (the cores of an image's tiles): the sums of the
    features and of their outer products, per batch item, in float64."""

    def __init__(self):
        self.total = self.outer = None
        self.count = 0

    def add(self, features: torch.Tensor) -> None:
        f = _flat(features)
        s, o = f.sum(-1, keepdim=True), f @ f.transpose(1, 2)
        self.total, self.outer = (s, o) if self.total is None else (self.total + s, self.outer + o)
        self.count += f.shape[-1]

    def moments(self) -> Moments:
        if self.count < 2:
            raise ValueError("a covariance needs at least two positions")
        mean = self.total / self.count
        cov = (self.outer - self.count * mean @ mean.transpose(1, 2)) / (self.count - 1)
        return Moments(mean, (cov + cov.transpose(1, 2)) / 2)


def chunked_moments(features: torch.Tensor, chunk: int = 1 << 15) -> Moments:
    """``moments(features)`` [B, C, H, W] summed ``chunk`` positions at a time: the float64
    copies are of one chunk, not of the whole map (a float64 copy of relu1_1 features is 512
    bytes per pixel)."""
    sums = MomentSums()
    flat = features.flatten(2)
    for start in range(0, flat.shape[-1], chunk):
        sums.add(flat[..., start : start + chunk])
    return sums.moments()


def transform(
    content: Moments, styles: Sequence[Moments], weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix [B, C, C], bias [B, C, 1]), float64: ``matrix @ f + bias`` whitens ``f`` by
    ``content`` and colours it to the ``weights``-blend of ``styles`` (Li et al.'s interpolation
    of the coloured features), ``colour(whiten(f, content), style)`` in one product."""
    total = float(sum(weights))
    white = _matrix_power(content.cov, -0.5)
    matrix = sum(
        _matrix_power(s.cov, 0.5) @ white * (w / total) for s, w in zip(styles, weights, strict=True)
    )
    bias = sum(s.mean * (w / total) for s, w in zip(styles, weights, strict=True)) - matrix @ content.mean
    return matrix, bias


def apply(features: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha`` x the transformed ``features`` [B, C, H, W] + (1 - alpha) x themselves, in
    their dtype (float32 for float16/bfloat16 ones: the product is not made in half precision)."""
    dtype = features.dtype if features.dtype == torch.float64 else torch.float32
    f = features.flatten(2).to(dtype)
    out = torch.baddbmm(
        bias.to(dtype).expand(-1, -1, f.shape[-1]), matrix.to(dtype).expand(f.shape[0], -1, -1), f
    )
    if alpha != 1:
        out.mul_(alpha).add_(f, alpha=1 - alpha)
    return out.reshape(features.shape).to(features.dtype)

"""Loss functions as small pure functions on tensors.

Normalisation, where this departs from Gatys et al. (2015):

* ``gram_matrix`` divides by H*W (the number of positions), not by C*H*W nor 4*N^2*M^2 as in the
  paper. Divided by H*W a Gram matrix is the average outer product of a feature vector, so its
  magnitude does not depend on the image size: a style image at 512 px gives targets that apply
  to an output at 128 px of the coarse scale and at 512 px of the fine one.
* ``relative_squared_error`` divides the squared Frobenius distance by the squared norm of the
  target. Every content and style layer then contributes on the same scale (a value of 1 means
  "as far from the target as zero activations would be") whatever its depth, channel count or
  image size, so one set of weights works for every layer set and size. The per-layer
  weights of the paper exist mainly to undo those differences of scale.
  The content term is the neutral content distance of ``metrics.py``; the square roots of the
  style terms average to its style distance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of features [B, C, H, W] -> [B, C, C], divided by H*W. Computed in fp32."""
    b, c, h, w = features.shape
    f = features.float().reshape(b, c, h * w)
    return _Gram.apply(f) / (h * w)


class _Gram(torch.autograd.Function):
    """F F^T with a one-product backward: d/dF = (dG + dG^T) F. Autograd's own backward for
    ``bmm(f, f.transpose)`` computes two products and adds them; this takes 0.047 s instead of
    0.118 s for relu1_1 at 512 px here, and the Gram terms are most of an evaluation's cost."""

    @staticmethod
    def forward(ctx, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f)
        return torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), f)


def relative_squared_error(x: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """||x - target||^2 / ||target||^2 (squared Frobenius norms, over all elements), in fp32."""
    x, target = x.float(), target.float()
    return (x - target).pow(2).sum() / (target.pow(2).sum() + eps)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Relative squared distance between activations and the content image's activations."""
    return relative_squared_error(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Relative squared distance between the Gram matrix of ``features`` and a target Gram."""
    return relative_squared_error(gram_matrix(features), target_gram)


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over the positions of [B, C, H, W] -> [B, C, 1, 1]
    each, in fp32 (population variance, plus ``eps`` before the square root)."""
    f = features.float()
    var, mean = torch.var_mean(f, dim=(2, 3), keepdim=True, correction=0)
    return mean, (var + eps).sqrt()


def mean_std_loss(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Relative squared distance of the features' per-channel means and standard deviations to
    targets (the style loss of Huang & Belongie 2017, normalised like every other term here)."""
    m, s = mean_std(features)
    num = (m - mean).pow(2).sum() + (s - std).pow(2).sum()
    return num / (mean.pow(2).sum() + std.pow(2).sum() + 1e-8)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between horizontally and vertically adjacent pixels (summed).

    The squared (beta = 2) form of Mahendran & Vedaldi (2015), averaged so that it does not grow
    with the image size.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).mean() + dy.float().pow(2).mean()


def blend_grams(grams: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Weighted average of Gram matrices (weights are normalised to sum to 1).

    With a squared-error loss, matching the weighted average of the targets has the same
    minimiser and gradient as the weighted sum of one loss per style image.
    """
    if len(grams) != len(weights):
        raise ValueError(f"{len(grams)} style targets but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"style weights must be non-negative with a positive sum, got {weights}")
    return sum(g * (w / total) for g, w in zip(grams, weights, strict=True))  # type: ignore[return-value]


def range_penalty(image: torch.Tensor) -> torch.Tensor:
    """Mean squared excess of pixels outside [0, 1]; zero for any displayable image.

    A smooth replacement for clamping inside the optimiser's closure (which breaks L-BFGS's
    curvature pairs and made it diverge): the image may leave [0, 1] a little while optimising
    and is clamped once at the end.
    """
    return (F.relu(image - 1) + F.relu(-image)).float().pow(2).mean()


_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplacian(image: torch.Tensor, pool: int = 4) -> torch.Tensor:
    """The Laplacian-filtered image after a ``pool`` x ``pool`` average pool, per channel
    (Li, Xu, Bertsekas & Zhang 2017, "Laplacian-Steered Neural Style Transfer")."""
    x = F.avg_pool2d(image.float(), pool) if pool > 1 else image.float()
    k = _LAPLACIAN.to(x.device).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(x, k, groups=x.shape[1])


def laplacian_loss(image: torch.Tensor, content_laplacian: torch.Tensor) -> torch.Tensor:
    """Squared distance between the Laplacians of the output and of the content, relative to the
    content's (the paper's unnormalised sum, normalised like every other term here)."""
    return relative_squared_error(laplacian(image), content_laplacian)


def target_quantiles(target_sorted: torch.Tensor, n: int) -> torch.Tensor:
    """``target_sorted`` [C, M] (rows ascending) resampled to n values per row: the value at rank
    r is read at position r * (M - 1) / (n - 1), linearly interpolated. Unchanged when M == n."""
    m = target_sorted.shape[1]
    if n == m:
        return target_sorted
    pos = torch.linspace(0, m - 1, n, device=target_sorted.device, dtype=torch.float32)
    lo = pos.floor().long().clamp(max=m - 1)
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo.float()).unsqueeze(0)
    return target_sorted[:, lo] * (1 - frac) + target_sorted[:, hi] * frac

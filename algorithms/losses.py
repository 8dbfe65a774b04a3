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


def histogram_match(source: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """Exact histogram matching, per channel: each value of ``source`` [C, N] is replaced by the
    value of the same rank in ``target_sorted`` [C, M] (each row sorted ascending). With M != N
    the target is read at the fractional position rank * (M - 1) / (N - 1), linearly interpolated.
    (Risser, Wilmot & Barnes 2017: "sort and assign in rank order".)
    """
    values = target_quantiles(target_sorted, source.shape[1])
    return torch.empty_like(values).scatter_(1, rank_order(source), values)


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


def rank_order(x: torch.Tensor) -> torch.Tensor:
    """``argsort`` along dim 1 with ties in index order (as ``stable=True``)."""
    return sort_rows(x)[1]


def sort_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``x`` [C, N] sorted ascending: (float32 values, int64 indices), ties in index
    order (as ``torch.sort(stable=True)``), -0.0 taken as 0.0."""
    if not _packed_sort_applies(x):
        return torch.sort(x.detach().float() + 0.0, dim=1, stable=True)
    keys, negative = sorted_keys(x)
    values = sorted_values(keys, negative).contiguous()
    return values, keys.bitwise_and_(0xFFFFFFFF)


def _packed_sort_applies(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.shape[1] < 2**31


def sorted_keys(x: torch.Tensor, keys: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """The rows of ``x`` [C, N] (CPU) sorted as packed int64 keys: the value's bits in the high
    half (mapped to an int32 of the same order), its index in the low half. Also says whether
    ``x`` had negative values (see ``sorted_values``). ``keys``: an int64 [C, N] tensor to reuse.

    2-3x faster than ``torch.sort`` on this CPU (relu1_1 at 512 px, 64 x 196608 values): the
    halves are written through int32 / float32 views (one pass each, the float conversion and the
    transpose of channels-last activations included), then the rows are sorted in place by
    numpy's SIMD int64 sort, half of the rows in each of two threads (numpy releases the GIL).
    Ties keep index order because the index is the low half.
    """
    c, n = x.shape
    if keys is None or keys.shape != (c, n):
        keys = torch.empty((c, n), dtype=torch.int64)
    halves = keys.view(torch.int32)  # little-endian: [index, value] pairs
    high = halves[:, 1::2]
    negative = bool(x.detach().min() < 0)  # (ReLU activations have none)
    torch.add(x.detach(), 0.0, out=high.view(torch.float32))  # + 0.0: -0.0 -> 0.0
    if negative:
        high.copy_(_flip_negative(high))
    halves[:, 0::2] = torch.arange(n, dtype=torch.int32)
    _sort_int64_rows(keys.numpy())
    return keys, negative


def sorted_values(keys: torch.Tensor, negative: bool) -> torch.Tensor:
    """The float32 values [C, N] of keys from ``sorted_keys`` (a strided view into them unless
    there were negative values)."""
    high = keys.view(torch.int32)[:, 1::2]
    return (_flip_negative(high) if negative else high).view(torch.float32)


def _flip_negative(bits: torch.Tensor) -> torch.Tensor:
    """IEEE float bits (as int32) <-> int32 of the same order: non-negative floats order like
    their bits; negative ones in reverse (flip the magnitude bits, keep the sign). Its own inverse."""
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


_SORT_POOL: list = []


def _sort_int64_rows(rows) -> None:
    """Sorts the rows of a numpy int64 [C, N] array in place, in two threads when worth it."""
    if rows.shape[0] < 2 or rows.size < 2**20 or torch.get_num_threads() < 2:
        rows.sort(axis=1)
        return
    if not _SORT_POOL:
        from concurrent.futures import ThreadPoolExecutor

        _SORT_POOL.append(ThreadPoolExecutor(2, thread_name_prefix="stylegrid-sort"))
    half = rows.shape[0] // 2
    for done in _SORT_POOL[0].map(lambda part: part.sort(axis=1), (rows[:half], rows[half:])):
        del done


def histogram_loss(
    features: torch.Tensor, target_sorted: torch.Tensor, workspace: torch.Tensor | None = None
) -> torch.Tensor:
    """Relative squared distance from activations [1, C, H, W] to their histogram-matched remap
    onto ``target_sorted`` [C, H*W] (the style's quantiles, rows ascending).

    The remap is a target, not a function to differentiate (no gradient flows through it), as in
    the paper. ``workspace``: an int64 [C, H*W] tensor the CPU sort may reuse from one evaluation
    to the next (fresh 100 MB allocations cost more than the sort on this machine); autograd
    refuses a backward pass whose workspace was overwritten by a later forward.
    """
    f = features.reshape(features.shape[1], -1)  # a view for channels-last activations too
    return _HistogramLoss.apply(f, target_sorted, workspace)


class _HistogramLoss(torch.autograd.Function):
    """||f - remap(f)||^2 / ||remap(f)||^2 with the remap held constant.

    Computed in rank order, where no scatter is needed: the remap puts the target's r-th value
    where f has its r-th value, so the distance is ||sort(f) - target||^2 and ||remap||^2 =
    ||target||^2. The gradient 2 (f - remap) / ||target||^2 is the sorted difference scattered
    back to the positions it came from (once, in the backward pass).
    """

    @staticmethod
    def forward(ctx, f, target_sorted, workspace):
        if _packed_sort_applies(f):
            keys, negative = sorted_keys(f, workspace)
            diff = torch.sub(sorted_values(keys, negative), target_sorted)
            indices = keys.bitwise_and_(0xFFFFFFFF)
        else:
            values, indices = sort_rows(f)
            diff = values.sub_(target_sorted)
        flat_target = target_sorted.float().reshape(-1)
        norm = flat_target.dot(flat_target) + 1e-8
        ctx.save_for_backward(diff, indices, norm)
        ctx.input_dtype = f.dtype
        return diff.reshape(-1).dot(diff.reshape(-1)) / norm

    @staticmethod
    def backward(ctx, grad):
        diff, indices, norm = ctx.saved_tensors
        out = torch.empty_like(diff).scatter_(1, indices, diff)
        return out.mul_(2 * grad / norm).to(ctx.input_dtype), None, None


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

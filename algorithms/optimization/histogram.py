"""Risser, Wilmot & Barnes, "Stable and Controllable Neural Texture Synthesis and Style Transfer
Using Histogram Losses" (2017): Gatys's Gram loss plus a histogram loss.

For each histogram layer, every channel of the output's activations is remapped to the style's
distribution by exact histogram matching (sort, assign in rank order, interpolate when the counts
differ), and the loss is the distance to the remapped activations, with no gradient through the
remap. Gram matrices alone match second-order statistics and let the mean and the spread of the
activations drift (the washed-out colours of plain Gatys); the histogram term pins them.

Loss balance: the paper normalises the gradients of the terms; reference implementations use fixed
weights. Here every term is already a *relative* squared error (see ``losses.py``), so the
histogram term is on the same scale as the Gram terms and a fixed ``histogram_weight`` (default 1,
i.e. as strong as the style loss per layer) balances them; multi-scale as in the paper comes from
the shared coarse-to-fine loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..base import Algorithm
from ..shared.losses import target_quantiles
from ..shared.memo import memo, style_key
from ..shared.parameters import check_layers, check_non_negative, param
from ..shared.vgg import VGGEncoder, encode_targets
from .gatys import GatysParams, GramStyleTerm, gram_term_factory
from .loop import image_optimization_stylize
from .objective import TermInputs

# --- exact histogram matching (pure functions) ------------------------------------------------------


def histogram_match(source: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """Exact histogram matching, per channel: each value of ``source`` [C, N] is replaced by the
    value of the same rank in ``target_sorted`` [C, M] (each row sorted ascending). With M != N
    the target is read at the fractional position rank * (M - 1) / (N - 1), linearly interpolated.
    (Risser, Wilmot & Barnes 2017: "sort and assign in rank order".)
    """
    values = target_quantiles(target_sorted, source.shape[1])
    return torch.empty_like(values).scatter_(1, rank_order(source), values)


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


# --- the algorithm ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HistogramParams(GatysParams):
    style_weight: float = param(1.0, "weight of the style loss (chosen by experiments/tune_histogram.yaml)")
    histogram_layers: tuple[str, ...] = param(("relu1_1", "relu4_1"), "layers whose histograms are matched")
    histogram_weight: float = param(
        1.0,
        "weight of the histogram loss, relative to style_weight (chosen by experiments/tune_histogram.yaml)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers(self, "histogram_layers")
        check_non_negative(self, "histogram_weight")


def sorted_style_activations(
    encoder: VGGEncoder,
    styles: Sequence[torch.Tensor],
    weights: Sequence[float],
    layers: Sequence[str],
    precision: str,
) -> dict[str, torch.Tensor]:
    """Per layer, each channel's style activations sorted ascending ([C, M]). Several styles are
    pooled with as many samples as their weight asks for, so the target histogram is their blend."""
    total = float(sum(weights))
    out = {}
    for name in layers:
        parts = []
        for style, w in zip(styles, weights, strict=True):
            if w <= 0:
                continue
            f = encode_targets(encoder, style, [name], precision)[name]
            flat = f.reshape(f.shape[1], -1)
            keep = max(1, round(flat.shape[1] * w / total))
            idx = torch.linspace(0, flat.shape[1] - 1, keep, device=flat.device).round().long()
            parts.append(flat.sort(dim=1).values[:, idx])
        out[name] = torch.cat(parts, dim=1).sort(dim=1).values
    return out


@dataclass
class HistogramStyleTerm:
    gram: GramStyleTerm
    targets: Mapping[str, torch.Tensor]  # sorted activations per histogram layer
    weight: float  # style_weight x histogram_weight / number of layers
    # the targets resampled to the output's number of positions, per (layer, count): computed
    # once per scale instead of at every evaluation
    _quantiles: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)
    # the CPU sort's int64 workspace per (layer, count), reused from one evaluation to the next
    _workspaces: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.gram.layers, *self.targets)))

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = self.gram(features)
        for name, target in self.targets.items():
            f = features[name]
            key = (name, f.shape[-2] * f.shape[-1])
            if key not in self._quantiles:
                self._quantiles[key] = target_quantiles(target, key[1])
            if f.device.type == "cpu" and key not in self._workspaces:
                self._workspaces[key] = torch.empty(f.shape[1], key[1], dtype=torch.int64)
            loss = histogram_loss(f, self._quantiles[key], self._workspaces.get(key))
            terms[f"style.hist.{name}"] = self.weight * loss
        return terms


def histogram_term_factory(params: HistogramParams):
    """Gram term + histogram term for ``params``; both targets memoised by the style images."""
    gram_factory = gram_term_factory(params)
    hist_weight = params.style_weight * params.histogram_weight / len(params.histogram_layers)

    def factory(t: TermInputs):
        key = style_key(
            "histogram", t.encoder, t.styles, t.precision, params.pooling, tuple(t.weights),
            params.histogram_layers,
        )  # fmt: skip
        sorted_acts = memo(
            t.memo,
            key,
            lambda: sorted_style_activations(
                t.encoder, t.styles, t.weights, params.histogram_layers, t.precision
            ),
        )
        gram = gram_factory(t)
        return HistogramStyleTerm(gram, sorted_acts, hist_weight)

    return factory


stylize = image_optimization_stylize(
    HistogramParams,
    histogram_term_factory,
    lambda p: tuple(dict.fromkeys((*p.style_layers, *p.histogram_layers))),
)


ALGORITHM = Algorithm(
    name="histogram",
    params_type=HistogramParams,
    stylize=stylize,
    summary="Gram + feature-histogram loss, image optimisation",
    citation="Risser, Wilmot & Barnes, Stable and Controllable Neural Texture Synthesis and Style Transfer "
    "Using Histogram Losses, 2017",
)

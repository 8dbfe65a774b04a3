"""A small L-BFGS with a backtracking (Armijo) line search, written for image optimisation.

Why not ``torch.optim.LBFGS``: without a line search its first iterations overshoot (the total
loss jumped tenfold at the third evaluation here), with ``strong_wolfe`` its trial points are
indistinguishable from accepted ones inside the closure, and its absolute tolerances
(``tolerance_grad``, ``tolerance_change``, ``ys > 1e-10``) make it stop after a handful of
evaluations when the loss is scaled small. This version

* accepts a step only when it lowers the loss enough (Armijo, c1 = 1e-4), backtracking with a
  safeguarded quadratic interpolation otherwise. With a noisy loss (bf16 activations quantise
  it: a relative noise of about 2e-4, ``loop.LOSS_NOISE``) the condition is relaxed by twice the
  noise level, as in Berahas, Byrd & Nocedal, "Derivative-free optimization of noisy functions
  via quasi-Newton methods" (SIAM J. Optim. 2019); with an exact loss accepted iterates never
  go up, with a noisy one by at most the noise;
* uses scale-free tests (relative curvature, no absolute tolerances), so multiplying the loss by
  1e-7 changes nothing but the numbers;
* falls back to steepest descent when the quasi-Newton direction is not a descent direction;
* counts every function evaluation and reports every accepted step.

Nocedal & Wright, Numerical Optimization (2006), algorithms 7.4 (two-loop recursion) and 3.1.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

T = TypeVar("T")  # whatever the objective returns besides the loss (the named terms)

ARMIJO_C1 = 1e-4
MAX_BACKTRACKS = 20
HISTORY = 30  # curvature pairs kept; each costs two image-sized tensors


@dataclass
class LBFGSOutcome(Generic[T]):
    x: torch.Tensor
    loss: float
    extra: T
    steps: int  # accepted steps
    evaluations: int
    stopped: str  # "" when all steps were taken, else why it stopped


def _direction(g: torch.Tensor, pairs: deque) -> torch.Tensor:
    """-H g by the two-loop recursion, H0 = (s'y / y'y) I from the newest pair."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * torch.dot(s, q)
        q.add_(y, alpha=-a)
        alphas.append(a)
    if pairs:
        s, y, _ = pairs[-1]
        q.mul_(torch.dot(s, y) / torch.dot(y, y))
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * torch.dot(y, q)
        q.add_(s, alpha=a - b)
    return q.neg_()


def minimize(
    fg: Callable[[torch.Tensor], tuple[float, torch.Tensor, T]],
    x0: torch.Tensor,
    steps: int,
    on_step: Callable[[torch.Tensor, float, T], None] | None = None,
    history: int = HISTORY,
    relative_noise: float = 0.0,
    first_step: float = 1e-2,
) -> LBFGSOutcome[T]:
    """Minimise ``fg(x) -> (loss, gradient, extra)`` over a flat tensor for ``steps`` accepted steps.

    ``relative_noise``: the loss's noise level relative to its value (0 for an exact loss).
    ``first_step``: the largest change of any element of x on a step without curvature memory
    (for images in [0, 1], 1e-2 is 2.5 grey levels).
    """
    x = x0.detach().clone()
    f, g, extra = fg(x)
    evals = 1
    pairs: deque = deque(maxlen=history)
    k = 0
    while k < steps:
        d = _direction(g, pairs)
        if not torch.dot(g, d) < 0:  # not a descent direction (or NaN): steepest descent
            pairs.clear()
            d = -g
            if not torch.dot(g, d) < 0:
                return LBFGSOutcome(x, f, extra, k, evals, "zero gradient: a stationary point")
        # Without curvature pairs the direction is -g, whose length depends on the loss's scale:
        # size the first step in x's own units instead (torch's min(1, 1/|g|_1) does not move
        # a loss scaled by 1e-7 at all). Afterwards H0 = s'y / y'y sizes the steps.
        t = 1.0 if pairs else first_step / float(d.abs().max())
        found, n = _line_search(fg, x, f, g, d, t, 2.0 * relative_noise * abs(f))
        evals += n
        if found is None:
            if pairs:  # a stale curvature memory can mislead: forget it and retry once
                pairs.clear()
                continue
            return LBFGSOutcome(x, f, extra, k, evals, f"no decrease found in {MAX_BACKTRACKS} trials")
        x_new, f_new, g_new, extra_new = found
        s, y = x_new - x, g_new - g
        ys = float(torch.dot(y, s))
        # relative curvature test: scale-free, unlike torch's ys > 1e-10
        if ys > 1e-10 * float(torch.linalg.vector_norm(y) * torch.linalg.vector_norm(s)):
            pairs.append((s, y, 1.0 / ys))
        x, f, g, extra = x_new, f_new, g_new, extra_new
        k += 1
        if on_step is not None:
            on_step(x, f, extra)
    return LBFGSOutcome(x, f, extra, steps, evals, "")


def _line_search(fg, x, f, g, d, t, slack):
    """Backtrack from step length ``t`` until the (relaxed) Armijo condition holds.

    Returns ((x, f, g, extra) at the accepted point, evaluations) or (None, evaluations).
    """
    gtd = float(torch.dot(g, d))
    for n in range(1, MAX_BACKTRACKS + 1):
        x_new = x + t * d
        f_new, g_new, extra_new = fg(x_new)
        if f_new <= f + ARMIJO_C1 * t * gtd + slack:  # False for NaN / inf too
            return (x_new, f_new, g_new, extra_new), n
        # minimiser of the quadratic through f, f'(0) = gtd and f(t), kept in [0.1 t, 0.5 t]
        denom = 2.0 * (f_new - f - gtd * t)
        t_q = -gtd * t * t / denom if denom > 0 and denom == denom else 0.5 * t
        t = min(max(t_q, 0.1 * t), 0.5 * t)
    return None, MAX_BACKTRACKS

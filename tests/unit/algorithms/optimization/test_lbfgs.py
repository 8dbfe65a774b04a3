"""The small L-BFGS of the image-optimisation loop (``optimization/lbfgs.py``): it minimises,
its accepted losses never go up on an exact loss, it is scale-free, and it says why it stopped."""

from __future__ import annotations

import torch
from stylegrid.algorithms.optimization.lbfgs import minimize


def rosenbrock(scale: float = 1.0):
    def fg(x: torch.Tensor):
        x = x.detach().double().requires_grad_(True)
        a, b = x[0::2], x[1::2]
        loss = scale * ((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, x)
        return float(loss.detach()), grad.detach(), {"loss": float(loss.detach())}

    return fg


def test_it_finds_the_minimum_of_rosenbrock_and_never_accepts_a_higher_loss():
    seen = []
    out = minimize(rosenbrock(), torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=torch.float64), 200,
                   on_step=lambda x, f, extra: seen.append(f), first_step=0.1)  # fmt: skip
    assert torch.allclose(out.x, torch.ones(4, dtype=torch.float64), atol=1e-4), out
    assert all(b <= a for a, b in zip(seen, seen[1:], strict=False))
    assert out.evaluations >= out.steps and out.extra["loss"] == out.loss


def test_a_loss_scaled_by_1e_minus_7_takes_the_same_path():
    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    plain, tiny = minimize(rosenbrock(), x0, 30), minimize(rosenbrock(1e-7), x0, 30)
    assert torch.allclose(plain.x, tiny.x, rtol=1e-6, atol=1e-9) and plain.steps == tiny.steps == 30


def test_it_stops_at_a_stationary_point_and_says_so():
    def flat(x):
        return 1.0, torch.zeros_like(x), None

    out = minimize(flat, torch.zeros(3), 10)
    assert out.steps == 0 and out.evaluations == 1 and out.stopped == "zero gradient: a stationary point"


def test_a_loss_that_never_decreases_is_reported_not_looped():
    def nan_after_start(x):  # every trial point is NaN: no step can be accepted
        loss = float(x.sum()) if bool((x == 0).all()) else float("nan")
        return loss, torch.ones_like(x), None

    out = minimize(nan_after_start, torch.zeros(3), 10)
    assert out.steps == 0 and out.stopped.startswith("no decrease found in")

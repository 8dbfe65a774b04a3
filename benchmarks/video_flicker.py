"""Flicker of feed-forward stylization on clips with a known camera motion, frame by frame against
flow-guided blending (algorithms/temporal.py), side by side in one run.

Each clip is a pan or a zoom over a photo (24 frames at 128 px, made here: the motion is known and
nothing is downloaded). The shipped AdaIN decoder and fast network stylize every frame; then the
same frames are blended with the previous output warped by the input's optical flow where that
flow is reliable (``temporal_weight``). Reported per algorithm, mean over the clips: the warping
error (mean squared difference between each output frame and the previous one warped onto it,
over the reliable pixels; the input clip's own is the floor the flow leaves) and the mean
style_distance of the frames, with their ratios blended / frame by frame. The target (issue 32):
the warping error at most half, the style distance up by at most 10 %.

    python benchmarks/video_flicker.py                     # 4 clips x 2 algorithms (a few minutes)
    python benchmarks/video_flicker.py --strip strip.jpg   # also a picture: frames of one clip, both ways
    python benchmarks/video_flicker.py --smoke-test        # 1 clip, 6 frames at 64 px
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PHOTOS = ("tubingen.jpg", "astronaut.jpg")
PAINTINGS = ("the_scream.jpg", "woman_with_hat.jpg")


def camera_clip(photo: torch.Tensor, frames: int, size: int, motion: str) -> list[torch.Tensor]:
    """``frames`` crops of ``photo`` (4:3, ``size`` px wide) along a pan (2 px right and 0.5 px
    down per frame) or a zoom (2 % in per frame, towards the centre)."""
    h, w = photo.shape[-2:]
    scale = 1.5 * size / min(h, w)
    big = F.interpolate(photo, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    bh, bw = big.shape[-2:]
    out_h, out_w = round(0.75 * size), size
    clip = []
    for t in range(frames):
        if motion == "pan":
            ch, cw, y0, x0 = out_h, out_w, 4 + 0.5 * t, 4 + 2.0 * t
        else:
            z = 1.02**t
            ch, cw = out_h * 1.4 / z, out_w * 1.4 / z
            y0, x0 = (bh - ch) / 2, (bw - cw) / 2
        theta = torch.tensor([[cw / bw, 0, (2 * x0 + cw) / bw - 1], [0, ch / bh, (2 * y0 + ch) / bh - 1]])
        grid = F.affine_grid(theta[None].float(), [1, 3, out_h, out_w], align_corners=False)
        clip.append(F.grid_sample(big, grid, mode="bilinear", align_corners=False).clamp(0, 1))
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--temporal-weight", type=float, default=0.5)
    parser.add_argument("--algorithms", nargs="+", default=["adain", "johnson"])
    parser.add_argument("--strip", type=Path, default=None, help="write frames of the first clip, both ways")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    from algorithms import get_algorithm
    from algorithms.metrics import quality
    from algorithms.temporal import blend_clip, clip_flows, warping_error
    from orchestrator.images import read_image, to_tensor

    torch.manual_seed(0)
    clips = [(p, s, m) for p, s in zip(PHOTOS, PAINTINGS, strict=True) for m in ("pan", "zoom")]
    if args.smoke_test:
        args.frames, args.size, clips = 6, 64, clips[:1]
    totals: dict[str, dict[str, list[float]]] = {}
    floor = []
    strip = []
    for photo_name, painting, motion in clips:
        photo = to_tensor(read_image(REPO / "samples" / "content" / photo_name))
        style = to_tensor(read_image(REPO / "samples" / "style" / painting, max_side=256))
        frames = camera_clip(photo, args.frames, args.size, motion)
        flows, masks = clip_flows(frames)
        floor.append(warping_error(frames, flows, masks))
        for name in args.algorithms:
            algo = get_algorithm(name)
            outs = [algo.stylize(f, [style], algo.default_params()).image for f in frames]
            steady = blend_clip(outs, flows, masks, args.temporal_weight)
            t = totals.setdefault(name, {k: [] for k in ("error", "error_b", "style", "style_b")})
            t["error"].append(warping_error(outs, flows, masks))
            t["error_b"].append(warping_error(steady, flows, masks))
            t["style"].append(
                sum(quality(o, f, style).style_distance for o, f in zip(outs, frames, strict=True))
                / len(outs)
            )
            t["style_b"].append(
                sum(quality(o, f, style).style_distance for o, f in zip(steady, frames, strict=True))
                / len(outs)
            )
            if not strip:
                strip = [frames, outs, steady]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(f"flicker on {len(clips)} clips of {args.frames} frames at {args.size} px "
          f"(pans and zooms over {', '.join(PHOTOS)}), temporal_weight {args.temporal_weight}:")  # fmt: skip
    print(f"  input clips' own warping error (the flow's floor): {mean(floor):.2e}")
    print(
        "  algorithm   warping error: frame by frame  blended  ratio   style_distance: frame by frame  blended  ratio"
    )
    result = {"floor": mean(floor)}
    for name, t in totals.items():
        e, eb, s, sb = (mean(t[k]) for k in ("error", "error_b", "style", "style_b"))
        print(
            f"  {name:<10}  {e:>28.2e}  {eb:>7.2e}  {eb / e:>5.2f}   {s:>30.3f}  {sb:>7.3f}  {sb / s:>5.3f}"
        )
        result[name] = {"error_ratio": eb / e, "style_ratio": sb / s}
    if args.strip and strip:
        from torchvision.utils import save_image

        picks = [0, len(strip[0]) // 3, 2 * len(strip[0]) // 3, len(strip[0]) - 1]
        save_image(
            torch.cat([row[i] for row in strip for i in picks]), str(args.strip), nrow=len(picks), padding=2
        )
        print(f"  frames {picks} of the first clip (input, frame by frame, blended): {args.strip}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

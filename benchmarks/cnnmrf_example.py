"""stylegrid's ``mrf`` on CNNMRF's own published example, at CNNMRF's settings, beside its
published result: the portrait x Picasso pair of chuanli11/CNNMRF (``data/content/potrait1.jpg``,
``data/style/picasso.jpg``, result ``data/examples/Interpolation/3_balanced.png``).

CNNMRF's settings (``run_trans.lua``, the "balanced" line): 384 px, 3 resolutions of 100 L-BFGS
iterations, MRF on relu3_1 and relu4_1 with weight 1e-4 each on the raw features, 3x3 patches,
sample and synthesis stride 2, one rotation and one scale each way, content relu4_2 with weight 20
(a mean squared error), matches at every evaluation, start from the photo. stylegrid's losses are
relative (``losses.py``), so the two weights are translated with the pair's own activations:
CNNMRF's MRF gradient is 1e-4 x (feature - match) summed over positions, its content gradient
40/N x (feature - target), hence, in stylegrid's units, relu_l's weight over the content's is
1e-4 N_l m_l / 2 / (20 m_c) (N_l the layer's number of values at 384 px, m_l the style's mean
squared activation there, m_c the photo's at relu4_2). The pyramid's balance (a quarter per level
coarser) is ``mrf``'s own.

The images are CNNMRF's (MIT code; the pictures' rights are not stated), so this script reads
them from a checkout and writes the comparison to a local file; none of it is committed.

    git clone https://github.com/chuanli11/CNNMRF /tmp/CNNMRF
    python benchmarks/cnnmrf_example.py --cnnmrf /tmp/CNNMRF --out cnnmrf_example.png   # about a minute
    python benchmarks/cnnmrf_example.py --cnnmrf /tmp/CNNMRF --weight-scale 0.5          # half the weights
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZE = 384
MRF_WEIGHT, CONTENT_WEIGHT = 1e-4, 20.0  # CNNMRF's, on raw caffe features


def equivalent_layer_weights(content, style, layers=("relu3_1", "relu4_1")) -> tuple[float, ...]:
    """CNNMRF's per-layer MRF weights in stylegrid's relative units, content weight 1."""
    import torch
    from stylegrid.algorithms.shared.vgg import get_encoder

    enc = get_encoder((*layers, "relu4_2"), source="caffe")
    with torch.no_grad():
        fc, fo, fs = enc(content, ("relu4_2",)), enc(content, layers), enc(style, layers)
    m_c = float(fc["relu4_2"].pow(2).mean())
    return tuple(
        MRF_WEIGHT * fo[name].numel() * float(fs[name].pow(2).mean()) / 2 / (CONTENT_WEIGHT * m_c)
        for name in layers
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnnmrf", required=True, help="a checkout of chuanli11/CNNMRF")
    parser.add_argument("--out", default="cnnmrf_example.png", help="the side-by-side PNG to write")
    parser.add_argument("--steps", type=int, default=300, help="100 per resolution, as CNNMRF")
    parser.add_argument(
        "--weight-scale", type=float, default=1.0, help="a factor on the translated MRF weights (1: CNNMRF's)"
    )
    args = parser.parse_args()
    root = Path(args.cnnmrf)
    files = {
        "content": root / "data" / "content" / "potrait1.jpg",
        "style": root / "data" / "style" / "picasso.jpg",
        "cnnmrf": root / "data" / "examples" / "Interpolation" / "3_balanced.png",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        print(f"cnnmrf_example: not a CNNMRF checkout, missing {', '.join(missing)}", file=sys.stderr)
        return 2

    from PIL import Image
    from stylegrid.algorithms import get_algorithm
    from stylegrid.algorithms.shared.metrics import quality
    from stylegrid.orchestrator.images import load_image, to_pil

    content, style = load_image(files["content"], SIZE), load_image(files["style"], SIZE)
    theirs = load_image(files["cnnmrf"])
    w3, w4 = equivalent_layer_weights(content, style)
    mrf = get_algorithm("mrf")
    params = mrf.params_type(
        steps=args.steps, scales=3, style_weight=args.weight_scale, mrf_layer_weights=(w3, w4), style_rotations=1,
        style_rescales=1, match_every=0, style_scale=1.0, content_weight=1.0, tv_weight=0.0,
    )  # fmt: skip
    start = time.perf_counter()
    ours = mrf.stylize(content, [style], params).image
    seconds = time.perf_counter() - start
    print(f"CNNMRF's weights in stylegrid's units: relu3_1 {w3:.2f}, relu4_1 {w4:.2f} (content 1)")
    for name, image in (("stylegrid mrf", ours), ("CNNMRF (published)", theirs)):
        q = quality(image, content, style)
        print(f"{name:20s} " + "  ".join(f"{k} {v:.3f}" for k, v in q.as_dict().items()))
    print(f"stylegrid mrf: {seconds:.0f} s on this machine")
    tiles = [to_pil(content), to_pil(style), to_pil(ours), to_pil(theirs)]
    h = SIZE
    tiles = [t.resize((round(t.width * h / t.height), h)) for t in tiles]
    sheet = Image.new("RGB", (sum(t.width for t in tiles), h), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width
    sheet.save(args.out)
    print(f"photo | painting | stylegrid mrf | CNNMRF's published result -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

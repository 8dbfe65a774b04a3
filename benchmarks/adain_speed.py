"""AdaIN images per second at 256 and 512 px for batch sizes 1, 4 and 16, beside a plain loop.

* ``stylegrid``  ``algorithms.feedforward.adain.algorithm.stylize_batch``: one call per batch (style statistics memoised,
                 bf16 where the CPU computes it natively, channels-last), as a catalog job runs it.
* ``plain``      the loop of pytorch-AdaIN's ``test.py``: one image at a time, fp32, the style
                 encoded again for every image, the same encoder and decoder modules.

Timings exclude model loading and one warm-up batch. Output quality does not enter (the decoder's
weights do not change the speed), so a randomly initialised decoder in the published layout is
used when no trained one is given with --decoder.

    python benchmarks/adain_speed.py                   # 256 and 512 px, batches 1, 4, 16
    python benchmarks/adain_speed.py --smoke-test      # 32 px, batches 1 and 2: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch  # noqa: E402
from stylegrid.algorithms.feedforward.adain.network import (  # noqa: E402
    AdaINParams,
    decoder_layout,
    get_adain_encoder,
    get_decoder,
)
from stylegrid.algorithms.shared.instance_norm import CONTENT_LAYER, adain  # noqa: E402

from benchmarks.common import load_pair  # noqa: E402


def plain_loop(contents: torch.Tensor, style: torch.Tensor, decoder_path: str) -> None:
    """pytorch-AdaIN's test.py: per image, encode content and style, AdaIN, decode."""
    encoder = get_adain_encoder("caffe", "cpu")
    decoder = get_decoder(decoder_path, "cpu")
    with torch.no_grad():
        for c in contents:
            fc = encoder(c[None], [CONTENT_LAYER])[CONTENT_LAYER]
            fs = encoder(style, [CONTENT_LAYER])[CONTENT_LAYER]
            decoder(adain(fc, fs)).clamp(0, 1)


def measure(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_images * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--images", type=int, default=32, help="images per measurement")
    ap.add_argument("--decoder", help="a decoder file with its .json (default: random weights)")
    ap.add_argument("--smoke-test", action="store_true")
    args = ap.parse_args()
    if args.smoke_test:
        args.sizes, args.batches, args.images = [32], [1, 2], 2

    with tempfile.TemporaryDirectory() as tmp:
        decoder = args.decoder
        if decoder is None:
            decoder = str(Path(tmp) / "random_decoder.pth")
            torch.manual_seed(0)
            torch.save(decoder_layout().state_dict(), decoder)
            Path(decoder).with_suffix(".json").write_text(json.dumps({"encoder": "caffe"}))
        params = AdaINParams(decoder=decoder)
        rows = []
        for size in args.sizes:
            image, style = load_pair(size)
            for batch in args.batches:
                contents = image.expand(batch, -1, -1, -1).contiguous()
                repeats = max(1, args.images // batch)
                cache: dict = {}
                ips = measure(
                    lambda c=contents, s=style, k=cache: stylize_batch(c, [s], params, cache=k),
                    batch,
                    repeats,
                )
                rows.append({"variant": "stylegrid", "size": size, "batch": batch, "images_per_s": ips})
                print(json.dumps(rows[-1]), flush=True)
            plain = measure(lambda i=image, s=style: plain_loop(i, s, decoder), 1, args.images)
            rows.append({"variant": "plain", "size": size, "batch": 1, "images_per_s": plain})
            print(json.dumps(rows[-1]), flush=True)

    print(f"\n{'variant':<10} {'size':>5} {'batch':>6} {'images/s':>9} {'vs plain':>9}")
    for r in rows:
        base = next(p for p in rows if p["variant"] == "plain" and p["size"] == r["size"])
        print(
            f"{r['variant']:<10} {r['size']:>5} {r['batch']:>6} {r['images_per_s']:>9.2f} "
            f"{r['images_per_s'] / base['images_per_s']:>8.2f}x"
        )


if __name__ == "__main__":
    main()

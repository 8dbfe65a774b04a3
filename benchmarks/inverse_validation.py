"""The style-swap inverse network's held-out loss beside its peer, in one run: the paper's objective
(feature loss on swapped relu3_1 features + TV) on the held-out images of a training spec, for the
shipped inverse network and for the WCT relu3_1 reconstruction decoder it started from (a decoder
that never saw swapped features: the comparison of Chen & Schmidt's section 4).

    python benchmarks/inverse_validation.py                       # the shipped files, 128 and 256 px crops
    python benchmarks/inverse_validation.py --networks default runs/x/style_swap_inverse.pth
    python benchmarks/inverse_validation.py --smoke-test          # the sample images, 64 px crops

``--networks`` takes files or the keywords ``default`` (the shipped inverse network) and ``wct``
(the shipped WCT decoders' relu3_1). The held-out images are the spec's (``held_out_sha256``): the
first ``--images`` photos and paintings by name, each photo swapped with one painting, as the
training's own ``val_feature_loss`` is computed; the 128 px row at the spec's settings is that
curve's last value for the network the spec trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPEC = REPO / "experiments" / "train_style_swap_default.yaml"
SAMPLES = REPO / "samples"


def network_file(name: str) -> str:
    """A ``--networks`` entry as what ``get_inverse`` loads."""
    if name == "wct":
        from stylegrid.algorithms.feedforward.wct.decoders import DEFAULT_DECODERS

        return str(DEFAULT_DECODERS)
    return name


def held_out_images(spec_path: Path, spec, count: int) -> dict:
    """The spec's held-out photos and paintings, the first ``count`` of each by name."""
    from stylegrid.orchestrator.specs.loading import resolve_image_locations, spec_dir
    from stylegrid.orchestrator.train.held_out import first_images, split_held_out

    base = spec_dir(spec_path)
    images = {}
    for what in ("content", "style"):
        locations = resolve_image_locations(getattr(spec, what), base, what, spec_path)
        _, held = split_held_out(locations, spec.held_out_sha256)
        if not held:
            raise SystemExit(f"{spec_path}: held_out_sha256 {spec.held_out_sha256} holds out no {what} image")
        images[what] = first_images(held, count)
    return images


def sample_images(count: int) -> dict:
    """The repository's sample photos and paintings (the smoke test: no corpus needed)."""
    from stylegrid.orchestrator.train.held_out import first_images

    return {
        "content": first_images([str(p) for p in (SAMPLES / "content").iterdir()], count),
        "style": first_images([str(p) for p in (SAMPLES / "style").iterdir()], count),
    }


def validation_losses(spec, images: dict, networks: list[str], crop: int) -> dict[str, dict]:
    """Each network's held-out losses at ``crop`` px crops (the shorter side resized to twice
    that, as the spec trains at 128 of 256)."""
    from stylegrid.algorithms.feedforward.style_swap.inverse import get_inverse
    from stylegrid.orchestrator.train.held_out import Validation
    from stylegrid.orchestrator.train.recipes import STYLE_SWAP

    device = torch.device("cpu")
    at = spec.model_copy(update={"crop": crop, "image_size": 2 * crop})
    validation = Validation.of(images, at, device)
    encoder = STYLE_SWAP.setup(at, None, device, "fp32")
    return {
        name: validation.losses(STYLE_SWAP, encoder, get_inverse(network_file(name), "cpu"), at, "fp32")
        for name in networks
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, default=SPEC, help="the training spec whose held-out images to use"
    )
    parser.add_argument("--networks", nargs="+", default=["default", "wct"])
    parser.add_argument("--crops", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--images", type=int, help="held-out photos and paintings (default: the spec's)")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()

    from stylegrid.orchestrator.specs.train import StyleSwapTrainSpec, load_train_spec

    spec = load_train_spec(args.spec, StyleSwapTrainSpec)
    count = args.images or spec.validation_images
    if args.smoke_test:
        args.crops, count = [64], 2
        images = sample_images(count)
    else:
        images = held_out_images(args.spec, spec, count)
    torch.manual_seed(0)
    print(f"held-out {len(images['content'])} photos x {len(images['style'])} paintings ({args.spec.name})")
    print(f"{'crop':>5} {'network':<40} {'feature':>8} {'tv':>8} {'total':>8}  vs {args.networks[0]}")
    for crop in args.crops:
        losses = validation_losses(spec, images, args.networks, crop)
        first = losses[args.networks[0]]["val_feature_loss"]
        for name, values in losses.items():
            ratio = values["val_feature_loss"] / first
            print(
                f"{crop:>5} {Path(name).name:<40} {values['val_feature_loss']:>8.4f} "
                f"{values.get('val_tv_loss', float('nan')):>8.4f} {values['val_loss']:>8.4f}  {ratio:.2f}x"
            )


if __name__ == "__main__":
    main()

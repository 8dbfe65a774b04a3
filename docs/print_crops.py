"""A large result as the README shows it: a downscaled copy of the whole and a crop at full size.

    python docs/print_crops.py big.png --center 1792 1792 --out docs/gatys_4096

writes ``docs/gatys_4096_small.jpg`` (the whole, 1024 px on the long side) and
``docs/gatys_4096_crop.jpg`` (``--crop`` px wide and 2/3 as high at full size, centred on
``--center``, clipped to the image: put the centre on a tile corner to look for seams).
"""

from __future__ import annotations

import argparse

from PIL import Image


def crop_box(size: tuple[int, int], center: tuple[int, int], width: int, height: int) -> tuple[int, ...]:
    """(left, top, right, bottom) of a ``width`` x ``height`` box centred on ``center``, moved to
    lie inside an image of ``size`` (width, height)."""
    left = min(max(0, center[0] - width // 2), max(0, size[0] - width))
    top = min(max(0, center[1] - height // 2), max(0, size[1] - height))
    return left, top, min(size[0], left + width), min(size[1], top + height)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--center", type=int, nargs=2, metavar=("X", "Y"), required=True)
    ap.add_argument("--crop", type=int, default=768, help="crop width in px (default 768)")
    ap.add_argument("--small", type=int, default=1024, help="long side of the whole's copy (default 1024)")
    ap.add_argument("--out", required=True, help="path prefix of the two JPEG files")
    args = ap.parse_args()
    image = Image.open(args.image).convert("RGB")
    small = image.copy()
    small.thumbnail((args.small, args.small), Image.Resampling.LANCZOS)
    small.save(f"{args.out}_small.jpg", quality=88)
    box = crop_box(image.size, tuple(args.center), args.crop, args.crop * 2 // 3)
    image.crop(box).save(f"{args.out}_crop.jpg", quality=92)
    print(f"{image.size[0]}x{image.size[1]} -> {args.out}_small.jpg {small.size}, {args.out}_crop.jpg {box}")


if __name__ == "__main__":
    main()

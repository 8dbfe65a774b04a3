"""Reading and writing images: the one place where files become tensors.

Conversion policy (every input ends as 8-bit RGB, then float RGB in [0, 1]):

* EXIF orientation is applied first (a phone photo comes out upright).
* Grey (L), 1-bit, palette (P) and CMYK images are converted to RGB with Pillow's converters;
  a palette with transparency is handled as RGBA.
* Transparency (RGBA, LA, PA, palette with a transparent index) is composited over white.
* 16- and 32-bit integer images are scaled from their full range to 0..255 (x / 257 for 16-bit).
* Float images (mode F) are read as 0..1 when their maximum is at most 1, else as 0..255;
  values outside the range are clipped.
* Images are resized so that their long side is at most ``max_side`` with Lanczos resampling;
  smaller images are never upscaled here (``resize_to`` upscales content images on purpose).
* Size policy: output and style sizes lie in 16..8192 px (``$STYLEGRID_MAX_SIZE`` raises the top);
  an image whose short side would fall under 16 px once resized is refused before any pixel is
  allocated (an 8000x200 panorama needs a size of at least 640).

Refused, with an ``ImageError`` naming the file and the reason: missing paths and folders, empty
files, files that are not images, truncated or corrupt data, images under 16 px on a side (VGG-19
pools four times), and decompression bombs (more than ``MAX_PIXELS`` pixels declared).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from stylegrid.algorithms.shared import sizing
from stylegrid.algorithms.shared.vgg import MIN_SIDE

from .limits import DEFAULT_MAX_SIZE, MAX_SIZE_ENV, check_size, size_limit  # noqa: F401  (re-exported)
from .storage import locations as storage
from .storage.files import write_atomic
from .storage.location import Location

MAX_PIXELS = 64_000_000  # 8000 x 8000; a PNG header can declare far more than memory holds


class ImageError(ValueError):
    """A file that cannot be used as an image; ``str()`` is a one-line message naming it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Apply the conversion policy of the module docstring to a loaded image."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        full = 65535.0 if mode.startswith("I;16") or arr.max() <= 65535 else 2.0**32 - 1
        return Image.fromarray(np.clip(arr / full * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr * 255.0 if np.nanmax(arr) <= 1.0 else arr
        return Image.fromarray(np.clip(np.nan_to_num(arr) + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def read_image(path: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Open, validate and convert an image file to 8-bit RGB (see the module docstring)."""
    return decode_image(read_bytes(path), path, max_side)


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes (a local path or a URI such as ``s3://bucket/photo.jpg``); an
    ``ImageError`` naming it when it is missing, a folder or unreadable."""
    try:
        return Location.of(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image file") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read ({exc.strerror or exc})") from None


def read_checked_images(
    locations: list[str] | tuple[str, ...], max_side: int | None
) -> list[tuple[str, bytes]]:
    """(absolute path or URI, bytes) per location, in order, each checked to decode (an
    ``ImageError`` names the file): style images read once by a driver and handed to its workers."""
    images = []
    for location in locations:
        path = storage.absolute(location)
        data = read_bytes(path)
        decode_image(data, path, max_side)
        images.append((path, data))
    return images


def decode_image(data: bytes, name: str | os.PathLike, max_side: int | None = None) -> Image.Image:
    """Validate and convert an encoded image (a file's bytes) to 8-bit RGB; ``name`` is for errors."""
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size  # from the header, before any pixel is decoded
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        name,
                        f"decompression bomb refused: declares {w}x{h} pixels "
                        f"({w * h / 1e6:.0f} MP, limit {MAX_PIXELS / 1e6:.0f} MP)",
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(name, f"decompression bomb refused: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow signals bad data with these
        raise ImageError(name, f"truncated or corrupt image data ({exc})") from None
    if min(rgb.size) < MIN_SIDE:
        raise ImageError(
            name, f"too small: {rgb.size[0]}x{rgb.size[1]} pixels, at least {MIN_SIDE} on each side"
        )
    if max_side is not None and max(rgb.size) > max_side:
        rgb = _resize_long(rgb, max_side, name)
    return rgb


def fitted_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) scaled so that the long side is ``long_side`` (PIL's order of
    ``sizing.fitted_size``, the one rule for every size)."""
    h, w = sizing.fitted_size(height, width, long_side)
    return w, h


def _resize_long(img: Image.Image, long_side: int, name: str | os.PathLike = "image") -> Image.Image:
    w, h = img.size
    nw, nh = fitted_size(w, h, long_side)
    if min(nw, nh) < MIN_SIDE:  # refused before any pixel is allocated
        need = math.ceil(MIN_SIDE * max(w, h) / min(w, h))
        raise ImageError(
            name,
            f"{w}x{h} at a long side of {long_side} px would be {nw}x{nh}, under {MIN_SIDE} px "
            f"on the short side (this shape needs a size of at least {need})",
        )
    return img.resize((nw, nh), Image.Resampling.LANCZOS)


def resize_to(img: Image.Image, long_side: int, name: str | os.PathLike = "image") -> Image.Image:
    """Resize so that the long side is exactly ``long_side`` (Lanczos, up or down); an
    ``ImageError`` naming ``name`` when the short side would fall under MIN_SIDE."""
    return img if max(img.size) == long_side else _resize_long(img, long_side, name)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float tensor [1, 3, H, W] in [0, 1]."""
    arr = np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """Float tensor [1, 3, H, W] or [3, H, W] in [0, 1] -> 8-bit RGB PIL image (clamped, rounded)."""
    x = image.detach().float().cpu()
    x = x[0] if x.dim() == 4 else x
    arr = (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


def load_image(path: str | os.PathLike, max_side: int | None = None) -> torch.Tensor:
    return to_tensor(read_image(path, max_side))


def png_bytes(image: torch.Tensor | Image.Image) -> bytes:
    return encode_image(image, "PNG")


# The formats an output path's extension names (PIL's names) and how each is written: full
# quality where the format has a knob.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
    "TIFF": {"compression": "tiff_deflate"},
}


def encode_image(image: torch.Tensor | Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    pil = image if isinstance(image, Image.Image) else to_pil(image)
    pil.save(buf, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    return buf.getvalue()


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically in the format its extension names (``FORMATS``)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the extension names the format; give one of {', '.join(FORMATS)}")
    return write_atomic(path, encode_image(image, FORMATS[suffix]))


def save_png(image: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (a temporary file in the same folder, then a rename)."""
    return write_atomic(path, png_bytes(image))

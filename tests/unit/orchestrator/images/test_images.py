"""Image input policy: every mode becomes 8-bit RGB, bad files get a one-line error naming them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import BAD
from helpers import CONVERTED, REFUSED
from PIL import Image
from stylegrid.orchestrator.images import (
    MAX_PIXELS,
    ImageError,
    load_image,
    read_image,
    resize_to,
    save_png,
    to_pil,
    to_tensor,
)


def test_the_shared_bad_inputs_are_all_covered():
    assert sorted(p.name for p in BAD.iterdir()) == sorted([*REFUSED, *CONVERTED])


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_files_are_refused_with_the_file_and_reason(name):
    with pytest.raises(ImageError) as info:
        read_image(BAD / name)
    msg = str(info.value)
    assert msg.startswith(str(BAD / name) + ": ")
    assert REFUSED[name] in msg
    assert "\n" not in msg


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_grayscale_becomes_equal_rgb_channels():
    img = read_image(BAD / "grayscale.png")
    arr = np.asarray(img)
    assert img.mode == "RGB" and arr.shape == (300, 451, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_rgba_is_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    path = tmp_path / "a.png"
    rgba.save(path)
    arr = np.asarray(read_image(path))
    assert tuple(arr[5, 5]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (0, 0, 255)
    assert read_image(BAD / "rgba.png").mode == "RGB"


def _save(img: Image.Image, tmp_path, name: str, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_palette_cmyk_16bit_and_float(tmp_path):
    p = Image.new("P", (20, 20), 0)
    p.putpalette([10, 20, 30] * 256)
    assert tuple(np.asarray(read_image(_save(p, tmp_path, "p.png")))[3, 3]) == (10, 20, 30)

    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    rgb = np.asarray(read_image(_save(cmyk, tmp_path, "c.jpg", quality=100)))
    assert rgb[5, 5, 0] > 240 and rgb[5, 5, 1] < 15 and rgb[5, 5, 2] < 15

    i16 = Image.fromarray(np.full((20, 20), 65535 // 2, dtype=np.uint16))
    assert i16.mode.startswith("I;16")
    arr = np.asarray(read_image(_save(i16, tmp_path, "g16.png")))
    assert abs(int(arr[0, 0, 0]) - 128) <= 1

    f01 = Image.fromarray(np.full((20, 20), 0.25, dtype=np.float32), mode="F")
    assert abs(int(np.asarray(read_image(_save(f01, tmp_path, "f01.tiff")))[0, 0, 0]) - 64) <= 1
    f255 = Image.fromarray(np.full((20, 20), 300.0, dtype=np.float32), mode="F")
    assert int(np.asarray(read_image(_save(f255, tmp_path, "f255.tiff")))[0, 0, 0]) == 255


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    path = _save(img, tmp_path, "rot.jpg", exif=exif.tobytes(), quality=100)
    out = read_image(path)
    assert out.size == (20, 40)  # upright: portrait
    arr = np.asarray(out)
    assert arr[5, 10].mean() > 200 and arr[35, 10].mean() < 50  # the white half is now on top


def test_decompression_bomb_is_refused_from_the_header_alone(tmp_path):
    side = int(MAX_PIXELS**0.5) + 10
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG")
    path = tmp_path / "bomb.png"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(path)


def test_max_side_downscales_only_and_resize_to_is_exact(tmp_path):
    path = _save(Image.new("RGB", (400, 200), (10, 200, 30)), tmp_path, "w.png")
    assert read_image(path, max_side=100).size == (100, 50)
    assert read_image(path, max_side=1000).size == (400, 200)
    assert resize_to(read_image(path), 800).size == (800, 400)
    t = load_image(path, max_side=100)
    assert t.shape == (1, 3, 50, 100) and t.dtype == torch.float32
    assert torch.allclose(t[0, :, 10, 10], torch.tensor([10, 200, 30]) / 255.0, atol=1 / 255)


def test_tensor_png_round_trip_is_exact(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8))
    path = save_png(to_tensor(img), tmp_path / "sub" / "x.png")
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(img))
    assert to_pil(torch.full((1, 3, 2, 2), 2.0)).getpixel((0, 0)) == (255, 255, 255)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary file left

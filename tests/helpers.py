"""Helpers shared by test files in different folders (unit/, system/): running the command line
as a user does, the shared bad inputs' expected outcomes, a test clip, a headless browser.
Imported by name (``from helpers import ...``): the folder of the top conftest.py is on sys.path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SAMPLES
from stylegrid.orchestrator.cli.main import main
from stylegrid.orchestrator.images import read_image, to_tensor

CONTENT = SAMPLES / "content" / "chelsea.jpg"
STYLE = SAMPLES / "style" / "the_scream.jpg"


def stylegrid(*args: str) -> subprocess.CompletedProcess:
    """A real process (the entry point as a user starts it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stylegrid", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


def run_args(out, content=CONTENT, style=STYLE, *extra):
    return (
        "run",
        "--content",
        content,
        "--style",
        style,
        "--out",
        out,
        "--size",
        "48",
        "--steps",
        "4",
        *extra,
    )


def cli(capsys, *argv) -> tuple[int, str, str]:
    """``stylegrid ARGV`` in this process (the subprocess path is test_cli.py's): status, out, err."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(result: tuple[int, str, str], code: int, fragment: str) -> None:
    status, _, err = result
    assert status == code and len(err.strip().splitlines()) == 1 and fragment in err, (status, err)


REFUSED = {
    "empty.jpg": "empty file",
    "not_an_image.jpg": "not an image",
    "truncated.jpg": "truncated or corrupt",
    "one_pixel.png": "too small: 1x1",
    "huge_dimensions.png": "decompression bomb refused: Image size (900000000 pixels)",
}
CONVERTED = ["grayscale.png", "rgba.png"]


def make_clip(path: Path, frames: int = 24, size: int = 128, *, audio: bool = True, audio_codec: str = "aac",
              pts: list[int] | None = None, time_base: Fraction = Fraction(1, 24)) -> Path:  # fmt: skip
    """A pan over a sample photo (known motion) as H.264, with a tone as audio (AAC by default)."""
    import av
    from stylegrid.algorithms.video.temporal import camera_clip

    photo = to_tensor(read_image(SAMPLES / "content" / "tubingen.jpg"))
    clip = camera_clip(photo, frames, size, "pan")
    pts = pts or list(range(frames))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = clip[0].shape[-1], clip[0].shape[-2], "yuv420p"
        video.time_base = time_base
        sound = out.add_stream(audio_codec, rate=22050) if audio else None
        for t, frame in zip(pts, clip, strict=True):
            array = (frame[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            f = av.VideoFrame.from_ndarray(array, format="rgb24")
            f.pts, f.time_base = t, time_base
            out.mux(video.encode(f))
        out.mux(video.encode())
        if sound is not None:
            samples = int(22050 * frames / 24)
            for k in range(0, samples, 1024):
                tone = np.sin(np.arange(k, k + 1024) * 0.05).astype(np.float32) * 0.1
                a = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
                a.sample_rate, a.pts = 22050, k
                out.mux(sound.encode(a))
            out.mux(sound.encode())
    return path


def chromium():
    """A headless Chromium driven by chromedriver (Debian's packages: `.ci/run` installs them).
    Skipped where they are missing, unless STYLEGRID_REQUIRE_BROWSER=1 (CI) makes that a failure."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        message = "Debian's chromium and chromium-driver are not installed"
        if os.environ.get("STYLEGRID_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)

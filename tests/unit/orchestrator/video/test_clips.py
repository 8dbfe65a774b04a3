"""Reading a clip (``orchestrator/video/clips.py``) from a folder of frames: natural order, the
frames of ``--start`` / ``--duration`` at ``--fps``, even working sizes, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from stylegrid.orchestrator.video.clips import VideoError, natural_key, read_clip, working_size


def frames(folder, n, size=(40, 30)):
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), 10 * i, np.uint8)).save(folder / f"frame{i}.png")
    return folder


def test_frames_are_read_in_natural_order_from_start_for_duration(tmp_path):
    assert sorted(["frame10.png", "frame2.png", "Frame1.png"], key=natural_key) == [
        "Frame1.png",
        "frame2.png",
        "frame10.png",
    ]
    assert working_size(40, 30, 20) == (20, 16) and working_size(30, 40, 20) == (16, 20)  # even sides
    folder = frames(tmp_path / "f", 12)
    clip = read_clip(str(folder), 20, start=0.5, duration=0.25, fps=8)  # frames 4 and 5
    assert [int(f[0, 0, 0]) for f in clip.frames] == [40, 50]
    assert clip.frames[0].shape == (16, 20, 3) and clip.size == (20, 16)  # the working size


def test_bad_clips_are_refused_in_one_line(tmp_path):
    folder = frames(tmp_path / "f", 3)
    with pytest.raises(VideoError, match="a folder of frames needs --fps"):
        read_clip(str(folder), 20)
    with pytest.raises(VideoError, match="none in the range asked for"):
        read_clip(str(folder), 20, start=10, fps=8)
    with pytest.raises(VideoError, match="no such file or folder"):
        read_clip(str(tmp_path / "none"), 20)
    Image.new("RGB", (20, 20)).save(folder / "frame3.png")
    with pytest.raises(VideoError, match=r"frame3.png: 20x20 px, the frames before it 40x30"):
        read_clip(str(folder), 20, fps=8)
    with pytest.raises(VideoError, match="stylize it in parts"):
        read_clip(str(frames(tmp_path / "g", 3)), 20, fps=8, max_bytes=100)

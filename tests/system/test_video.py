"""``stylegrid stylize-video``: segments that join without a jump, the source's timestamps and
audio kept, less flicker than frame by frame, resuming after a kill, and bad inputs refused in one
line (the temporal maths itself: test_temporal.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, SAMPLES, cli_in_process
from helpers import make_clip
from stylegrid.orchestrator.video.clips import VideoError, clip_timestamps, read_clip, write_clip

STYLE = SAMPLES / "style" / "the_scream.jpg"


def test_a_clip_keeps_its_timestamps_and_bad_clips_are_refused_in_one_line(tmp_path):
    # a variable frame rate: every frame keeps its own time
    vfr = make_clip(tmp_path / "vfr.mp4", frames=6, size=64, audio=False, pts=[0, 1, 2, 4, 5, 7])
    clip = read_clip(str(vfr), 64)
    assert clip.variable_rate and not clip.audio and len(clip.frames) == 6
    assert [float(p * clip.time_base) for p in clip.pts] == pytest.approx(
        [0, 1 / 24, 2 / 24, 4 / 24, 5 / 24, 7 / 24], abs=1e-3
    )
    # --start and --duration choose frames by their time
    assert len(read_clip(str(vfr), 64, start=2 / 24, duration=3 / 24).frames) == 2
    with pytest.raises(VideoError, match=r"vfr.mp4: no frames between 9 s and 10 s"):
        read_clip(str(vfr), 64, start=9, duration=1)
    # audio the output's container cannot hold as it is (PCM in MP4) is encoded as AAC
    pcm = make_clip(tmp_path / "pcm.mkv", frames=6, size=64, audio_codec="pcm_s16le")
    clip = read_clip(str(pcm), 64)
    write_clip(tmp_path / "pcm.mp4", clip.frames, clip, audio_from=pcm)
    assert clip_timestamps(tmp_path / "pcm.mp4") == (
        pytest.approx([i / 24 for i in range(6)], abs=1e-3),
        True,
    )
    # a large source is scaled as it is decoded
    big = read_clip(str(make_clip(tmp_path / "big.mp4", frames=2, size=2560, audio=False)), 64)
    assert big.source_size == (2560, 1920) and big.size == (64, 48)
    with pytest.raises(
        VideoError, match=r"vfr.mp4: 4 frames of 64x48 px already take 0 MB, more than .* stylize it in parts"
    ):
        read_clip(str(vfr), 64, max_bytes=3 * 64 * 48 * 3)  # a clip longer than memory allows
    # not a video; truncated; frames without a rate
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match=r"notes.mp4: not a video FFmpeg can read"):
        read_clip(str(text), 64)
    for suffix in (".mp4", ".mkv"):
        data = make_clip(tmp_path / f"whole{suffix}", frames=24, size=64, audio=False).read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoError, match=r"cut.mp4: not a video FFmpeg can read"):  # its index was at the end
        read_clip(str(tmp_path / "cut.mp4"), 64)
    partial = read_clip(str(tmp_path / "cut.mkv"), 64)  # Matroska: the frames before the cut
    assert 0 < len(partial.frames) < 24
    assert len(partial.notes) == 1 and re.fullmatch(
        rf".*cut.mkv: its header says 1.00 s but the frames end at 0.\d\d s; the file may be truncated: "
        rf"stylizing the {len(partial.frames)} frames there are", partial.notes[0])  # fmt: skip
    frames = tmp_path / "frames"
    frames.mkdir()
    with pytest.raises(VideoError, match=r"frames: no frames"):
        read_clip(str(frames), 64, fps=24)
    for i in range(3):
        (frames / f"f{i + 8}.png").write_bytes((SAMPLES / "content" / "tubingen.jpg").read_bytes())
    with pytest.raises(VideoError, match="needs --fps"):
        read_clip(str(frames), 64)
    assert len(read_clip(str(frames), 64, fps=12).frames) == 3


def run_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "stylegrid", "stylize-video", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_clip_is_stylized_steadier_than_frame_by_frame_and_resumes_after_a_kill(tmp_path):
    """24 frames at 128 px with the shipped AdaIN decoder, in segments of 6: killed after its
    first segments, then run again: the finished segments are kept, the video has the source's
    timestamps and audio, and blending halves the flicker at most +10 % style_distance."""
    source = make_clip(tmp_path / "pan.mp4")
    out = tmp_path / "styled"
    args = [str(source), "--style", str(STYLE), "-o", str(out), "--size", "128", "--style-size", "128",
            "--segment-frames", "6", "--overlap", "2", "--engine", "local", "-q"]  # fmt: skip
    first = run_cli(*args)
    deadline = time.monotonic() + 240
    while not list(out.glob("segments/*/segment_00001.npz")):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = sorted(p.name for p in out.glob("segments/*/*.npz"))
    assert 2 <= len(kept) < 4 and not (out / "pan.mp4").exists()

    second = cli_in_process("stylize-video", *args[:-3], "--engine", "ray")  # the rest as Ray tasks
    assert second.returncode == 0, second.stderr
    assert f"{len(kept)} already done" in second.stdout + second.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    times, audio = clip_timestamps(out / "pan.mp4")
    assert times == pytest.approx(clip_timestamps(source)[0], abs=1e-3) and len(times) == 24 and audio
    m = manifest["measures"]
    assert m["warping_error"] <= 0.5 * m["frame_by_frame_warping_error"]
    assert m["style_distance"] <= 1.1 * m["frame_by_frame_style_distance"]
    assert manifest["frames"] == 24 and len(manifest["segments"]) == 4 and manifest["audio"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    run = client.get_run(manifest["mlflow_run_id"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"manifest.json", "preview.gif"}
    assert run.info.status == "FINISHED" and run.data.metrics["warping_error"] == pytest.approx(
        m["warping_error"]
    )
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == ["pan.mp4", "the_scream.jpg"]
    nodes = [s["node"] for s in manifest["segments"]]
    assert nodes[: len(kept)] == ["local"] * len(kept) and "local" not in nodes[len(kept) :]


def test_an_optimisation_algorithm_starts_each_frame_from_the_last_and_is_steadier(tmp_path):
    """Ruder et al.: from the second frame on, the warped previous output is the start and the
    temporal loss holds the reliable pixels; --baseline also stylizes every frame on its own, and
    that flickers more."""
    clip = make_clip(tmp_path / "pan.mkv", frames=3, size=64, audio=False)
    res = cli_in_process("stylize-video", clip, "--style", STYLE, "-o", tmp_path / "out", "--algorithm", "gatys",
                         "--size", "64", "--style-size", "64", "--set", "steps=15", "--baseline", "--engine", "local")  # fmt: skip
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())["measures"]
    assert m["warping_error"] < 0.5 * m["frame_by_frame_warping_error"]
    assert m["style_distance"] < 1.1 * m["frame_by_frame_style_distance"]
    assert clip_timestamps(tmp_path / "out" / "pan.mp4")[0] == pytest.approx([0, 1 / 24, 2 / 24], abs=1e-3)


def test_bad_video_arguments_are_one_line(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4, size=32, audio=False)
    res = cli_in_process("stylize-video", str(clip), "--style", str(STYLE), "-o", str(tmp_path / "o"),
                         "--algorithm", "adain", "--temporal-weight", "1.5")  # fmt: skip
    assert (
        res.returncode == 1
        and "temporal_weight 1.5: a feedforward algorithm takes 0 <= temporal_weight < 1" in res.stderr
    )
    res = cli_in_process(
        "stylize-video", str(tmp_path / "none.mp4"), "--style", str(STYLE), "-o", str(tmp_path / "o")
    )
    assert res.returncode == 1 and "none.mp4: no such file or folder" in res.stderr
    res = cli_in_process("stylize-video", str(clip), "--style", str(STYLE), "-o", str(tmp_path / "o"),
                         "--algorithm", "gatys", "--size", "4000", "--set", "memory_budget=1GB")  # fmt: skip
    assert res.returncode == 1 and "frames of 4000x3000 px need tiles within memory_budget=1GB" in res.stderr
    assert not list((tmp_path / "o").glob("segments/*/*"))  # refused before any work
    res = cli_in_process(
        "stylize-video", str(clip), "--style", str(STYLE), "-o", str(tmp_path / "o"), "--name", "x.gif"
    )
    assert res.returncode == 1 and "x.gif" in res.stderr and ".mp4, .mkv, .mov" in res.stderr

"""Reading and writing clips for ``stylegrid stylize-video`` (PyAV: FFmpeg's decoders, encoders and
muxers).

* ``read_clip``: a video file (any container FFmpeg reads) or a folder of frames (with ``fps``;
  ``local_copy`` brings an object-store URI's video here first); ``start`` and ``duration`` in seconds; every frame resized to
  ``size`` px on the long side (even sides, which H.264 needs). Each frame keeps its own timestamp,
  so a variable frame rate survives. A file that stops decoding part way (truncated, damaged) gives
  the frames before the damage and a note saying so; a file with no decodable frame in the range
  is refused with one line naming it.
* ``write_clip``: H.264 frames at the given timestamps, and the source's audio of the same span
  copied packet by packet (not re-encoded; AAC when the container cannot hold its codec, such as
  PCM in MP4), into a temporary file renamed into place when whole.

Frames are uint8 arrays [H, W, 3] (RGB).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..storage.location import Location

VIDEO_FORMATS = (".mp4", ".mkv", ".mov")  # H.264 in each; the source's audio copied
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ENCODER_CRF = "18"  # x264's constant-quality level: visually lossless for stylized frames
# The driver holds the clip's frames at the working size, and the stylized ones beside them (a
# network's frame-by-frame ones too): the input frames may take this share of the machine's memory.
CLIP_MEMORY_SHARE = 0.1


def clip_memory_limit() -> int:
    return int(CLIP_MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


class VideoError(ValueError):
    """A clip that cannot be read or written: the message names the file and the reason."""


@dataclass
class Clip:
    source: str
    frames: list[np.ndarray]  # uint8 [H, W, 3] at the working size
    pts: list[int]  # each frame's timestamp, in time_base units, the first one 0
    time_base: Fraction
    source_size: tuple[int, int]  # (width, height) of the source's frames
    start: float  # seconds of the source where the clip begins (its first frame's time)
    audio: bool  # the source has an audio stream (copied into the output)
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.frames[0].shape[:2]
        return w, h

    @property
    def seconds(self) -> float:
        """From the first frame's time to the last one's end (one mean frame duration after it)."""
        if len(self.pts) < 2:
            return 0.0
        span = float((self.pts[-1] - self.pts[0]) * self.time_base)
        return span * len(self.pts) / (len(self.pts) - 1)

    @property
    def fps(self) -> float:
        return len(self.pts) / self.seconds if self.seconds else 0.0

    @property
    def variable_rate(self) -> bool:
        steps = np.diff(self.pts)
        return len(steps) > 1 and int(steps.max()) - int(steps.min()) > max(1, 0.02 * float(np.median(steps)))


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) with the long side ``long_side`` and both sides even."""
    f = long_side / max(width, height)
    return max(2, 2 * round(width * f / 2)), max(2, 2 * round(height * f / 2))


def natural_key(name: str) -> list:
    """frame2 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[str]:
    """``source`` (a video or a folder of frames) as a path on this disk: FFmpeg reads files, and
    the audio is copied from the same file at the end (``Location.on_disk``)."""
    with Location.of(source).on_disk() as path:
        yield str(path)


def read_clip(source: str, size: int, *, start: float = 0.0, duration: float | None = None,
              fps: float | None = None, max_bytes: int | None = None) -> Clip:  # fmt: skip
    """The clip of ``source`` from ``start`` for ``duration`` seconds (to the end when None);
    refused, with the way out, when its frames would take more than ``max_bytes`` (default
    ``clip_memory_limit()``)."""
    max_bytes = clip_memory_limit() if max_bytes is None else max_bytes
    if start < 0 or (duration is not None and duration <= 0):
        raise VideoError(f"{source}: --start must be >= 0 and --duration > 0")
    path = Path(source)
    if not path.exists():
        raise VideoError(f"{source}: no such file or folder")
    if path.is_dir():
        if not fps or fps <= 0:
            raise VideoError(f"{source}: a folder of frames needs --fps (its frames carry no timestamps)")
        return _read_frames(path, size, start, duration, fps, max_bytes)
    if fps:
        raise VideoError(f"{source}: --fps is for a folder of frames; a video file has its own timestamps")
    return _read_video(path, size, start, duration, max_bytes)


def check_memory(source: object, frames: list[np.ndarray], max_bytes: int) -> None:
    held = len(frames) * frames[0].nbytes  # one size for every frame
    if held > max_bytes:
        h, w = frames[0].shape[:2]
        raise VideoError(
            f"{source}: {len(frames)} frames of {w}x{h} px already take {held / 2**20:.0f} MB, more than the "
            f"{max_bytes / 2**20:.0f} MB a clip may hold beside its stylized copies (a tenth of this machine's "
            "memory): stylize it in parts (--start, --duration) or lower --size"
        )


def _read_frames(folder: Path, size: int, start: float, duration: float | None, fps: float,
                 max_bytes: int) -> Clip:  # fmt: skip
    from ..images import read_image

    names = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=lambda p: natural_key(p.name)
    )
    first = math.ceil(start * fps - 1e-9)
    last = len(names) if duration is None else min(len(names), math.ceil((start + duration) * fps - 1e-9))
    chosen = names[first:last]
    if not chosen:
        raise VideoError(f"{folder}: no frames ({len(names)} image files; none in the range asked for)")
    frames, source_size, shape = [], (0, 0), None
    for path in chosen:
        img = read_image(path)  # a bad file raises a line naming it
        if shape is None:
            source_size = img.size
            shape = working_size(*img.size, size)
        elif img.size != source_size:
            raise VideoError(
                f"{path}: {img.size[0]}x{img.size[1]} px, the frames before it {source_size[0]}x{source_size[1]}"
            )
        frames.append(np.asarray(img.convert("RGB").resize(shape, resample=3)))
        check_memory(folder, frames, max_bytes)
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 2997/100: frame i at i / rate
    return Clip(str(folder), frames, list(range(len(frames))), 1 / rate, source_size, first / fps, False)


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a video FFmpeg can read ({exc})") from None


def _read_video(path: Path, size: int, start: float, duration: float | None, max_bytes: int) -> Clip:
    import av

    end = math.inf if duration is None else start + duration
    container = _open(path)
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90000)
        frames: list[np.ndarray] = []
        times: list[int] = []
        notes: list[str] = []
        shape = None
        source_size = (stream.codec_context.width, stream.codec_context.height)
        try:
            if start > 0:
                container.seek(int(start / tb), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * tb)
                if t < start - 1e-6:
                    continue
                if t >= end - 1e-6:
                    break
                if shape is None:
                    source_size = (frame.width, frame.height)
                    shape = working_size(frame.width, frame.height, size)
                frames.append(frame.to_ndarray(format="rgb24", width=shape[0], height=shape[1]))
                times.append(frame.pts)
                check_memory(path, frames, max_bytes)
        except (av.error.FFmpegError, EOFError) as exc:
            if not frames:
                raise VideoError(f"{path}: no frame could be decoded ({exc})") from None
            notes.append(f"{path}: decoding stopped after {len(frames)} frames ({exc}); the file may be "
                         f"truncated: stylizing the {len(frames)} frames before it")  # fmt: skip
        if not frames:
            if start == 0 and not math.isfinite(end):
                raise VideoError(f"{path}: no decodable video frame (an empty, cut or damaged file)")
            span = f"between {start:g} s and {end:g} s" if math.isfinite(end) else f"after {start:g} s"
            raise VideoError(f"{path}: no frames {span}")
        audio = bool(container.streams.audio)
        declared = _declared_seconds(container, stream)
        last = float(times[-1] * tb) + (float((times[-1] - times[0]) * tb) / max(1, len(times) - 1))
        if not notes and declared and min(end, declared) - last > 0.5 + 0.05 * declared:
            notes.append(f"{path}: its header says {declared:.2f} s but the frames end at {last:.2f} s; the "
                         f"file may be truncated: stylizing the {len(frames)} frames there are")  # fmt: skip
    first = times[0]
    return Clip(str(path), frames, [t - first for t in times], Fraction(tb), source_size,
                float(first * tb), audio, notes)  # fmt: skip


def _declared_seconds(container, stream) -> float | None:
    """The length the file's header gives (the stream's, else the container's), if any."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None


def write_clip(out: Path, frames: Iterable[np.ndarray], clip: Clip, *, audio_from: Path | None) -> Path:
    """Encode ``frames`` (one per ``clip.pts``) into ``out`` with the audio of ``audio_from``
    over the clip's span; the file appears only when complete."""
    import av

    if out.suffix.lower() not in VIDEO_FORMATS:
        raise VideoError(
            f"{out}: the output's extension names its container: one of {', '.join(VIDEO_FORMATS)}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with av.open(str(tmp), "w") as container:
            rate = Fraction(clip.fps).limit_denominator(1001) if clip.fps else Fraction(25)
            video = container.add_stream("libx264", rate=rate, options={"crf": ENCODER_CRF})
            video.width, video.height = clip.size
            video.pix_fmt = "yuv420p"
            video.time_base = clip.time_base
            audio_src = _audio_source(audio_from) if audio_from is not None else None
            copy = audio_src is not None and audio_copies(audio_from, out.suffix)
            if audio_src is None:
                audio_out = None
            elif copy:
                audio_out = container.add_stream_from_template(audio_src[1])
            else:  # a codec the container cannot hold (PCM in MP4): AAC
                channels = audio_src[1].codec_context.channels or 2  # its layout may have no name
                layout = {1: "mono", 6: "5.1", 8: "7.1"}.get(channels, "stereo")
                audio_out = container.add_stream("aac", rate=audio_src[1].rate or 48000, layout=layout)
            for array, pts in zip(frames, clip.pts, strict=True):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                frame.pts, frame.time_base = pts, clip.time_base
                container.mux(video.encode(frame))
            container.mux(video.encode())
            if audio_src:
                (_copy_audio if copy else _transcode_audio)(audio_src, audio_out, container, clip)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _audio_source(path: Path):
    container = _open(path)
    if not container.streams.audio:
        container.close()
        return None
    return container, container.streams.audio[0]


def _copy_audio(source, stream_out, container, clip: Clip) -> None:
    """The source's audio packets from the clip's start to its end, shifted to start at 0."""
    src, stream = source
    tb = stream.time_base
    start, end = clip.start, clip.start + clip.seconds
    offset = round(start / tb)
    with src:
        for packet in src.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * tb)
            if t < start - 1e-6 or t >= end:
                continue
            packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = stream_out
            container.mux(packet)


def audio_copies(source: Path, suffix: str) -> bool:
    """Whether the source's audio goes into a container of ``suffix`` packet by packet (tried
    on a scratch file with its first packet: FFmpeg's muxers say what they take only so)."""
    import av

    with _open(source) as src, tempfile.TemporaryDirectory() as tmp:
        stream = src.streams.audio[0]
        try:
            with av.open(str(Path(tmp) / f"probe{suffix}"), "w") as out:
                target = out.add_stream_from_template(stream)
                for packet in src.demux(stream):
                    if packet.pts is not None and packet.size:
                        packet.stream = target
                        out.mux(packet)
                        break
        except av.error.FFmpegError:
            return False
        return True


def _transcode_audio(source, stream_out, container, clip: Clip) -> None:
    """The source's audio over the clip's span, decoded and encoded as ``stream_out``'s codec."""
    import av

    src, stream = source
    start, end = clip.start, clip.start + clip.seconds
    resampler = av.AudioResampler(format=stream_out.format.name, layout=stream_out.layout.name,
                                  rate=stream_out.rate)  # fmt: skip
    written = 0
    with src:
        for frame in src.decode(stream):
            if frame.time is None or frame.time < start - 1e-6 or frame.time >= end:
                continue
            for part in resampler.resample(frame):
                part.pts, part.time_base = written, Fraction(1, stream_out.rate)
                written += part.samples
                container.mux(stream_out.encode(part))
    container.mux(stream_out.encode())


def clip_timestamps(path: Path) -> tuple[list[float], bool]:
    """Each video frame's time in seconds, and whether the file has audio (the tests' and the
    manifest's check of an output)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream) if f.pts is not None]
        return times, bool(container.streams.audio)

"""A video file to what VALOR's scripts read: frames at 8 fps and a 48 kHz mono waveform,
cut into the 10-second windows the models take.

Decoding is PyAV (FFmpeg's libraries in-process: no ``ffmpeg`` subprocess, no frame
folders). Frames pass FFmpeg's own ``fps`` filter (libavfilter, nearest frame), which is
what ``ffmpeg -r 8`` (VALOR utils/extract_frames.py:5-9) does to a constant-rate output.
Audio is decoded to 16-bit samples at the file's rate, averaged over channels and
resampled to 48 kHz with soxr's HQ filter, which is what ``librosa.load(path, sr=48000)``
does to an mp4 through its audioread fallback (VALOR utils/clap_preprocess.py:195).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av
import numpy as np
import soxr

from avvp_lit.extract.recipe import FRAME_RATE, SAMPLE_RATE, WINDOW_S
from avvp_lit.utils.errors import InputError

# a window's tail shorter than this is not a window of its own (it has no whole second)
MIN_WINDOW_S = 1.0


class DecodeError(InputError):
    """A file that cannot give frames and audio; the message says which and why."""


@dataclass(frozen=True)
class Window:
    """One model input: ``frames`` (N, H, W, 3) uint8 RGB at 8 fps and ``audio`` (S,)
    float32 mono at 48 kHz, for seconds [start, end) of ``source``."""

    id: str
    source: Path
    start: float
    end: float
    frames: np.ndarray
    audio: np.ndarray


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise DecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except av.FFmpegError as error:
        raise DecodeError(f"{path}: cannot be opened as a video ({error})") from None


def frames_at_rate(path: Path, fps: int = FRAME_RATE) -> Iterator[np.ndarray]:
    """Every frame of the first video stream resampled to ``fps`` by FFmpeg's fps filter,
    as (H, W, 3) uint8 RGB, in order."""
    with _open(path) as container:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        rate = graph.add("fps", str(fps))
        sink = graph.add("buffersink")
        source.link_to(rate)
        rate.link_to(sink)
        graph.configure()

        def pulled() -> Iterator[np.ndarray]:
            while True:
                try:
                    frame = graph.vpull()
                except (av.BlockingIOError, av.EOFError):
                    return
                yield frame.to_ndarray(format="rgb24")

        try:
            for frame in container.decode(stream):
                graph.vpush(frame)
                yield from pulled()
            graph.vpush(None)
            yield from pulled()
        except av.FFmpegError as error:
            raise DecodeError(f"{path}: video stream cannot be decoded ({error})") from None


def waveform(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream as (S,) float32 mono at ``sample_rate``: 16-bit samples at
    the file's rate (/ 32768), the mean of the channels, soxr HQ resampling."""
    with _open(path) as container:
        if not container.streams.audio:
            raise DecodeError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        to_s16 = av.AudioResampler(format="s16", layout=stream.layout.name, rate=stream.rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in to_s16.resample(frame))
            chunks.extend(f.to_ndarray() for f in to_s16.resample(None))
        except av.FFmpegError as error:
            raise DecodeError(f"{path}: audio stream cannot be decoded ({error})") from None
        channels = stream.channels
        rate = stream.rate
    if not chunks:
        raise DecodeError(f"{path}: the audio stream holds no samples")
    interleaved = np.concatenate([c.reshape(-1) for c in chunks])
    samples = interleaved.reshape(-1, channels).astype(np.float32) / 32768.0  # (S, C)
    mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    if rate == sample_rate:
        return np.ascontiguousarray(mono)
    return soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)


def window_id(stem: str, start: float, end: float, windows: int) -> str:
    """A one-window input keeps its name; windows of a longer one are named like LLP's
    clips, ``<stem>_<start>_<end>`` in whole seconds."""
    if windows == 1:
        return stem
    return f"{stem}_{int(round(start))}_{int(round(end))}"


def decode_windows(
    path: Path, window_s: float = WINDOW_S, *, name: str | None = None
) -> Iterator[Window]:
    """The windows of one video file, each with its frames and its audio: whole windows
    from 0 s, then the tail if it holds a whole second. An input with one window (shorter
    than ``window_s`` + 1 s) is one window of all its frames and samples, as VALOR's
    scripts read a clip. At most two windows of frames are held at a time. Window ids
    start with ``name`` (the file's stem unless given).

    Raises :class:`DecodeError` for a file without a video or an audio stream, an
    undecodable or an empty one.
    """
    path = Path(path)
    name = path.stem if name is None else name
    audio = waveform(path)
    per_window = round(window_s * FRAME_RATE)
    pieces: list[tuple[float, float, np.ndarray]] = []
    buffer: list[np.ndarray] = []
    emitted = 0

    def piece(frames: list[np.ndarray]) -> tuple[float, float, np.ndarray]:
        start = (emitted + len(pieces)) * window_s
        return start, start + len(frames) / FRAME_RATE, np.stack(frames)

    def window(start: float, end: float, frames: np.ndarray, count: int) -> Window:
        lo, hi = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        if audio[lo:hi].size == 0:
            raise DecodeError(
                f"{path}: the audio stream ends at {audio.size / SAMPLE_RATE:.2f} s, "
                f"before the window {start:g}-{end:g} s"
            )
        return Window(
            id=window_id(name, start, end, count),
            source=path,
            start=start,
            end=end,
            frames=frames,
            audio=audio[lo:hi],
        )

    for frame in frames_at_rate(path):
        buffer.append(frame)
        if len(buffer) == per_window:
            pieces.append(piece(buffer))
            buffer = []
            if len(pieces) == 2:
                yield window(*pieces.pop(0), count=2)
                emitted += 1
    if not (pieces or emitted or buffer):
        raise DecodeError(f"{path}: the video stream holds no frames")
    whole_tail = len(buffer) >= MIN_WINDOW_S * FRAME_RATE
    if not emitted and (not pieces or (len(pieces) == 1 and not whole_tail)):
        # one window: all its frames and all its audio, as VALOR reads a whole clip (a
        # 10-second clip decodes to about 80 frames and 480,000 samples, rarely exactly)
        frames = [*(list(pieces[0][2]) if pieces else []), *buffer]
        whole = window(0.0, len(frames) / FRAME_RATE, np.stack(frames), count=1)
        yield replace(whole, audio=audio)
        return
    if whole_tail:
        pieces.append(piece(buffer))
    for held in pieces:
        yield window(*held, count=2)

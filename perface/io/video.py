"""Read the frames of a video (or of a folder of frame images) as uint8 RGB arrays.

Backends:

* ``"pyav"`` (default): PyAV (FFmpeg's libraries) decodes MP4, AVI, WEBM, MOV, MKV, GIF and whatever else the
  bundled FFmpeg knows; frames come out in presentation order, converted to RGB24.
* ``"opencv"``: ``cv2.VideoCapture`` with OpenCV's FFmpeg backend (BGR converted to RGB).
* A **folder** is read as one image per frame, in natural sort order of the file names (``frame2`` before
  ``frame10``), each through :func:`perface.io.image.load_image`; files without an image ending
  (:data:`perface.io.files.IMAGE_SUFFIXES`) are ignored
  (a folder without any is an error), and a frame that fails to decode is an error naming it.

Frame selection: ``every=K`` keeps frames 0, K, 2K, ...; ``frames=N`` keeps N frames evenly spaced over the
whole clip (the first and the last included; ``round(linspace(0, total - 1, N))``). Frame indices always
refer to the position in the full clip.

Every failure (missing file, zero bytes, not a video, no video stream, no decodable frame) is a
:class:`~perface.errors.VideoReadError` with a one-line message naming the input and the fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from perface.errors import ImageLoadError, SettingsError, VideoReadError
from perface.io.files import IMAGE_SUFFIXES
from perface.io.image import load_image

__all__ = ["BACKENDS", "VideoFrames", "check_selection", "count_frames", "read_frames"]

BACKENDS = ("pyav", "opencv")


@dataclass
class VideoFrames:
    """Frames read from one video.

    Attributes:
        source: The video path (or folder) as given.
        indices: Index of each kept frame in the full clip.
        frames: uint8 (H, W, 3) RGB arrays, one per index.
        total: Frames in the full clip (decoded or counted).
        fps: Frames per second when the container says (None for folders or unknown).
        names: For folders, the file name of each kept frame (empty for videos).
    """

    source: str
    indices: list[int]
    frames: list[np.ndarray]
    total: int
    fps: float | None = None
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _selected(total: int, every: int, frames: int | None) -> set[int]:
    if frames is not None:
        return set(int(i) for i in np.round(np.linspace(0, total - 1, min(frames, total))).astype(int))
    return set(range(0, total, every))


def check_selection(every: int = 1, frames: int | None = None, backend: str = "pyav") -> None:
    """Check a frame selection and decoder before any video is opened.

    Raises:
        SettingsError: ``every`` or ``frames`` below 1, or an unknown ``backend``.
    """
    if backend not in BACKENDS:
        raise SettingsError(f"video backend {backend!r} is not known; use one of {', '.join(BACKENDS)}")
    if every < 1:
        raise SettingsError(f"--every {every}: keep every K-th frame with K at least 1")
    if frames is not None and frames < 1:
        raise SettingsError(f"--frames {frames}: analyse at least 1 frame")


def _check_file(path: Path, name: str) -> None:
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative paths start at '{os.getcwd()}')"
        raise VideoReadError(f"could not read video '{name}': no such file or folder; check the path{where}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoReadError(f"could not read video '{name}': file is empty (0 bytes); re-export or remove it")


def read_frames(source: str | os.PathLike, every: int = 1, frames: int | None = None,
                backend: str = "pyav") -> VideoFrames:
    """Decode the selected frames of a video file or frame folder.

    Args:
        source: Video file (MP4, AVI, WEBM, MOV, GIF, ...) or a folder of frame images.
        every: Keep every K-th frame (ignored when ``frames`` is given).
        frames: Keep this many frames, evenly spaced over the clip.
        backend: ``"pyav"`` or ``"opencv"`` (for video files).

    Returns:
        :class:`VideoFrames` with at least one frame.

    Raises:
        VideoReadError: missing/empty/corrupt input, no video stream, or no frame could be decoded.
        SettingsError: bad ``every`` / ``frames`` / ``backend``.
    """
    check_selection(every, frames, backend)
    name = os.fspath(source)
    path = Path(name)
    _check_file(path, name)
    if path.is_dir():
        return _read_folder(path, name, every, frames)
    total = count_frames(name, backend=backend)
    keep = _selected(total, every, frames) if total > 0 else None
    reader = _iter_pyav if backend == "pyav" else _iter_opencv
    indices, out, fps, n = [], [], None, 0
    for i, frame, fps in reader(path, name):
        n = i + 1
        if keep is None and i % every:
            continue
        if keep is not None and i not in keep:
            continue
        indices.append(i)
        out.append(frame)
    if not out:
        raise VideoReadError(f"could not read video '{name}': no frame could be decoded (the file is truncated or "
                             "corrupt); re-export it")
    if keep is None and frames is not None:  # count unknown up front: subsample what was decoded
        pick = sorted(_selected(len(out), 1, frames))
        indices, out = [indices[k] for k in pick], [out[k] for k in pick]
    return VideoFrames(name, indices, out, max(total, n), fps)


def count_frames(source: str | os.PathLike, backend: str = "pyav") -> int:
    """Number of frames of a video file (0 when the container does not say and counting packets fails).

    Raises:
        VideoReadError: the file cannot be opened as a video.
    """
    name = os.fspath(source)
    path = Path(name)
    _check_file(path, name)
    if backend == "opencv":
        import cv2

        _quiet_opencv_ffmpeg()
        cap = cv2.VideoCapture(name)
        try:
            if not cap.isOpened():
                raise VideoReadError(f"could not read video '{name}': OpenCV cannot open it (not a video, or an "
                                     "unsupported codec); try --video-backend pyav or re-encode it as MP4 (H.264)")
            return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        finally:
            cap.release()
    container = _open_av(path, name)
    try:
        stream = container.streams.video[0]
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        try:  # count packets without decoding (WEBM, GIF and some MKV carry no frame count)
            return sum(1 for p in container.demux(stream) if p.size)
        except Exception:  # noqa: BLE001 - a damaged tail: decode what we can instead
            return 0
    finally:
        container.close()


def _open_av(path: Path, name: str):
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - av raises many FFmpeg error types
        raise VideoReadError(f"could not read video '{name}': not a readable video ({_why(exc)}); pass an MP4, AVI, "
                             "WEBM, MOV or GIF file, or a folder of frame images") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"could not read video '{name}': the file has no video stream; pass a video file")
    return container


def _iter_pyav(path: Path, name: str) -> Iterator[tuple[int, np.ndarray, float | None]]:
    container = _open_av(path, name)
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        i = 0
        try:
            for frame in container.decode(stream):
                yield i, frame.to_ndarray(format="rgb24"), fps
                i += 1
        except Exception as exc:  # noqa: BLE001
            if i == 0:
                raise VideoReadError(f"could not read video '{name}': decoding failed ({_why(exc)}); the file is "
                                     "truncated or corrupt, re-export it") from None
            # a damaged tail: keep the frames decoded so far (the total reflects them)
    finally:
        container.close()


def _quiet_opencv_ffmpeg() -> None:
    """OpenCV's FFmpeg backend prints demuxer errors ("moov atom not found") to stderr; errors here are reported
    as one VideoReadError line instead. Respects a level the user has set."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _iter_opencv(path: Path, name: str) -> Iterator[tuple[int, np.ndarray, float | None]]:
    import cv2

    _quiet_opencv_ffmpeg()
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoReadError(f"could not read video '{name}': OpenCV cannot open it (not a video, or an "
                                 "unsupported codec); try --video-backend pyav or re-encode it as MP4 (H.264)")
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield i, np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), fps
            i += 1
    finally:
        cap.release()


def _read_folder(path: Path, name: str, every: int, frames: int | None) -> VideoFrames:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise VideoReadError(f"could not read video '{name}': the folder has no frame images "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))}); pass a video file or a folder of frames")
    keep = sorted(_selected(len(files), every, frames))
    out = []
    for i in keep:
        try:
            out.append(load_image(files[i]))
        except ImageLoadError as exc:
            raise VideoReadError(f"could not read video '{name}': frame {i} ({files[i].name}) failed: {exc}") from None
    return VideoFrames(name, keep, out, len(files), None, [files[i].name for i in keep])


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""Frame sources: cameras, video files, rtsp/http streams and rendered athletes.

A source only reads frames; the capture runner owns timing, sequence numbers
and dispatch. Opening a source validates it and raises `UserError` with one
line that says what is wrong.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

# Our own one-line errors replace OpenCV's and FFmpeg's probing noise; must precede cv2.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from repcoach.common.backoff import Backoff  # noqa: E402
from repcoach.common.errors import UserError  # noqa: E402
from repcoach.common.registry import Registry  # noqa: E402

log = logging.getLogger(__name__)

_CAMERA = re.compile(r"^camera(\d{1,3})$")
_STREAM = re.compile(r"^(rtsp|rtsps|http|https)://", re.IGNORECASE)
SYNTHETIC_PREFIX = "synthetic:"


def _never() -> bool:
    return False


class FrameSource(Protocol):
    source_id: str
    live: bool  # a camera or stream: frames keep coming whether we read or not
    fps: float
    total: int  # frames in the source, 0 when unknown
    should_stop: Callable[[], bool]
    """Set by whoever reads: a read that waits (a camera reconnecting) gives
    up once this says True."""

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None when the source has ended."""

    def close(self) -> None: ...


def _bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame)


# cv2.rotate codes that turn decoded frames the way players show them, by the
# container's display rotation as OpenCV reports it (CAP_PROP_ORIENTATION_META:
# degrees to turn clockwise; a phone's portrait clip says 90).
_UPRIGHT_TURNS = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def _upright_turn(capture: cv2.VideoCapture, source_id: str) -> int | None:
    """The cv2.rotate code that makes this capture's frames upright, or None.

    OpenCV's own auto-rotation is switched off so frames are turned exactly
    once, here, whatever the installed OpenCV's default is (on up to 4.10,
    off in 4.11 by a regression: opencv/opencv#26795)."""
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    if capture.get(cv2.CAP_PROP_ORIENTATION_AUTO):
        return None  # a backend that turns frames itself and will not stop
    meta = capture.get(cv2.CAP_PROP_ORIENTATION_META)
    angle = round(meta) % 360 if math.isfinite(meta) else 0
    if angle == 0:
        return None
    if angle not in _UPRIGHT_TURNS:
        log.warning(
            "%s: display rotation %g is not a right angle; frames kept as stored", source_id, meta
        )
        return None
    log.info(
        "%s: stored with a %d degree display rotation; turning frames upright", source_id, angle
    )
    return _UPRIGHT_TURNS[angle]


TRUNCATION_TOLERANCE = (3, 0.02)  # frames, share of the declared count (some are estimates)


def truncation_warning(source_id: str, read: int, declared: int) -> str | None:
    """A warning when a file ended clearly before its declared frame count
    (CAP_PROP_FRAME_COUNT), else None."""
    least, share = TRUNCATION_TOLERANCE
    if declared <= 0 or declared - read <= max(least, share * declared):
        return None
    return (
        f"{source_id} ended after {read} of its {declared} declared frames "
        "(the file looks truncated); the frames it held were analysed"
    )


class VideoFileSource:
    """A video file's frames, turned upright the way players show them when
    the container stores a display rotation (phone clips)."""

    live = False
    should_stop = staticmethod(_never)

    def __init__(self, path: Path):
        if not path.exists():
            raise UserError(f"video file {path} does not exist: check the path")
        if not path.is_file():
            raise UserError(f"{path} is not a file: give a video file, cameraN or a URL")
        self.source_id = str(path)
        self._capture = cv2.VideoCapture(str(path))
        self._turn = _upright_turn(self._capture, self.source_id)
        ok, first = self._capture.read() if self._capture.isOpened() else (False, None)
        if not ok:
            self._capture.release()
            raise UserError(f"{path} is not a readable video (OpenCV could not decode a frame)")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0
        self.total = max(int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self._first: np.ndarray | None = first
        self.frames_read = 0
        self.warning: str | None = None  # set when the file ends short of its count

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            frame, self._first = self._first, None
            self.frames_read += 1
            return self._upright(frame)
        ok, frame = self._capture.read()
        if not ok:
            if self.warning is None:
                self.warning = truncation_warning(self.source_id, self.frames_read, self.total)
                if self.warning:
                    log.warning("warning: %s", self.warning)
            return None
        self.frames_read += 1
        return self._upright(frame)

    def _upright(self, frame: np.ndarray) -> np.ndarray:
        return _bgr(frame if self._turn is None else cv2.rotate(frame, self._turn))

    def close(self) -> None:
        self._capture.release()


class LiveSource:
    """A camera or network stream. Reconnects with backoff when it drops;
    `read` returns None only once `should_stop` says so."""

    live = True

    def __init__(self, source_id: str, opener: Callable[[], cv2.VideoCapture], what: str):
        self.source_id = source_id
        self._opener = opener
        self._what = what
        self._capture = opener()
        if not self._capture.isOpened():
            raise UserError(f"{what}: could not open it; check that it exists and is reachable")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 30.0
        if not 1.0 <= self.fps <= 240.0:
            self.fps = 30.0
        self.total = 0
        self.should_stop: Callable[[], bool] = lambda: False

    def read(self) -> np.ndarray | None:
        backoff = Backoff(first=0.5, cap=10.0)
        while not self.should_stop():
            ok, frame = self._capture.read()
            if ok:
                return _bgr(frame)
            delay = backoff.next_delay()
            log.warning("%s stopped delivering frames; reconnecting in %.1f s", self._what, delay)
            self._capture.release()
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self.should_stop():
                time.sleep(0.05)
            self._capture = self._opener()
        return None

    def close(self) -> None:
        self._capture.release()


def open_camera(text: str) -> LiveSource:
    index = int(_CAMERA.match(text)[1])
    device = Path(f"/dev/video{index}")
    if not device.exists():
        present = sorted(p.name for p in Path("/dev").glob("video*"))
        listed = ", ".join(present) if present else "none"
        raise UserError(
            f"camera{index} does not exist (no {device}; video devices here: {listed}); "
            "give another cameraN, a video file or a stream URL"
        )
    return LiveSource(f"camera{index}", lambda: cv2.VideoCapture(index), f"camera{index}")


def open_stream(url: str) -> LiveSource:
    safe = re.sub(r"//[^@/]*@", "//***@", url)  # never log credentials
    # Bounded waits: a camera host that stops answering must not hang capture.
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    return LiveSource(
        safe, lambda: cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts), f"stream {safe}"
    )


def open_synthetic(text: str) -> FrameSource:
    try:
        from repcoach.stages.synthetic import SyntheticSource
    except ImportError:
        raise UserError(
            "synthetic sources are not available in this build; give a file, cameraN or a URL"
        ) from None
    return SyntheticFrames(SyntheticSource.from_spec(text[len(SYNTHETIC_PREFIX) :]), text)


class SyntheticFrames:
    """Adapts the rendered-athlete source to the FrameSource interface."""

    live = False
    should_stop = staticmethod(_never)

    def __init__(self, source, text: str):
        self.renderer = source
        self.source_id = text
        self.fps = float(source.fps)
        self.total = int(source.total_frames)
        self._frames = iter(source.frames())

    def read(self) -> np.ndarray | None:
        item = next(self._frames, None)
        return None if item is None else item[0]

    def close(self) -> None:
        pass


def open_file(text: str) -> FrameSource:
    return VideoFileSource(Path(text))


# Source kinds, told apart by the form of what `--source` says (`source_kind`).
SOURCES = Registry(
    "source kind",
    {
        kind: f"repcoach.stages.capture:open_{kind}"
        for kind in ("camera", "stream", "synthetic", "file")
    },
)


def source_kind(text: str) -> str:
    """Which of `SOURCES` a `--source` names, or a UserError saying what is valid."""
    if not text:
        raise UserError(
            "--source is empty: give cameraN, a video file, a URL or synthetic:EXERCISE"
        )
    if _CAMERA.match(text):
        return "camera"
    if _STREAM.match(text):
        return "stream"
    if text.startswith(SYNTHETIC_PREFIX):
        return "synthetic"
    if ":" in text.split("/")[0] and not Path(text).exists():
        scheme = text.split(":")[0]
        raise UserError(
            f"unknown source kind {scheme!r}: use cameraN, a video file, "
            "rtsp:// or http(s):// URLs, or synthetic:EXERCISE"
        )
    return "file"


def open_source(text: str) -> FrameSource:
    """Open what `--source` names, or raise UserError saying why not."""
    text = text.strip()
    return SOURCES.factory(source_kind(text))(text)


class Looped:
    """Plays a file source again from the start whenever it ends (soak tests,
    demo screens). Reports no total, since it never ends by itself."""

    live = False

    def __init__(self, text: str):
        self._text = text
        self.inner = open_source(text)
        if self.inner.live:
            raise UserError("--loop applies to files and synthetic sources, not live ones")
        self.source_id, self.fps, self.total = self.inner.source_id, self.inner.fps, 0
        self.should_stop: Callable[[], bool] = _never

    def read(self) -> np.ndarray | None:
        frame = self.inner.read()
        if frame is None:
            self.inner.close()
            self.inner = open_source(self._text)
            frame = self.inner.read()
        return frame

    def close(self) -> None:
        self.inner.close()


class Paced:
    """Releases frames no faster than the source's frame rate (a file played
    as if it were a camera)."""

    live = True

    def __init__(self, inner: FrameSource):
        self.inner = inner
        self.source_id, self.fps, self.total = inner.source_id, inner.fps, inner.total
        self._next = time.monotonic()

    @property
    def should_stop(self) -> Callable[[], bool]:
        return self.inner.should_stop

    @should_stop.setter
    def should_stop(self, check: Callable[[], bool]) -> None:
        self.inner.should_stop = check

    def read(self) -> np.ndarray | None:
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic() - 1.0)
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()

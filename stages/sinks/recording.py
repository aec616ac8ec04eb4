"""An MP4 file written from timestamped frames, appearing under its name only
when complete.

Frames go to a hidden temporary file next to the target (`.NAME.PID.partial.mp4`)
that `finish()` renames over the target, so a reader never sees half a video.
MP4 keeps its index (the `moov` box) at the end, written when the file is
closed: a process killed mid-recording leaves the temporary file, which
players cannot open.

Time is kept by presentation timestamp, not by frame count: each frame goes
to the slot `round((pts - first_pts) * fps)`, a gap (frames dropped upstream
or by the sink) is filled by repeating the previous frame, and a frame
arriving faster than `fps` allows is skipped. So the video plays at the pace
the source had, even when only some frames reached the sink.
"""

from __future__ import annotations

import errno
import logging
import os
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.atomic import disk_full, write_failure
from repcoach.common.errors import UserError

log = logging.getLogger(__name__)

FOURCC = "mp4v"
DEFAULT_FPS = 30.0
FPS_RANGE = (1.0, 240.0)
COMMON_RATES = (5.0, 10.0, 12.0, 15.0, 20.0, 24.0, 25.0, 30.0, 48.0, 50.0, 60.0, 90.0, 120.0)
FPS_SAMPLES = 8  # frames looked at to learn the stream's rate
MAX_FILL_S = 2.0  # a longer gap is cut short instead of filled (the source paused)
SPACE_CHECK_FRAMES = 15  # how often the free space of the target's disk is looked at


def check_encoder(target: Path) -> None:
    """Fail in one line if OpenCV cannot write MP4 next to `target` (a full
    disk is told apart from a build without the encoder)."""
    fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".mp4", dir=target.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(probe, cv2.VideoWriter_fourcc(*FOURCC), DEFAULT_FPS, (64, 64))
        opened = writer.isOpened()
        writer.release()
    finally:
        Path(probe).unlink(missing_ok=True)
    if not opened and disk_full(target.parent):
        raise UserError(f"video sink: {write_failure(target, no_space())}")
    if not opened:
        raise UserError(
            f"video sink: this OpenCV build cannot write {FOURCC} MP4 files "
            "(it needs the FFmpeg backend: pip install opencv-python)"
        )


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def rate_of(samples: list[tuple[int, float]]) -> float | None:
    """Frames per second from (seq, pts) pairs, or None if they do not tell."""
    rates = [
        (s1 - s0) / (p1 - p0)
        for (s0, p0), (s1, p1) in zip(samples, samples[1:], strict=False)
        if s1 > s0 and p1 > p0
    ]
    if not rates:
        return None
    rate = float(np.clip(statistics.median(rates), *FPS_RANGE))
    # A live source's clock jitters: 29.76 measured is a 30 fps camera.
    nearest = min(COMMON_RATES, key=lambda r: abs(r - rate))
    return nearest if abs(nearest - rate) <= 0.02 * nearest else round(rate, 2)


class Recording:
    """Frames in, one MP4 out. `fps=None` learns the rate from the stream."""

    def __init__(self, path: Path, fps: float | None = None):
        self.path = path
        self.fps = fps
        self.written = 0  # frames in the file, repeats included
        self.repeated = 0
        self.skipped = 0
        self._pending: list[tuple[np.ndarray, int, float]] = []
        self._writer: cv2.VideoWriter | None = None
        self._temp: Path | None = None
        self._size: tuple[int, int] = (0, 0)
        self._first_pts = 0.0
        self._last_pts = -float("inf")
        self._next_slot = 0
        self._last: np.ndarray | None = None

    def add(self, image: np.ndarray, seq: int, pts: float) -> None:
        checking = self._temp is not None and self.written % SPACE_CHECK_FRAMES == 0
        if checking and disk_full(self._temp.parent):
            raise no_space()
        if self._writer is None:
            self._pending.append((image, seq, pts))
            if self.fps is None and len(self._pending) < FPS_SAMPLES:
                return
            self._open()
            return
        self._place(image, pts)

    def finish(self) -> bool:
        """Close and rename into place; False if no frame ever came."""
        if self._writer is None and self._pending:
            self._open()
        if self._writer is None or self._temp is None:
            return False
        self._writer.release()
        self._writer = None
        self._verify(self._temp)
        fd = os.open(self._temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._temp, self.path)
        return True

    def abandon(self) -> None:
        """Stop without publishing anything under the target name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)

    # --- internals

    def _verify(self, temp: Path) -> None:
        """Read the closed file back: OpenCV's writer reports no write error,
        so a full disk leaves a file without its index (or with holes) that
        must never take the target's place. Raises OSError if it is broken."""
        full = disk_full(temp.parent)
        capture = cv2.VideoCapture(str(temp))
        try:
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            last_ok = False
            if frames > 0:
                capture.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
                last_ok, _ = capture.read()
        finally:
            capture.release()
        if frames >= self.written and last_ok:
            return
        if full or disk_full(temp.parent):
            raise no_space()
        raise OSError(
            errno.EIO,
            f"the encoder left an unreadable file ({frames} of {self.written} frames readable)",
        )

    def _open(self) -> None:
        pending, self._pending = self._pending, []
        if self.fps is None:
            self.fps = rate_of([(seq, pts) for _, seq, pts in pending]) or DEFAULT_FPS
            log.info("video sink: recording at %.2f fps (the stream's rate)", self.fps)
        height, width = pending[0][0].shape[:2]
        self._size = (width, height)
        # Named per process (one recording each); VideoWriter creates it with
        # the usual permissions, which mkstemp's 0600 would not give.
        self._temp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.partial.mp4")
        temp = str(self._temp)
        self._writer = cv2.VideoWriter(temp, cv2.VideoWriter_fourcc(*FOURCC), self.fps, self._size)
        if not self._writer.isOpened():
            self.abandon()
            raise OSError(f"OpenCV could not open {temp} for {FOURCC} at {width}x{height}")
        self._first_pts = pending[0][2]
        for image, _seq, pts in pending:
            self._place(image, pts)

    def _place(self, image: np.ndarray, pts: float) -> None:
        assert self._writer is not None and self.fps is not None
        if pts < self._last_pts:  # time went back (a looped or restarted source): carry on
            self._first_pts = pts - self._next_slot / self.fps
        self._last_pts = pts
        slot = round((pts - self._first_pts) * self.fps)
        if slot < self._next_slot:
            self.skipped += 1
            return
        gap = slot - self._next_slot
        if gap and self._last is not None:
            fill = min(gap, round(MAX_FILL_S * self.fps))
            for _ in range(fill):
                self._writer.write(self._last)
            self.written += fill
            self.repeated += fill
        if image.shape[1::-1] != self._size:  # the source changed size mid-stream
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.written += 1
        self._next_slot = slot + 1
        self._last = image

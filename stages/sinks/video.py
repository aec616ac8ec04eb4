"""Annotated video: every frame with its skeleton, angles, reps and cues,
written to an MP4 file and/or shown in a window.

    --sink video:path=session.mp4,blur_faces=1
    --sink video:window=1
    pipeline sink attach video --path session.mp4 --blur-faces

Options: `path=FILE.mp4`, `window=1` (at least one of the two), `blur_faces=1`,
`raw=1` (the plain frames instead of the annotated ones: only written when
asked for), `fps=F` (default: the stream's own rate).

Drawing and encoding run on a worker thread behind a bounded queue: when it
falls behind, frames are dropped here (never upstream), counted, and the gap
in the file is filled so it keeps the source's pace (see `recording`).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.atomic import write_failure
from repcoach.common.errors import UserError
from repcoach.common.messages import EndOfStream, FeedbackEvent, FramePacket, SessionState
from repcoach.common.specs import Spec
from repcoach.stages.sinks import check_writable
from repcoach.stages.sinks.overlay import Overlay
from repcoach.stages.sinks.privacy import blur_faces
from repcoach.stages.sinks.recording import Recording, check_encoder

log = logging.getLogger(__name__)

QUEUE_FRAMES = 30
WINDOW_TITLE = "repcoach"
FLAGS = ("window", "blur_faces", "raw")


class Window:
    """An OpenCV window; only ever touched from the thread that draws."""

    def __init__(self) -> None:
        self.open = True
        self._created = False

    def show(self, image: np.ndarray) -> None:
        if not self.open:
            return
        try:
            if not self._created:
                cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
                self._created = True
            cv2.imshow(WINDOW_TITLE, image)
            key = cv2.waitKey(1) & 0xFF
            closed = cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error as exc:  # the recording, if any, goes on without the window
            log.error("error: video sink: window failed (%s)", str(exc).strip().splitlines()[-1])
            self.open = False
            return
        if key in (ord("q"), 27) or closed:  # the pipeline goes on; only the window stops
            log.info("video sink: window closed")
            self.close()

    def close(self) -> None:
        if self._created:
            cv2.destroyWindow(WINDOW_TITLE)
            cv2.waitKey(1)
        self._created, self.open = False, False


class VideoSink:
    topics = (b"vid",)

    def __init__(
        self,
        path: Path | None,
        window: bool = False,
        blur: bool = False,
        raw: bool = False,
        fps: float | None = None,
        queue_frames: int = QUEUE_FRAMES,
    ):
        self.path = path
        self.raw = raw
        self.blur = blur
        self.dropped = 0
        self.received = 0
        self.failed: str | None = None
        self.unwritten = 0  # accepted, then lost because writing had failed
        self.recording = Recording(path, fps) if path is not None else None
        self.window = Window() if window else None
        self._overlay = Overlay(blur_faces=blur)
        self._queue: queue.Queue[FramePacket | None] = queue.Queue(maxsize=queue_frames)
        # Events of dropped frames ride along with the next frame that is
        # kept, so a cue is still shown even if its own frame was dropped.
        self._carried: tuple[FeedbackEvent, ...] = ()
        self._worker = threading.Thread(target=self._work, name="video-sink", daemon=True)
        self._worker.start()

    # --- sink interface (the sink loop's thread: never waits)

    def on_state(self, state: SessionState) -> None:
        pass

    def drops(self) -> dict[str, int]:
        return {"slow-sink": self.dropped}

    def on_result(self, packet: FramePacket) -> None:
        if packet.pixels is None:
            return
        self.received += 1
        if self._carried:
            packet = packet.replace(events=self._carried + packet.events)
        try:
            self._queue.put_nowait(packet)
            self._carried = ()
        except queue.Full:
            self.dropped += 1
            self._carried = packet.events

    def on_eos(self, eos: EndOfStream) -> None:
        pass

    def tick(self) -> None:
        pass

    def close(self, missed: int) -> None:
        self._queue.put(None)  # after what is queued: every accepted frame is written
        self._worker.join()
        if self.window is not None:
            self.window.close()
        if self.recording is None:
            log.info(
                "video sink: showed %d frames, dropped %d",
                self.received - self.dropped,
                self.dropped,
            )
            return
        rec = self.recording
        existed = self.path.exists()
        if self.failed:
            rec.abandon()
            message = write_failure(self.path, OSError(0, self.failed), kept=existed)
            raise UserError(f"{message}; {self.unwritten} frame(s) lost after it")
        try:
            finished = rec.finish()
        except (OSError, cv2.error) as exc:
            rec.abandon()
            raise UserError(write_failure(self.path, exc, kept=existed)) from None
        if not finished:
            log.warning("video sink: no frames arrived; nothing written to %s", self.path)
            return
        log.info(
            "video sink: wrote %d frames to %s, dropped %d (%d repeated to fill gaps, "
            "%d skipped for %.2f fps)",
            rec.written,
            self.path,
            self.dropped,
            rec.repeated,
            rec.skipped,
            rec.fps,
        )

    # --- worker thread

    def _render(self, packet: FramePacket) -> np.ndarray:
        if not self.raw:
            return self._overlay.draw(packet)
        image = packet.pixels.copy()
        return blur_faces(image, packet.joints, packet.persons) if self.blur else image

    def _work(self) -> None:
        while True:
            packet = self._queue.get()
            if packet is None:
                return
            if self.failed:
                self.unwritten += 1
                continue
            try:
                image = self._render(packet)
                if self.recording is not None:
                    self.recording.add(image, packet.meta.seq, packet.meta.pts)
            except OSError as exc:  # a full disk: stop recording, not the pipeline
                self._fail(exc.strerror or str(exc))
                continue
            except cv2.error as exc:
                self._fail(str(exc).strip().splitlines()[-1])
                continue
            except Exception:  # a bug: say so, and keep draining so close() never waits
                log.exception("video sink: drawing or encoding failed")
                self._fail("drawing or encoding failed (see above)")
                continue
            if self.window is not None:
                self.window.show(image)

    def _fail(self, reason: str) -> None:
        self.failed = reason
        log.error(
            "error: video sink: %s while writing %s; dropping the rest (the file is not "
            "published: any earlier %s is kept)",
            reason,
            self.path,
            self.path.name if self.path else "file",
        )


def _flag(spec: Spec, key: str) -> bool:
    return spec.take(key, "0", {"0", "1"}) == "1"


# Qt aborts the whole process when it cannot reach the display, so the
# window is tried in a throw-away process first.
WINDOW_PROBE = "import cv2; cv2.namedWindow('probe'); cv2.waitKey(1); cv2.destroyAllWindows()"


def check_display() -> None:
    """Fail in one line unless an OpenCV window can be opened here."""
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        raise UserError(
            "video sink: window=1 needs a display (DISPLAY and WAYLAND_DISPLAY are unset); "
            "write a file instead: path=FILE.mp4"
        )
    if re.search(r"^\s*GUI:\s+NONE", cv2.getBuildInformation(), re.MULTILINE):
        raise UserError(
            "video sink: this OpenCV build has no GUI (opencv-python-headless); "
            "install opencv-python for window=1"
        )
    try:
        probe = subprocess.run(
            [sys.executable, "-c", WINDOW_PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        failed = probe.returncode != 0
        detail = next((ln for ln in probe.stderr.splitlines() if ln.strip()), "")
    except subprocess.TimeoutExpired:
        failed, detail = True, "no answer in 30 s"
    if failed:
        raise UserError(
            f"video sink: cannot open a window on display {display!r}"
            + (f" ({detail.strip()})" if detail else "")
        )


def from_spec(spec: Spec, build: bool) -> VideoSink | None:
    spec.check_known({"path", "fps", *FLAGS})
    window, blur, raw = (_flag(spec, key) for key in FLAGS)
    path = None
    if "path" in spec.options:
        path = Path(spec.options["path"])
        if path.suffix.lower() != ".mp4":
            raise UserError(f"video sink writes MP4: path={path} must end in .mp4")
        path = check_writable(path, "video sink file")
        check_encoder(path)
    elif not window:
        raise UserError(
            "video sink needs somewhere to go: --sink video:path=session.mp4 and/or window=1"
        )
    if window:
        check_display()
    fps = spec.take_number("fps", 0.0, 1.0, 240.0) if "fps" in spec.options else None
    return VideoSink(path, window, blur, raw, fps) if build else None

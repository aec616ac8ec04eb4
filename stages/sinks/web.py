"""Web dashboard: the annotated live stream, each person's numbers and the
session's rep table, served over HTTP to any browser (no CDN, works offline).

    pipeline sink attach web --port 8080            # http://127.0.0.1:8080/
    pipeline up --source camera0 --sink web:port=8080,host=0.0.0.0,blur_faces=1

Endpoints: `/` the page, `/app.js` its script, `/stream.mjpg` the annotated
frames as MJPEG, `/events` Server-Sent Events (`state` a few times a second,
`reps` with new rep rows, `end`), `/state.json` the whole document
(web_board.py), `/healthz`.

The sink thread only stores references (the newest frame, the numbers), so a
slow browser never slows the pipeline: one encoder thread draws and JPEG-encodes
the newest frame at most `fps` times a second, once for all viewers, and
counts the frames it passed over; each viewer takes the newest JPEG when its
connection has room, and counts the ones it skipped.
"""

from __future__ import annotations

import errno
import importlib.resources
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from repcoach.common.errors import UserError
from repcoach.common.messages import EndOfStream, FramePacket, SessionState
from repcoach.common.runner import TOPIC_RESULT, TOPIC_VIDEO
from repcoach.common.specs import Spec
from repcoach.stages.sinks.overlay import Overlay
from repcoach.stages.sinks.web_board import Scoreboard

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"  # this machine only: the stream shows people
DEFAULT_FPS = 15.0
JPEG_QUALITY = 80
SSE_INTERVAL_S = 0.25  # at most four state updates a second per browser
KEEPALIVE_S = 15.0
VIEWER_TIMEOUT_S = 20.0  # a browser that takes nothing for this long is cut off
CLOSE_GRACE_S = 1.5  # at the end, time for browsers to receive the final state
BOUNDARY = "repcoach-frame"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class WebOptions:
    host: str = DEFAULT_HOST
    """Address to listen on; 0.0.0.0 (or ::) serves every interface."""
    port: int = DEFAULT_PORT
    """TCP port; 0 picks a free one (the URL is printed)."""
    fps: float = DEFAULT_FPS
    """Most frames a second the stream is encoded at."""
    blur_faces: bool = False
    """Blur every face in the served stream."""

    @classmethod
    def from_spec(cls, spec: Spec) -> WebOptions:
        spec.check_known({"port", "host", "fps", "blur_faces"})
        raw_port = spec.options.get("port", str(DEFAULT_PORT))
        if not raw_port.isdigit():
            raise UserError(f"web: port={raw_port!r} is not a whole number in [0, 65535]")
        port = int(raw_port)
        if port > 65535:
            raise UserError(f"web: port={port} is outside [0, 65535] (0 picks a free port)")
        host = spec.options.get("host", DEFAULT_HOST)
        if not host:
            raise UserError("web: host= is empty; give an address such as 127.0.0.1 or 0.0.0.0")
        return cls(
            host=host,
            port=port,
            fps=spec.take_number("fps", DEFAULT_FPS, 1.0, 30.0),
            blur_faces=spec.take("blur_faces", "0", {"0", "1"}) == "1",
        )


class FrameHub:
    """The newest annotated JPEG, encoded once and shared by every viewer."""

    def __init__(self, draw, fps: float):
        self._draw = draw  # packet -> BGR image (the overlay)
        self._interval = 1.0 / fps
        self._cond = threading.Condition()
        self._pending: FramePacket | None = None
        self._jpeg = b""
        self.number = 0  # JPEGs encoded so far; a viewer remembers the last it sent
        self.viewers = 0
        self.received = 0
        self.dropped = 0  # frames replaced by a newer one before they were encoded
        self.viewer_skipped = 0  # JPEGs a viewer was too slow to take
        self.closed = False
        self._thread = threading.Thread(target=self._encode_loop, name="web-encoder", daemon=True)
        self._thread.start()

    def offer(self, packet: FramePacket) -> None:
        """The sink thread: O(1), never waits for the encoder."""
        with self._cond:
            self.received += 1
            if self._pending is not None and self.viewers:
                self.dropped += 1  # (nobody watching: nothing is lost)
            self._pending = packet
            self._cond.notify_all()

    def _take(self, next_at: float) -> FramePacket | None:
        with self._cond:
            while not self.closed:
                wait = next_at - time.monotonic()
                if self._pending is not None and self.viewers and wait <= 0:
                    packet, self._pending = self._pending, None
                    return packet
                self._cond.wait(wait if self._pending is not None and self.viewers else 1.0)
            return None

    def _encode_loop(self) -> None:
        next_at = 0.0
        while (packet := self._take(next_at)) is not None:
            started = time.monotonic()
            try:
                image = self._draw(packet)
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            except Exception:  # a bad frame must not end the stream for good
                log.exception("web dashboard: could not draw frame %d", packet.meta.seq)
                continue
            if ok:
                with self._cond:
                    self._jpeg = jpeg.tobytes()
                    self.number += 1
                    self._cond.notify_all()
            next_at = started + self._interval

    def watch(self) -> None:
        with self._cond:
            self.viewers += 1
            self._cond.notify_all()

    def unwatch(self) -> None:
        with self._cond:
            self.viewers -= 1

    def newer_than(self, number: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest JPEG once there is one newer than `number`."""
        with self._cond:
            self._cond.wait_for(lambda: self.number > number or self.closed, timeout)
            if self.number <= number:
                return None
            if number:
                self.viewer_skipped += self.number - number - 1
            return self.number, self._jpeg

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "viewers": self.viewers,
                "frames_in": self.received,
                "encoded": self.number,
                "dropped": self.dropped,
                "viewer_skipped": self.viewer_skipped,
            }

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)


def _static(name: str) -> bytes:
    return importlib.resources.files(__package__).joinpath(name).read_bytes()


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: int, sink: WebSink):
        self.address_family = family
        self.sink = sink
        self.streams = 0  # open /stream.mjpg and /events responses
        self.streams_lock = threading.Lock()
        super().__init__(address, DashboardHandler)


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    timeout = VIEWER_TIMEOUT_S
    server_version = "repcoach-dashboard"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        sink = self.server.sink
        path = self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", sink.page)
            elif path == "/app.js":
                self._send(200, "text/javascript; charset=utf-8", sink.script)
            elif path == "/state.json":
                self._send(200, "application/json", json.dumps(sink.document()).encode())
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/stream.mjpg":
                self._streaming(self._stream_frames, sink)
            elif path == "/events":
                self._streaming(self._stream_events, sink)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
        except (ConnectionError, TimeoutError):
            pass  # the browser went away or stopped reading

    def _headers(self, code: int, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'"
        )

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self._headers(code, content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _streaming(self, stream, sink: WebSink) -> None:
        with self.server.streams_lock:
            self.server.streams += 1
        try:
            stream(sink)
        finally:
            with self.server.streams_lock:
                self.server.streams -= 1

    def _stream_frames(self, sink: WebSink) -> None:
        hub = sink.hub
        self._headers(200, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.end_headers()
        hub.watch()
        try:
            sent = 0
            while not hub.closed:
                newest = hub.newer_than(sent, timeout=1.0)
                if newest is None:
                    continue
                sent, jpeg = newest
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
            self.wfile.write(f"--{BOUNDARY}--\r\n".encode())
        finally:
            hub.unwatch()

    def _stream_events(self, sink: WebSink) -> None:
        board = sink.board
        self._headers(200, "text/event-stream; charset=utf-8")
        self.end_headers()
        self.wfile.write(b"retry: 2000\n\n")
        version, rows, quiet_since = -1, 0, time.monotonic()
        while True:
            closed = board.closed
            if board.version != version:
                version = board.version
                new_rows = board.rows_since(rows)
                rows += len(new_rows)
                message = _event("state", sink.live())
                if new_rows:
                    message += _event("reps", new_rows)
                self.wfile.write(message)
                self.wfile.flush()
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                quiet_since = time.monotonic()
            if closed:
                self.wfile.write(_event("end", {}))
                self.wfile.flush()
                return
            time.sleep(SSE_INTERVAL_S)
            board.wait_newer(version, timeout=1.0)


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def bind(host: str, port: int, sink: WebSink) -> DashboardServer:
    """Listen now, so a bad address or busy port is one clear line at start."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        raise UserError(
            f"web: cannot resolve host {host!r}; give an address such as 127.0.0.1 or 0.0.0.0"
        ) from None
    try:
        return DashboardServer((host, port), family, sink)
    except PermissionError:
        raise UserError(
            f"web: no permission to listen on port {port} (ports below 1024 need root); "
            "use a port from 1024 up, e.g. --port 8080"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"web: port {port} on {host} is already in use; "
                "pick another with --port (--port 0 picks a free one)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UserError(
                f"web: {host} is not an address of this machine; use 127.0.0.1 "
                "(this machine only) or 0.0.0.0 (every network interface)"
            ) from None
        raise UserError(f"web: cannot listen on {host}:{port} ({exc.strerror})") from None


def url_for(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class WebSink:
    # `vid` packets (with pixels) feed the picture; `res` packets (the same
    # results without pixels, numbered so missed ones are counted) feed the
    # numbers and the rep table, so every event is read exactly once.
    topics = (TOPIC_RESULT, TOPIC_VIDEO)

    def __init__(self, options: WebOptions):
        self.options = options
        self.page = _static("web_page.html")
        self.script = _static("web_page.js")
        self.board = Scoreboard()
        self.server = bind(options.host, options.port, self)
        self.port = self.server.server_address[1]
        self.url = url_for(options.host, self.port)
        self.hub = FrameHub(Overlay(blur_faces=options.blur_faces).draw, options.fps)
        self._serving = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.25}, daemon=True
        )
        self._serving.start()
        print(f"web dashboard: {self.url}", flush=True)
        if options.host not in LOOPBACK:
            log.warning(
                "web dashboard listens on %s: anyone who can reach port %d can watch the camera%s",
                options.host,
                self.port,
                "" if options.blur_faces else " (faces are not blurred; see --blur-faces)",
            )

    def live(self) -> dict[str, Any]:
        return {
            **self.board.live(),
            "stream": {**self.hub.stats(), "fps_cap": self.options.fps},
            "privacy": {"blur_faces": self.options.blur_faces},
        }

    def document(self) -> dict[str, Any]:
        return {**self.live(), "reps": self.board.rows_since(0)}

    # --- the Sink protocol (run_sink's thread: nothing here waits)

    def on_state(self, state: SessionState) -> None:
        self.board.on_state(state)

    def on_result(self, packet: FramePacket) -> None:
        if packet.pixels is not None:
            self.hub.offer(packet)
        else:
            self.board.on_result(packet)

    def on_eos(self, eos: EndOfStream) -> None:
        self.board.on_eos(eos)

    def tick(self) -> None:
        pass

    def drops(self) -> dict[str, int]:
        """Shown by `pipeline status`: frames never encoded because a newer
        one came first, and JPEGs viewers were too slow to take."""
        stats = self.hub.stats()
        return {"superseded": stats["dropped"], "slow-viewer": stats["viewer_skipped"]}

    def close(self, missed: int) -> None:
        self.board.close(missed)
        self.hub.close()
        deadline = time.monotonic() + CLOSE_GRACE_S
        while self.server.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()
        stats = self.hub.stats()
        log.info(
            "web dashboard: %d of %d frames encoded, %d dropped (a newer frame came first), "
            "%d skipped by slow viewers; %d results missed",
            stats["encoded"],
            stats["frames_in"],
            stats["dropped"],
            stats["viewer_skipped"],
            missed,
        )


def from_spec(spec: Spec, build: bool) -> WebSink | None:
    options = WebOptions.from_spec(spec)
    return WebSink(options) if build else None

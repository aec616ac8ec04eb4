"""Web dashboard: the annotated live stream, each person's numbers and the
session's rep table, served over HTTP to any browser (no CDN, works offline).

    pipeline sink attach web --port 8080            # http://127.0.0.1:8080/
    pipeline up --source camera0 --sink web:port=8080,host=0.0.0.0,blur_faces=1

Endpoints: `/` the page, `/app.js` its script, `/stream.mjpg` the annotated
frames as MJPEG, `/events` Server-Sent Events (`state` a few times a second,
`reps` with new rep rows, `end`), `/state.json` the whole document
(web_board.py), `/healthz`. With several stations, `/` is the floor (a tile
per station, `/floor.js` polling `/floor.json`) and `/?station=NAME` a
station's page; `state.json`, `events` and `stream.mjpg` take `station=`.

The sink thread only stores references (the newest frame, the numbers), so a
slow browser never slows the pipeline: one encoder thread draws and JPEG-encodes
the newest frame at most `fps` times a second, once for all viewers, and
counts the frames it passed over; each viewer takes the newest JPEG when its
connection has room, and counts the ones it skipped.

Limits, so no client can exhaust it (`web:max_clients=N,hosts=NAME+NAME,
header_timeout=S`):
- at most `max_clients` connections (default 32) are served at once, each on
  its own thread; one more is answered `503` (by one shared thread, which
  drains what the client sent so the answer arrives) and closed;
- a request's headers must arrive whole within `header_timeout` seconds
  (default 10) from the connection: a deadline for the whole request, so a
  client dripping a byte at a time is cut off; every write to a client has
  its own bound (`VIEWER_TIMEOUT_S` for the whole write);
- the `Host` header, if sent, must name this server (DNS rebinding): localhost,
  127.0.0.1, ::1, the address it listens on, this machine's name, any IP
  address, or a name given in `hosts=`; anything else gets `421`.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.resources
import ipaddress
import json
import logging
import select
import selectors
import socket
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from repcoach.common import transport
from repcoach.common.config import MAX_STATIONS
from repcoach.common.errors import UserError
from repcoach.common.messages import (
    REMOVED,
    EndOfStream,
    FramePacket,
    MessageError,
    SessionState,
    decode_plain,
    encode_plain,
)
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
MAX_POST_BYTES = 512  # a check-in's JSON
CLOSE_GRACE_S = 1.5  # at the end, time for browsers to receive the final state
BOUNDARY = "repcoach-frame"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_MAX_CLIENTS = 32
DEFAULT_HEADER_TIMEOUT_S = 10.0
REFUSED_HELD = 256  # refused connections drained at once; beyond, closed at once
REFUSE_LINGER_S = 2.0  # how long a refused connection is drained before closing
BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 5\r\nContent-Length: 38\r\nConnection: close\r\n\r\n"
    b"too many viewers; try again in a bit\r\n"
)


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
    max_clients: int = DEFAULT_MAX_CLIENTS
    """Connections served at once; more are answered 503."""
    hosts: tuple[str, ...] = ()
    """Names the Host header may carry besides this machine's own."""
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    """Seconds a client has to send its whole request head."""

    @classmethod
    def from_spec(cls, spec: Spec) -> WebOptions:
        spec.check_known(
            {"port", "host", "fps", "blur_faces", "max_clients", "hosts", "header_timeout"}
        )
        raw_port = spec.options.get("port", str(DEFAULT_PORT))
        if not raw_port.isdigit():
            raise UserError(f"web: port={raw_port!r} is not a whole number in [0, 65535]")
        port = int(raw_port)
        if port > 65535:
            raise UserError(f"web: port={port} is outside [0, 65535] (0 picks a free port)")
        host = spec.options.get("host", DEFAULT_HOST)
        if not host:
            raise UserError("web: host= is empty; give an address such as 127.0.0.1 or 0.0.0.0")
        max_clients = spec.take_number("max_clients", DEFAULT_MAX_CLIENTS, 1, 1024)
        if max_clients != int(max_clients):
            raise UserError(f"web: max_clients={spec.options['max_clients']} is not a whole number")
        hosts = tuple(h.strip().lower() for h in spec.options.get("hosts", "").split("+"))
        return cls(
            host=host,
            port=port,
            fps=spec.take_number("fps", DEFAULT_FPS, 1.0, 30.0),
            blur_faces=spec.take("blur_faces", "0", {"0", "1"}) == "1",
            max_clients=int(max_clients),
            hosts=tuple(h for h in hosts if h),
            header_timeout_s=spec.take_number(
                "header_timeout", DEFAULT_HEADER_TIMEOUT_S, 0.5, 120.0
            ),
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


class Doorman(threading.Thread):
    """One thread for what must not take a thread per client: it answers the
    connections over the cap with 503 (sending, then draining what they
    sent for up to `REFUSE_LINGER_S`, so the answer is not lost to a reset),
    and cuts the connections whose request head is late (`deadline`)."""

    def __init__(self) -> None:
        super().__init__(name="web-doorman", daemon=True)
        self._lock = threading.Lock()
        self._incoming: deque[socket.socket] = deque()
        self._deadlines: dict[socket.socket, float] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._held: dict[socket.socket, float] = {}  # refused, draining until
        self.refused = 0
        self.cut = 0  # connections whose request head missed its deadline
        self.closed = False

    def refuse(self, connection: socket.socket) -> None:
        with self._lock:
            self.refused += 1
            self._incoming.append(connection)
        self._wake()

    def deadline(self, connection: socket.socket, seconds: float | None) -> bool:
        """Cut `connection` in `seconds` unless cleared (None) before then.
        Clearing returns False if it was cut already."""
        with self._lock:
            if seconds is None:
                return self._deadlines.pop(connection, None) is not None
            self._deadlines[connection] = time.monotonic() + seconds
            return True

    def close(self) -> None:
        self.closed = True
        if self.ident is None:  # never started (the server could not listen)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
            return
        self._wake()
        self.join(timeout=2.0)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run(self) -> None:
        try:
            while not self.closed:
                for key, _ in self._selector.select(0.2):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        self._drain(key.fileobj)  # type: ignore[arg-type]
                self._take_incoming()
                self._expire()
        finally:
            for held in list(self._held):
                self._drop(held)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _take_incoming(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, deque()
        for connection in incoming:
            try:
                connection.setblocking(False)
                connection.send(BUSY)  # small: fits the socket buffer at once
                connection.shutdown(socket.SHUT_WR)
            except OSError:
                connection.close()
                continue
            if len(self._held) >= REFUSED_HELD:
                connection.close()
                continue
            self._held[connection] = time.monotonic() + REFUSE_LINGER_S
            self._selector.register(connection, selectors.EVENT_READ)

    def _drain(self, connection: socket.socket) -> None:
        try:
            if connection.recv(65536):
                return  # more may come; the linger deadline bounds it
        except BlockingIOError:
            return
        except OSError:
            pass
        self._drop(connection)

    def _drop(self, connection: socket.socket) -> None:
        self._held.pop(connection, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection)
        connection.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for connection, until in list(self._held.items()):
            if now >= until:
                self._drop(connection)
        with self._lock:
            late = [c for c, until in self._deadlines.items() if now >= until]
            for connection in late:
                del self._deadlines[connection]
                self.cut += 1
        for connection in late:  # its thread's read returns at once and it ends
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits to be answered, not reset

    def __init__(self, address: tuple[str, int], family: int, sink: WebSink, options: WebOptions):
        self.address_family = family
        self.sink = sink
        self.options = options
        self.streams = 0  # open /stream.mjpg and /events responses
        self.streams_lock = threading.Lock()
        self.clients = 0  # connections being served, each on its own thread
        self.clients_lock = threading.Lock()
        self.doorman = Doorman()
        try:
            super().__init__(address, DashboardHandler)
        except BaseException:
            self.doorman.close()
            raise
        self.port = self.server_address[1]
        self.names = own_names(options.host)
        self.doorman.start()

    def process_request(self, request, client_address) -> None:
        with self.clients_lock:
            full = self.clients >= self.options.max_clients
            if not full:
                self.clients += 1
        if full:
            self.doorman.refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts its thread
        except BaseException:
            with self.clients_lock:
                self.clients -= 1
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.doorman.deadline(request, None)
            with self.clients_lock:
                self.clients -= 1

    def handle_error(self, request, client_address) -> None:
        # A client cut off (deadline, reset) mid-request: not worth a traceback.
        log.debug("web dashboard: connection from %s ended with an error", client_address)

    def host_allowed(self, header: str | None) -> bool:
        return host_allowed(header, self.names, frozenset(self.options.hosts), self.port)

    def stats(self) -> dict[str, int]:
        with self.clients_lock:
            clients = self.clients
        return {
            "clients": clients,
            "max_clients": self.options.max_clients,
            "refused": self.doorman.refused,
            "cut_slow": self.doorman.cut,
        }

    def server_close(self) -> None:
        super().server_close()
        self.doorman.close()


def own_names(host: str) -> frozenset[str]:
    """The names of this server: localhost, the address it listens on, and
    this machine's name when it listens on every interface."""
    names = {"localhost"}
    if host in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname().lower()
        short = hostname.split(".")[0]
        names |= {hostname, short, f"{short}.local"}
    else:
        names.add(host.lower())
    return frozenset(names)


def host_allowed(
    header: str | None, own: frozenset[str], configured: frozenset[str], port: int
) -> bool:
    """Whether a `Host` header names this server. A DNS-rebinding page sends
    its own name, so a name must be ours (`own`, with our port if a port is
    given) or one the operator configured (any port: a proxy may change it);
    an IP address cannot be rebound and counts as ours. No Host at all (an
    HTTP/1.0 client; browsers always send one) is allowed."""
    if header is None:
        return True
    header = header.strip().lower()
    if header.startswith("["):  # [v6]:port
        name, _, rest = header[1:].partition("]")
        given = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, given = header.partition(":")
    name = name.rstrip(".")
    if name in configured:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if name not in own:
            return False
    return not given or given == str(port)


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    timeout = VIEWER_TIMEOUT_S
    server_version = "repcoach-dashboard"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        # The whole request head must arrive by then (the per-read timeout
        # alone lets a client dripping a byte a second hold the thread).
        self.server.doorman.deadline(self.connection, self.server.options.header_timeout_s)

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers
        in_time = self.server.doorman.deadline(self.connection, None)
        return parsed and in_time

    def do_GET(self) -> None:
        sink = self.server.sink
        path = self.path.split("?", 1)[0]
        try:
            if not self.server.host_allowed(self.headers.get("Host")):
                self._send(421, "text/plain; charset=utf-8", b"misdirected request: unknown Host\n")
                return
            station = _station_asked(self.path)
            view = sink.view(station)
            if path in ("/", "/index.html"):
                floor = station is None and len(sink.views) > 1
                self._send(200, "text/html; charset=utf-8", sink.floor_page if floor else sink.page)
            elif path == "/app.js":
                self._send(200, "text/javascript; charset=utf-8", sink.script)
            elif path == "/floor.js":
                self._send(200, "text/javascript; charset=utf-8", sink.floor_script)
            elif path == "/floor.json":
                self._send(200, "application/json", json.dumps(sink.floor()).encode())
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif view is None and path in ("/state.json", "/stream.mjpg", "/events"):
                self._send(404, "text/plain; charset=utf-8", b"no such station\n")
            elif path == "/state.json":
                self._send(200, "application/json", json.dumps(sink.document(view)).encode())
            elif path == "/stream.mjpg":
                self._streaming(self._stream_frames, sink, view)
            elif path == "/events":
                self._streaming(self._stream_events, sink, view)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
        except (ConnectionError, TimeoutError):
            pass  # the browser went away or stopped reading

    def do_POST(self) -> None:
        """`/checkin` (the front desk): {"person": N, "member": NAME} for the
        station asked (`station=`). JSON only: a form another site posts
        from a member's browser cannot set that type without asking first
        (CORS), and nobody here answers that."""
        try:
            if not self.server.host_allowed(self.headers.get("Host")):
                self._send(421, "text/plain; charset=utf-8", b"misdirected request: unknown Host\n")
                return
            if self.path.split("?", 1)[0] != "/checkin":
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
                return
            code, answer = self._check_in()
            self._send(code, "application/json", json.dumps(answer).encode())
        except (ConnectionError, TimeoutError):
            pass

    def _check_in(self) -> tuple[int, dict]:
        if self.headers.get_content_type() != "application/json":
            return 415, {"error": "send JSON (Content-Type: application/json)"}
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return 411, {"error": "say the body's length (Content-Length)"}
        if not 0 < length <= MAX_POST_BYTES:
            return 413, {"error": f"a check-in is at most {MAX_POST_BYTES} bytes"}
        try:
            body = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "the body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": 'send {"person": N, "member": "NAME"}'}
        view = self.server.sink.view(_station_asked(self.path))
        if view is None or not view.name:
            return 404, {"error": "no such station"}
        answer = self.server.sink.check_in(view.name, body.get("person"), body.get("member"))
        return (409 if "error" in answer else 200), answer

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

    def _client_gone(self) -> bool:
        """The viewer closed its end (its thread is freed at once, not at the
        next write, which may be many seconds away on a quiet stream)."""
        try:
            poller = select.poll()  # not select(): no limit on the descriptor's number
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def _streaming(self, stream, sink: WebSink, view: StationView) -> None:
        with self.server.streams_lock:
            self.server.streams += 1
        try:
            stream(sink, view)
        finally:
            with self.server.streams_lock:
                self.server.streams -= 1

    def _stream_frames(self, sink: WebSink, view: StationView) -> None:
        hub = view.hub
        self._headers(200, f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.end_headers()
        hub.watch()
        try:
            sent = 0
            while not hub.closed and not self._client_gone():
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

    def _stream_events(self, sink: WebSink, view: StationView) -> None:
        board = view.board
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
                message = _event("state", sink.live(view))
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
            if self._client_gone():
                return
            time.sleep(SSE_INTERVAL_S)
            board.wait_newer(version, timeout=1.0)


def _station_asked(target: str) -> str | None:
    """The `station=NAME` of a request's query, if any."""
    query = urllib.parse.urlsplit(target).query
    values = urllib.parse.parse_qs(query).get("station")
    return values[0] if values else None


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def bind(host: str, port: int, sink: WebSink, options: WebOptions) -> DashboardServer:
    """Listen now, so a bad address or busy port is one clear line at start."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        raise UserError(
            f"web: cannot resolve host {host!r}; give an address such as 127.0.0.1 or 0.0.0.0"
        ) from None
    try:
        return DashboardServer((host, port), family, sink, options)
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


class StationView:
    """What the dashboard shows of one station: its numbers and rep table,
    and its annotated picture (each with the overlay's per-track state)."""

    def __init__(self, name: str, options: WebOptions):
        self.name = name
        self.board = Scoreboard()
        self.hub = FrameHub(Overlay(blur_faces=options.blur_faces).draw, options.fps)


class WebSink:
    """The dashboard of one station, or of the floor: with several stations
    `/` is a tile per station (`/floor.json`, polled), and `/?station=NAME`
    that station's own page; `state.json`, `events` and `stream.mjpg` take
    the same `station=` (without it: the first station)."""

    # `vid` packets (with pixels) feed the picture; `res` packets (the same
    # results without pixels, numbered so missed ones are counted) feed the
    # numbers and the rep table, so every event is read exactly once.
    topics = (TOPIC_RESULT, TOPIC_VIDEO)

    def __init__(self, options: WebOptions):
        self.options = options
        self.page = _static("web_page.html")
        self.script = _static("web_page.js")
        self.floor_page = _static("web_floor.html")
        self.floor_script = _static("web_floor.js")
        self.views: dict[str, StationView] = {}  # by station, in the order they appeared
        self._early: StationView | None = None  # asked for before any station appeared
        self.removed: set[str] = set()  # stations taken out of the pipeline: no tile
        self._views_lock = threading.Lock()
        self.server = bind(options.host, options.port, self, options)
        self.port = self.server.server_address[1]
        self.url = url_for(options.host, self.port)
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

    def view(self, station: str | None) -> StationView | None:
        """`station`'s view, None if there is no such station. Without a
        station: the first station's, or (before any has been heard of) one
        the first station to appear takes over, so a browser that came early
        sees it."""
        with self._views_lock:
            if station is not None:
                return self.views.get(station)
            first = next(iter(self.views.values()), None)
            if first is None:
                if self._early is None:
                    self._early = StationView("", self.options)
                first = self._early
            return first

    def _view_of(self, station: str) -> StationView | None:
        """The sink thread: `station`'s view, made on first sight (bounded)."""
        view = self.views.get(station)
        if view is None and len(self.views) + len(self.removed) < MAX_STATIONS:
            if station in self.removed:
                return None
            with self._views_lock:
                view, self._early = self._early or StationView(station, self.options), None
                view.name = station
                self.views[station] = view
        return view

    pipeline_at: str | None = None
    """Where the pipeline answers requests (set by the sink runner): check-ins go there."""

    def check_in(self, station: str, person: Any, member: Any) -> dict[str, Any]:
        """Ask the score stage to check `person` in as `member`: its answer
        ({"checked_in": ...} or {"error": ...}). Runs on an HTTP thread: a
        socket of its own for each request."""
        if type(person) is not int or not isinstance(member, str) or not member.strip():
            return {"error": 'send {"person": N, "member": "NAME"}'}
        if self.pipeline_at is None:
            return {"error": "this dashboard is not attached to a pipeline"}
        request = {"check_in": {"station": station, "person": person, "member": member.strip()}}
        reply = transport.request(self.pipeline_at, encode_plain(request), timeout_s=3.0)
        try:
            answer = decode_plain(reply[-1]) if reply else None
        except MessageError:
            answer = None
        if not isinstance(answer, dict):
            return {"error": "the pipeline did not answer"}
        return {k: v for k, v in answer.items() if k in ("checked_in", "person", "error")}

    def live(self, view: StationView) -> dict[str, Any]:
        return {
            **view.board.live(),
            "station": view.name,
            "stations": list(self.views),
            "stream": {**view.hub.stats(), "fps_cap": self.options.fps},
            "connections": self.server.stats(),
            "privacy": {"blur_faces": self.options.blur_faces},
        }

    def document(self, view: StationView) -> dict[str, Any]:
        return {**self.live(view), "reps": view.board.rows_since(0)}

    def floor(self) -> dict[str, Any]:
        """Every station's numbers, for the floor page's tiles."""
        with self._views_lock:
            views = list(self.views.values())
        return {"stations": [{"station": v.name, **v.board.live()} for v in views]}

    # --- the Sink protocol (the sink loop's thread: nothing here waits)

    def on_state(self, state: SessionState) -> None:
        if (view := self._view_of(state.station)) is not None:
            view.board.on_state(state)

    def on_result(self, packet: FramePacket) -> None:
        view = self._view_of(packet.meta.station)
        if view is None:
            return
        if packet.pixels is not None:
            view.hub.offer(packet)
        else:
            view.board.on_result(packet)

    def on_eos(self, eos: EndOfStream) -> None:
        if (view := self._view_of(eos.station)) is None:
            return
        view.board.on_eos(eos)
        if eos.reason == REMOVED:  # its tile goes; a file that ended keeps its counts
            with self._views_lock:
                del self.views[eos.station]
                self.removed.add(eos.station)
            view.hub.close()

    def tick(self) -> None:
        pass

    def drops(self) -> dict[str, int]:
        """Shown by `pipeline status`: frames never encoded because a newer
        one came first, and JPEGs viewers were too slow to take."""
        hubs = [view.hub.stats() for view in list(self.views.values())]
        server = self.server.stats()
        return {
            "superseded": sum(h["dropped"] for h in hubs),
            "slow-viewer": sum(h["viewer_skipped"] for h in hubs),
            "refused-busy": server["refused"],
            "cut-slow-client": server["cut_slow"],
        }

    def close(self, missed: int) -> None:
        views = [*self.views.values(), *([self._early] if self._early else [])]
        for view in views:
            view.board.close(missed)
            view.hub.close()
        deadline = time.monotonic() + CLOSE_GRACE_S
        while self.server.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server.shutdown()
        self.server.server_close()
        for view in views:
            stats = view.hub.stats()
            log.info(
                "web dashboard, %s: %d of %d frames encoded, %d dropped (a newer frame came "
                "first), %d skipped by slow viewers; %d results missed",
                view.name or "the station",
                stats["encoded"],
                stats["frames_in"],
                stats["dropped"],
                stats["viewer_skipped"],
                missed,
            )


def from_spec(spec: Spec, build: bool) -> WebSink | None:
    options = WebOptions.from_spec(spec)
    return WebSink(options) if build else None

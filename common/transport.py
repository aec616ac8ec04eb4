"""ZeroMQ plumbing: the only module that touches sockets.

Everything here is non-blocking or bounded by a timeout, so a stage can always
notice a stop request. Sockets close with linger 0.

Security. Every `tcp://` socket uses ZeroMQ's CURVE (encrypted, and the
binding side checks each client's public key through a ZAP handler, one
`ThreadAuthenticator` per process that binds). A process learns its keys
once: the launcher calls `use_curve(...)` or `use_insecure_loopback()`;
a stage process started by the supervisor takes them lazily from the key
folder (`repcoach.common.keys`), with the pipeline's own public key as the
server key. Plain tcp exists only in insecure mode and only on loopback
addresses. `ipc://` sockets need no keys: they live in a run folder only the
owner can enter (`repcoach.common.endpoints.run_dir`).

Every socket refuses inbound message parts over `max_message_bytes()`
(`ZMQ_MAXMSGSIZE`: the peer is disconnected), so a hostile or broken peer
cannot make a receiver allocate without bound.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth.thread
import zmq.utils.monitor
from zmq.utils import z85

from repcoach.common.endpoints import ROLES, outgoing_ports_start
from repcoach.common.errors import UserError
from repcoach.common.messages import Message, MessageError, decode

log = logging.getLogger(__name__)

PUSH, PULL, ROUTER, DEALER = zmq.PUSH, zmq.PULL, zmq.ROUTER, zmq.DEALER
XPUB, SUB, REQ = zmq.XPUB, zmq.SUB, zmq.REQ
Again = zmq.Again


def context() -> zmq.Context:
    return zmq.Context.instance()


# --- maximum message size

MAX_MESSAGE_MB = 64
"""Default cap on one inbound message part, in MiB. The largest legitimate
part is a frame's pixels (width*height*3 bytes): 64 MiB holds frames up to
about 22 megapixels (6K, 6144x3456); masks travel bit-packed in the small
header part. `REPCOACH_MAX_MESSAGE_MB` raises or lowers it (1..4096)."""


def max_message_bytes() -> int:
    raw = os.environ.get("REPCOACH_MAX_MESSAGE_MB", "")
    megabytes = MAX_MESSAGE_MB
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 4096:
            raise UserError(f"REPCOACH_MAX_MESSAGE_MB={raw!r}: give whole MiB in 1..4096")
        megabytes = int(raw)
    return megabytes * 2**20


# --- security of tcp sockets

ZAP_DOMAIN = "repcoach"
INSECURE_ENV = "REPCOACH_INSECURE_LOOPBACK"
"""Set to 1 by a launcher given `--insecure`, for the stage processes it starts."""
_TCP_HOST = re.compile(r"^tcp://(?P<host>\[[^\]]*\]|[^:/]+):\d+$")


@dataclass(frozen=True)
class Curve:
    """This process's CURVE identity (keys as 40-character Z85 text)."""

    public: bytes
    secret: bytes = field(repr=False)
    server: bytes
    """Public key of the pipeline this process connects to."""
    allowed: Callable[[bytes], bool] = field(repr=False)
    """Whether a client's public key may connect to a socket this process binds."""


class Insecure:
    """Plain tcp, loopback addresses only (`--insecure`)."""


INSECURE = Insecure()
_security: Curve | Insecure | None = None
_auth: zmq.auth.thread.ThreadAuthenticator | None = None
_auth_lock = threading.Lock()


def use_curve(curve: Curve) -> None:
    """Every tcp socket this process opens from now on is CURVE with these keys."""
    global _security
    _security = curve


def use_insecure_loopback() -> None:
    global _security
    _security = INSECURE


def security() -> Curve | Insecure:
    """What this process uses on tcp; chosen once, from the key folder unless
    a launcher already chose (see the module docstring)."""
    global _security
    if _security is None:
        if os.environ.get(INSECURE_ENV) == "1":
            _security = INSECURE
        else:
            from repcoach.common.keys import local_curve  # keys imports this module

            _security = local_curve()
    return _security


def curve_keypair() -> tuple[bytes, bytes]:
    """A new (public, secret) key pair, Z85 text."""
    return zmq.curve_keypair()


def curve_public(secret: bytes) -> bytes:
    return zmq.curve_public(secret)


def is_z85_key(key: bytes) -> bool:
    """A 32-byte CURVE key written as 40 Z85 characters."""
    if len(key) != 40:
        return False
    try:
        return len(z85.decode(key)) == 32 and z85.encode(z85.decode(key)) == key
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def is_loopback_endpoint(endpoint: str) -> bool:
    match = _TCP_HOST.match(endpoint)
    if not match:
        return False
    host = match["host"].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Allowed:
    """ZAP credentials provider: asks the key folder, counts refusals."""

    def __init__(self, allowed: Callable[[bytes], bool]):
        self.allowed = allowed
        self.refused = 0

    def callback(self, _domain: str, key: bytes) -> bool:
        if self.allowed(key):
            return True
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning(
                "refused a tcp peer whose public key %s is not allowed (%d refused so far); "
                "allow it with `pipeline keys add NAME KEY`",
                key.decode("ascii", "replace"),
                self.refused,
            )
        return False


def _start_authenticator(curve: Curve) -> None:
    """The ZAP handler must run before the first CURVE server binds: without
    one, libzmq would let any key in (ZAP_ENFORCE_DOMAIN also refuses then)."""
    global _auth
    with _auth_lock:
        if _auth is not None:
            return
        auth = zmq.auth.thread.ThreadAuthenticator(context(), log=log.getChild("zap"))
        auth.start()
        auth.configure_curve_callback(ZAP_DOMAIN, _Allowed(curve.allowed))
        _auth = auth
        atexit.register(_stop_authenticator)


def _stop_authenticator() -> None:
    global _auth
    with _auth_lock:
        auth, _auth = _auth, None
    if auth is not None:
        with contextlib.suppress(zmq.ZMQError):  # the context is already gone
            auth.stop()


def _secure(sock: zmq.Socket, endpoint: str, bind: bool, mode: Curve | Insecure) -> None:
    if isinstance(mode, Insecure):
        if not is_loopback_endpoint(endpoint):
            raise UserError(
                f"{endpoint}: plain tcp (--insecure) is only allowed on loopback addresses"
            )
        return
    sock.setsockopt(zmq.CURVE_PUBLICKEY, mode.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, mode.secret)
    if bind:
        _start_authenticator(mode)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
    else:
        sock.setsockopt(zmq.CURVE_SERVERKEY, mode.server)


def _private_parent(path: Path) -> None:
    from repcoach.common.endpoints import private_dir

    private_dir(path.parent, "socket folder")


def open_socket(
    kind: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int = 8,
    identity: bytes | None = None,
    options: Iterable[tuple[int, int]] = (),
    secure: Curve | Insecure | None = None,
    before_connect: Callable[[zmq.Socket], None] | None = None,
) -> zmq.Socket:
    """Create, configure and bind or connect one socket (CURVE on tcp).
    `secure` overrides the process's choice for this socket (benches
    measuring plain and CURVE tcp side by side); `before_connect` runs on a
    connecting socket just before it connects."""
    sock = context().socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes())
        if identity is not None:
            sock.setsockopt(zmq.ROUTING_ID, identity)
        for option, value in options:
            sock.setsockopt(option, value)
        if endpoint.startswith("tcp://"):
            _secure(sock, endpoint, bind, secure or security())
        if bind:
            if endpoint.startswith("ipc://"):
                _private_parent(Path(endpoint[len("ipc://") :]))
            _bind(sock, endpoint)
        else:
            if before_connect is not None:
                before_connect(sock)
            sock.connect(endpoint)
    except BaseException:
        sock.close(0)
        raise
    return sock


def _bind(sock: zmq.Socket, endpoint: str) -> None:
    """Bind, saying in one line what to do when the address is taken: a
    restart cannot free a port another program (or one of this machine's
    outgoing connections) holds."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as error:
        if error.errno != zmq.EADDRINUSE or not endpoint.startswith("tcp://"):
            raise
        raise UserError(
            f"{endpoint} is already in use on this machine; stop what holds it or pick "
            f"another --bind port (the pipeline takes PORT..PORT+{len(ROLES) - 1}; a port "
            f"under {outgoing_ports_start()} stays clear of the ports this machine gives "
            "outgoing connections)"
        ) from None


class PeerWatch:
    """Whether the peer of a connecting socket is still connected (a ZeroMQ
    socket monitor, attached before the connection is made).

    Why: libzmq discards whatever a receiver has not read yet from a
    connection its sender closes, linger or not (a receiver at its high-water
    mark leaves messages in the kernel). A lossless sender therefore keeps its
    connection until the receiver leaves first, which the next stage does
    only after end-of-stream, once it has everything."""

    def __init__(self, sock: zmq.Socket):
        self._events = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.connected = False
        self.ever_connected = False

    def _update(self, timeout_ms: int) -> None:
        while self._events.poll(timeout_ms):
            event = zmq.utils.monitor.recv_monitor_message(self._events)
            self.connected = event["event"] == zmq.EVENT_CONNECTED
            self.ever_connected |= self.connected
            timeout_ms = 0

    def wait_until_gone(self, should_stop: Callable[[], bool], timeout_s: float | None) -> bool:
        """Wait for the peer to disconnect; False on a stop request or timeout.
        A peer never connected yet is waited for first: what was queued for
        a connection not yet made is dropped when the socket closes."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._update(0)
        while self.connected or not self.ever_connected:
            if should_stop() or (deadline is not None and time.monotonic() > deadline):
                return False
            self._update(100)
        return True

    def close(self) -> None:
        self._events.close(0)


def open_watched(kind: int, endpoint: str, *, hwm: int) -> tuple[zmq.Socket, PeerWatch]:
    """A connecting socket and the watch on its peer (see `PeerWatch`)."""
    watches: list[PeerWatch] = []
    sock = open_socket(
        kind, endpoint, bind=False, hwm=hwm, before_connect=lambda s: watches.append(PeerWatch(s))
    )
    return sock, watches[0]


def router_options() -> list[tuple[int, int]]:
    """A ROUTER that reports unroutable peers and lets a restarted peer
    reclaim its identity at once."""
    return [(zmq.ROUTER_MANDATORY, 1), (zmq.ROUTER_HANDOVER, 1)]


def xpub_options(lossless: bool) -> list[tuple[int, int]]:
    """Every subscription is reported (to count sinks); lossless mode refuses
    to drop so the publisher can wait for a slow built-in sink."""
    return [(zmq.XPUB_VERBOSE, 1), (zmq.XPUB_NODROP, int(lossless))]


class RejectCounter:
    """Counts messages that failed validation, logging each kind once."""

    def __init__(self, stage: str):
        self.stage = stage
        self.counts: Counter[str] = Counter()

    def reject(self, error: MessageError) -> None:
        self.counts[error.kind] += 1
        if self.counts[error.kind] == 1:
            log.warning(
                "%s rejected a %s message (%s); further ones are only counted",
                self.stage,
                error.kind,
                error.detail,
            )


def recv_parts(sock: zmq.Socket) -> list:
    """One multipart message as zero-copy frames (call when readable)."""
    return sock.recv_multipart(copy=False)


def decode_parts(parts: list, rejects: RejectCounter) -> Message | None:
    """Decode validated, or count the rejection and return None."""
    try:
        return decode([p.buffer if isinstance(p, zmq.Frame) else p for p in parts])
    except MessageError as error:
        rejects.reject(error)
        return None


def receive(sock: zmq.Socket, rejects: RejectCounter) -> Message | None:
    return decode_parts(recv_parts(sock), rejects)


def raw_bytes(part: zmq.Frame | bytes) -> bytes:
    return part if isinstance(part, bytes) else part.bytes


def send(sock: zmq.Socket, parts: list, *, nonblocking: bool = False) -> None:
    sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK if nonblocking else 0)


def send_patiently(
    sock: zmq.Socket,
    parts: list,
    should_stop: Callable[[], bool],
    timeout_s: float | None = None,
) -> bool:
    """Send, waiting for room as long as needed (backpressure), but give up
    when asked to stop or after `timeout_s`. Returns whether it was sent."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            pass
        if should_stop() or (deadline is not None and time.monotonic() > deadline):
            return False
        # XPUB with NODROP does not signal POLLOUT reliably: a short sleep is
        # cheap here because this path only runs while a peer is full.
        if sock.type == zmq.XPUB:
            time.sleep(0.001)
        else:
            sock.poll(50, zmq.POLLOUT)


def route(sock: zmq.Socket, identity: bytes, parts: list) -> bool:
    """Send to one ROUTER peer; False if that peer is gone."""
    try:
        sock.send_multipart([identity, *parts], copy=False, flags=zmq.NOBLOCK)
        return True
    except zmq.ZMQError as error:
        if error.errno in (zmq.EHOSTUNREACH, zmq.EAGAIN):
            return False
        raise


class Poller:
    """Readable-socket polling with a timeout (never blocks forever)."""

    def __init__(self, *sockets: zmq.Socket):
        self._poller = zmq.Poller()
        for sock in sockets:
            self._poller.register(sock, zmq.POLLIN)

    def ready(self, timeout_ms: int) -> set[zmq.Socket]:
        return {sock for sock, _ in self._poller.poll(timeout_ms)}


def request(endpoint: str, body: bytes, timeout_s: float) -> list | None:
    """One REQ/REP round trip; None when nobody answers in time."""
    sock = open_socket(REQ, endpoint, bind=False, hwm=1)
    try:
        sock.send(body)
        if sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return sock.recv_multipart()
        return None
    finally:
        sock.close(0)


def subscribe(sock: zmq.Socket, topics: Iterable[bytes]) -> None:
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)


# Closing an output with linger 0 would discard what is still queued for the next stage.
OUTPUT_LINGER_MS = 5000


def shutdown(linger_ms: int = OUTPUT_LINGER_MS) -> None:
    """End of process: close every socket, letting queued messages go out for
    up to `linger_ms`, and terminate the context. Without this, interpreter
    exit can free zero-copy buffers that libzmq is still sending."""
    _stop_authenticator()  # its thread's sockets must not be closed under it
    # A signal arriving while queued output drains would interrupt the
    # context's termination, which pyzmq then treats as done: the queue would
    # be lost at exit. Held back until the queue is out (SIGKILL still works).
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        context().destroy(linger=linger_ms)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def close_linger(sock: zmq.Socket, linger_ms: int) -> None:
    """Close, letting queued messages go out for up to `linger_ms`."""
    sock.close(linger_ms)


def close_all(*sockets: zmq.Socket | None) -> None:
    for sock in sockets:
        if sock is not None:
            sock.close(0)

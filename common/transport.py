"""ZeroMQ plumbing: the only module that touches sockets.

Everything here is non-blocking or bounded by a timeout, so a stage can always
notice a stop request. Sockets close with linger 0.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import zmq

from repcoach.common.messages import Message, MessageError, decode

log = logging.getLogger(__name__)

PUSH, PULL, ROUTER, DEALER = zmq.PUSH, zmq.PULL, zmq.ROUTER, zmq.DEALER
XPUB, SUB, REQ = zmq.XPUB, zmq.SUB, zmq.REQ
Again = zmq.Again


def context() -> zmq.Context:
    return zmq.Context.instance()


def open_socket(
    kind: int,
    endpoint: str,
    *,
    bind: bool,
    hwm: int = 8,
    identity: bytes | None = None,
    options: Iterable[tuple[int, int]] = (),
) -> zmq.Socket:
    """Create, configure and bind or connect one socket."""
    sock = context().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    for option, value in options:
        sock.setsockopt(option, value)
    if bind:
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://") :]).parent.mkdir(parents=True, exist_ok=True)
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)
    return sock


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
        if sock.socket_type == zmq.XPUB:
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
    context().destroy(linger=linger_ms)


def close_linger(sock: zmq.Socket, linger_ms: int) -> None:
    """Close, letting queued messages go out for up to `linger_ms`."""
    sock.close(linger_ms)


def close_all(*sockets: zmq.Socket | None) -> None:
    for sock in sockets:
        if sock is not None:
            sock.close(0)

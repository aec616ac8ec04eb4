"""The dashboard cannot be exhausted or rebound: a cap on connections (the
rest answered 503), a deadline for the whole request head, and a Host check.
Real sockets against a WebSink started in this process."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

import pytest

from repcoach.common.errors import UserError
from repcoach.stages.sinks import make_sink
from repcoach.stages.sinks.web import host_allowed, own_names


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def status_of(sock: socket.socket) -> int:
    """The status code of the answer on `sock` (fails, never hangs)."""
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1024)
        assert chunk, f"closed without an answer (got {head!r})"
        head += chunk
    return int(head.split(b" ", 2)[1])


def get(port: int, path: str = "/healthz", host: str | None = "") -> int:
    with connect(port) as sock:
        host_line = "" if host is None else f"Host: {host or f'127.0.0.1:{port}'}\r\n"
        sock.sendall(f"GET {path} HTTP/1.1\r\n{host_line}Connection: close\r\n\r\n".encode())
        return status_of(sock)


@pytest.fixture
def dashboard():
    sinks = []

    def start(options: str = ""):
        sink = make_sink("web:port=0,fps=5" + (f",{options}" if options else ""))
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.close(0)


def test_two_hundred_idle_viewers_are_capped_and_the_33rd_gets_503(dashboard):
    before = threading.active_count()
    sink = dashboard()
    port = sink.port
    request = f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    viewers, refused, statuses = [], [], []
    try:
        for _ in range(32):  # idle event-stream viewers: each holds a thread
            sock = connect(port)
            sock.sendall(request)
            assert status_of(sock) == 200
            viewers.append(sock)
        for _ in range(168):
            sock = connect(port)
            sock.sendall(request)
            refused.append(sock)
        statuses = [status_of(sock) for sock in refused]
        threads = threading.active_count() - before
        stats = sink.server.stats()
    finally:
        for sock in viewers + refused:
            sock.close()
    assert statuses[0] == 503, "the 33rd connection was served"
    assert statuses == [503] * 168
    # 32 viewer threads + the server, encoder and doorman threads
    assert threads <= 32 + 4, f"{threads} threads for 200 connections"
    assert stats["clients"] == 32 and stats["refused"] == 168
    assert sink.drops()["refused-busy"] == 168
    # Once the viewers leave, the dashboard serves again.
    deadline = time.monotonic() + 10
    while sink.server.stats()["clients"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(port) == 200


def test_max_clients_is_configurable(dashboard):
    sink = dashboard("max_clients=2")
    held = [connect(sink.port) for _ in range(2)]  # connected, nothing sent yet
    try:
        time.sleep(0.3)
        assert get(sink.port) == 503
    finally:
        for sock in held:
            sock.close()


def test_a_client_dripping_its_headers_is_cut_at_the_deadline(dashboard):
    sink = dashboard("header_timeout=2")
    sock = connect(sink.port)
    started = time.monotonic()
    cut_after = None
    try:
        sock.sendall(b"GET /events HTTP/1.1\r\n")
        for byte in b"X-Slow: " + b"a" * 20:  # one header byte a second
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                with contextlib.suppress(OSError):
                    if sock.recv(1024) == b"":
                        cut_after = time.monotonic() - started
                        break
            try:
                sock.send(bytes([byte]))
            except OSError:
                cut_after = time.monotonic() - started
                break
    finally:
        sock.close()
    assert cut_after is not None, "a dripping client held its thread for 20 s"
    assert cut_after < 4.5, f"cut only after {cut_after:.1f} s"
    assert sink.drops()["cut-slow-client"] == 1
    assert get(sink.port) == 200  # the others are served as before


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("localhost", 200),
        ("[::1]:{port}", 200),
        ("gym.example", 200),  # configured: hosts=gym.example
        ("evil.example:{port}", 421),
        ("evil.example", 421),
        ("localhost.evil.example:{port}", 421),
        ("localhost:1", 421),
        ("", 421),
    ],
)
def test_a_host_header_naming_another_site_is_refused(dashboard, host, status):
    sink = dashboard("hosts=gym.example")
    for path in ("/", "/state.json", "/events"):
        with connect(sink.port) as sock:
            head = f"GET {path} HTTP/1.1\r\nHost: {host.format(port=sink.port)}\r\n\r\n"
            sock.sendall(head.encode())
            assert status_of(sock) == status, (host, path)


def test_host_rules():
    own = own_names("127.0.0.1")
    assert host_allowed(None, own, frozenset(), 80)  # HTTP/1.0: no Host
    assert host_allowed("10.1.2.3:80", own, frozenset(), 80)
    assert not host_allowed("10.1.2.3:81", own, frozenset(), 80)
    assert host_allowed("Gym.Example.:8443", own, frozenset({"gym.example"}), 80)
    assert not host_allowed("attacker.test", own_names("0.0.0.0"), frozenset(), 80)
    assert host_allowed(socket.gethostname(), own_names("0.0.0.0"), frozenset(), 80)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("max_clients=0", "max_clients=0 is outside"),
        ("max_clients=2.5", "not a whole number"),
        ("header_timeout=0", "header_timeout=0 is outside"),
    ],
)
def test_limit_options_are_checked_in_one_line(options, message):
    with pytest.raises(UserError, match=message):
        make_sink(f"web:port=0,{options}", build=False)

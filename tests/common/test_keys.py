"""CURVE keys (`pipeline keys ...`) and the transport's tcp security, with real
processes and sockets: a server process binds through `transport.open_socket`
and raw pyzmq clients knock with no key, an unknown key and an allowed one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from repcoach.common import transport
from tests.conftest import free_port, pipeline_command

SERVER = r"""
import sys, time
from repcoach.common import transport
sock = transport.open_socket(transport.ROUTER, sys.argv[1], bind=True, hwm=100)
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if not sock.poll(100):
        continue
    parts = [transport.raw_bytes(p) for p in transport.recv_parts(sock)]
    print(f"got {len(parts[-1])}", flush=True)
    if parts[-1] == b"quit":
        break
    transport.route(sock, parts[0], [b"", b"echo:" + parts[-1][:16]])
transport.shutdown(0)
"""


def keys(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REPCOACH_KEYS_DIR": str(folder)}
    return subprocess.run(
        [*pipeline_command(), "keys", *args], env=env, capture_output=True, text=True, timeout=60
    )


def public_key(folder: Path) -> str:
    result = keys(folder, "show")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def secret_key(folder: Path) -> str:
    text = (folder / "self.key_secret").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if "secret-key" in line)


@pytest.fixture
def key_folders(tmp_path):
    """Two hosts' key folders, each with its own key pair."""
    server, client = tmp_path / "server-keys", tmp_path / "client-keys"
    for folder, name in ((server, "edge"), (client, "gpu")):
        result = keys(folder, "init", "--name", name)
        assert result.returncode == 0, result.stderr
    return server, client


def test_init_writes_private_files_and_never_prints_the_secret(tmp_path):
    folder = tmp_path / "keys"
    result = keys(folder, "init", "--name", "edge")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    public, secret = public_key(folder), secret_key(folder)
    assert transport.is_z85_key(public.encode()) and transport.is_z85_key(secret.encode())
    assert public in result.stdout
    listing = keys(folder, "list", "--json")
    for output in (result, listing, keys(folder, "show")):
        assert secret not in output.stdout + output.stderr
    again = keys(folder, "init")
    assert again.returncode == 1
    assert again.stderr.startswith("error: this host already has a key pair")
    assert len(again.stderr.strip().splitlines()) == 1
    assert public_key(folder) == public  # not replaced


def test_a_secret_key_others_can_read_is_refused(tmp_path):
    folder = tmp_path / "keys"
    assert keys(folder, "init").returncode == 0
    (folder / "self.key_secret").chmod(0o644)
    result = keys(folder, "show")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "can be read by others" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "gpu", "abc"], "is not a CURVE public key"),
        (["add", "gpu", "x" * 39 + "~"], "is not a CURVE public key"),
        (["add", "../etc", "0" * 40], "key name '../etc'"),
        (["add", "self", "0" * 40], "key name 'self'"),
        (["remove", "nobody"], "no allowed client named 'nobody'"),
        (["show"], "this host has no CURVE key pair"),
    ],
)
def test_bad_key_commands_fail_in_one_line(tmp_path, args, message):
    result = keys(tmp_path / "keys", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_add_list_remove(key_folders):
    server, client = key_folders
    gpu = public_key(client)
    assert keys(server, "add", "gpu", gpu).returncode == 0
    assert keys(client, "add", "edge", public_key(server), "--server").returncode == 0
    listing = keys(server, "list").stdout
    assert f"gpu {gpu}" in listing
    for path in (server / "allowed").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys(server, "remove", "gpu").returncode == 0
    assert "gpu" not in keys(server, "list").stdout


def test_a_mounted_secret_is_imported_into_a_private_key_folder(key_folders, tmp_path):
    """Kubernetes mounts a Secret as files anyone in the pod may read (mode
    0644 here); `keys import` copies it into the host's own 0700/0600 folder."""
    server, client = key_folders
    assert keys(server, "add", "gpu", public_key(client)).returncode == 0
    mounted = tmp_path / "mounted"
    shutil.copytree(server, mounted)
    for path in [mounted, *mounted.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    fresh = tmp_path / "pod-keys"
    result = keys(fresh, "import", str(mounted))
    assert result.returncode == 0, result.stderr
    assert (
        "imported edge's key pair, 1 allowed client(s) and 0 trusted pipeline(s)" in result.stdout
    )
    assert public_key(fresh) == public_key(server)
    assert f"gpu {public_key(client)}" in keys(fresh, "list").stdout
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in fresh.rglob("*.key*")} == {0o600}
    # A secret key that does not match its public key is refused, in one line.
    text = (mounted / "self.key_secret").read_text()
    (mounted / "self.key_secret").write_text(text.replace(secret_key(server), secret_key(client)))
    result = keys(tmp_path / "other", "import", str(mounted))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("the secret key does not match its public key")


def test_a_key_starting_with_a_dash_is_a_key_not_an_option(tmp_path):
    """Z85 keys use "-" too: about one key in 85 starts with it (it made the
    CI run of 2026-12-05 fail at `keys add`)."""
    dashed = "-B(VfW]9!929RjTyfj=Y5dRnj8[lPW3OJ2nG3hy]"
    for args in (["add", "gpu", dashed], ["add", "edge", dashed, "--server"]):
        result = keys(tmp_path, *args)
        assert result.returncode == 0, result.stderr
    assert f"gpu {dashed}" in keys(tmp_path, "list").stdout


class Server:
    """The server process: a ROUTER bound on tcp through the transport."""

    def __init__(self, key_folder: Path, **env: str):
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.endpoint],
            env={**os.environ, "REPCOACH_KEYS_DIR": str(key_folder), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.strip() == "ready", self.process.stderr.read()

    def stop(self) -> str:
        """Everything it printed after 'ready'."""
        self.process.kill()
        out, err = self.process.communicate(10)
        return out + err


def client_socket(endpoint: str, curve: tuple[str, str, str] | None) -> zmq.Socket:
    """A raw pyzmq DEALER: plain (no CURVE) or with (public, secret, server key)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 2000)  # a refused peer has nowhere to queue
    if curve is not None:
        public, secret, server = curve
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public.encode())
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret.encode())
        sock.setsockopt(zmq.CURVE_SERVERKEY, server.encode())
    sock.connect(endpoint)
    return sock


def ask(sock: zmq.Socket, body: bytes, timeout_s: float = 3.0) -> bytes | None:
    try:
        sock.send_multipart([b"", body])
    except zmq.Again:  # the handshake failed: nobody to send to
        return None
    if sock.poll(int(timeout_s * 1000)):
        return sock.recv_multipart()[-1]
    return None


@pytest.mark.slow  # five refused peers, each waited on for 3 s
def test_only_allowed_keys_get_through(key_folders):
    server_keys, client_keys = key_folders
    server = Server(server_keys)
    try:
        server_public = public_key(server_keys)
        gpu = (public_key(client_keys), secret_key(client_keys), server_public)
        stranger = zmq.curve_keypair()
        plain = client_socket(server.endpoint, None)
        unknown = client_socket(server.endpoint, (*(k.decode() for k in stranger), server_public))
        not_yet = client_socket(server.endpoint, gpu)
        assert ask(plain, b"CONFIG") is None  # no CURVE: the handshake fails
        assert ask(unknown, b"CONFIG") is None  # CURVE, but a key nobody allowed
        assert ask(not_yet, b"CONFIG") is None
        # The pipeline's own key is always let in (its own stages connect with it).
        own = (server_public, secret_key(server_keys), server_public)
        assert ask(client_socket(server.endpoint, own), b"hi") == b"echo:hi"
        # Allowed while it runs: the next connection gets through.
        assert keys(server_keys, "add", "gpu", gpu[0]).returncode == 0
        allowed = client_socket(server.endpoint, gpu)
        assert ask(allowed, b"CONFIG") == b"echo:CONFIG"
        # A client that has the wrong idea of the server's key gets nothing.
        fooled = client_socket(server.endpoint, (gpu[0], gpu[1], stranger[0].decode()))
        assert ask(fooled, b"CONFIG") is None
        assert keys(server_keys, "remove", "gpu").returncode == 0
        revoked = client_socket(server.endpoint, gpu)
        assert ask(revoked, b"CONFIG") is None
    finally:
        output = server.stop()
    received = [line for line in output.splitlines() if line.startswith("got ")]
    assert received == ["got 2", "got 6"], output  # only "hi" and the allowed CONFIG
    assert "refused a tcp peer whose public key" in output
    assert secret_key(server_keys) not in output and secret_key(client_keys) not in output


def test_an_oversized_message_is_refused_and_the_server_keeps_serving(key_folders):
    server_keys, _ = key_folders
    server = Server(server_keys, REPCOACH_MAX_MESSAGE_MB="1")
    try:
        server_public = public_key(server_keys)
        own = (server_public, secret_key(server_keys), server_public)
        big = client_socket(server.endpoint, own)
        assert ask(big, b"x" * (2 * 2**20), timeout_s=3.0) is None
        assert ask(client_socket(server.endpoint, own), b"small") == b"echo:small"
    finally:
        output = server.stop()
    assert [line for line in output.splitlines() if line.startswith("got ")] == ["got 5"]


def test_a_tcp_socket_without_keys_is_refused(tmp_path):
    """Fail closed: no key pair, no tcp (not a silent plain socket)."""
    code = (
        "from repcoach.common import transport\n"
        "try:\n"
        "    transport.open_socket(transport.PULL, 'tcp://127.0.0.1:1', bind=False)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    env = {**os.environ, "REPCOACH_KEYS_DIR": str(tmp_path / "none")}
    env.pop(transport.INSECURE_ENV, None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.startswith("UserError this host has no CURVE key pair"), out
    env[transport.INSECURE_ENV] = "1"
    code = code.replace("127.0.0.1", "10.1.2.3")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "only allowed on loopback addresses" in out, out


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("tcp://127.0.0.1:5550", True),
        ("tcp://127.9.9.9:5550", True),
        ("tcp://localhost:5550", True),
        ("tcp://[::1]:5550", True),
        ("tcp://0.0.0.0:5550", False),
        ("tcp://*:5550", False),
        ("tcp://10.0.0.1:5550", False),
        ("tcp://edge-box:5550", False),
        ("tcp://[::]:5550", False),
    ],
)
def test_loopback_endpoints(endpoint, loopback):
    assert transport.is_loopback_endpoint(endpoint) is loopback


def test_a_big_frame_fits_under_the_default_cap():
    assert transport.max_message_bytes() >= 3840 * 2160 * 3  # 4K pixels in one part
    assert transport.max_message_bytes() < 16384 * 16384 * 3

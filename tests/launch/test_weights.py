"""`pipeline weights download|list` against a real HTTP server on 127.0.0.1.

The served file is a small Keras-layout HDF5 file holding the layer names the
real manifest requires, so verification runs exactly as for the real weights.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from repcoach.common.weights import load_manifest
from repcoach.launch.weights import weights_app

REPO = Path(__file__).resolve().parents[2]
REQUIRED_LAYERS = load_manifest()["maskrcnn"].layers
FILE_NAME = load_manifest()["maskrcnn"].file


def write_keras_h5(path: Path, layers: tuple[str, ...], seed: int = 0) -> None:
    """A weights file in the layout Keras' `save_weights` writes."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in ("input_image", *layers)]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.19.0"
        f.create_group("input_image").attrs["weight_names"] = []
        for name in layers:
            group = f.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group.create_dataset(names[0], data=rng.standard_normal((3, 3, 8, 64), np.float32))
            group.create_dataset(names[1], data=rng.standard_normal(64, np.float32))


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("served") / "weights.h5"
    write_keras_h5(path, REQUIRED_LAYERS)
    return path.read_bytes()


@dataclass
class Server:
    """What the handler serves and what it saw."""

    payload: bytes
    url: str = ""
    honour_range: bool = True
    cut_after: int | None = None  # the next GET sends only this many bytes, then hangs up
    ranges: list[str | None] = field(default_factory=list)


@pytest.fixture
def server(payload):
    state = Server(payload)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            wanted = self.headers.get("Range")
            state.ranges.append(wanted)
            start = 0
            if wanted and state.honour_range:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
            size = len(state.payload)
            body = state.payload[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                body, state.cut_after = body[: state.cut_after], None
                self.wfile.write(body)
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/mask_rcnn_coco.h5"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def write_manifest(path: Path, url: str, data: bytes, sha256: str | None = "real") -> Path:
    digest = hashlib.sha256(data).hexdigest() if sha256 == "real" else sha256
    entry = {
        "name": "maskrcnn",
        "file": FILE_NAME,
        "url": url,
        "size": len(data),
        "sha256": digest,
        "layers": list(REQUIRED_LAYERS),
    }
    path.write_text(json.dumps({"weights": [entry]}))
    return path


def run_cli(*args: str):
    return CliRunner().invoke(weights_app, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def fetch(manifest: Path, folder: Path, *extra: str):
    """`pipeline weights download maskrcnn` into `folder`."""
    return run_cli(
        "download", "maskrcnn", "--weights-dir", str(folder), "--manifest", str(manifest), *extra
    )


def download(server: Server, tmp_path: Path, sha256: str | None = "real"):
    """Download what `server` serves, with a manifest that describes it."""
    manifest = write_manifest(tmp_path / "manifest.json", server.url, server.payload, sha256)
    return fetch(manifest, tmp_path / "w")


# A file that fails verification never reaches the final name: see
# test_failed_verification_installs_nothing and the resume test.
def test_download_verifies_then_installs(server, tmp_path):
    final = tmp_path / "w" / FILE_NAME
    result = download(server, tmp_path)
    assert result.exit_code == 0, result.output
    assert final.read_bytes() == server.payload
    assert not final.with_name(FILE_NAME + ".part").exists()
    assert "verified" in result.stdout


def test_resume_continues_with_range(server, tmp_path):
    server.cut_after = 12_345
    part = tmp_path / "w" / (FILE_NAME + ".part")
    first = download(server, tmp_path)
    assert first.exit_code == 1
    [line] = error_lines(first)
    assert "interrupted at 12,345 bytes" in line and "resume" in line
    assert part.read_bytes() == server.payload[:12_345]
    assert not (tmp_path / "w" / FILE_NAME).exists()

    second = download(server, tmp_path)
    assert second.exit_code == 0, second.output
    assert server.ranges == [None, "bytes=12345-"]
    assert (tmp_path / "w" / FILE_NAME).read_bytes() == server.payload


def test_server_without_range_support_restarts(server, tmp_path):
    server.honour_range = False
    part = tmp_path / "w" / (FILE_NAME + ".part")
    part.parent.mkdir()
    part.write_bytes(b"\xff" * 5000)  # a stale prefix that must not survive
    result = download(server, tmp_path)
    assert result.exit_code == 0, result.output
    assert server.ranges == ["bytes=5000-"]
    assert "restarting" in result.stderr
    assert (tmp_path / "w" / FILE_NAME).read_bytes() == server.payload


@pytest.mark.parametrize(
    ("sha256", "served", "reason"),
    [
        ("0" * 64, None, "SHA-256 differs"),
        (None, b"not an hdf5 file, just bytes", "not a readable HDF5 file"),
        (None, "missing-layers", "lacks the model's layers mrcnn_mask"),
    ],
)
def test_failed_verification_installs_nothing(server, tmp_path, sha256, served, reason):
    if served == "missing-layers":
        path = tmp_path / "partial.h5"
        write_keras_h5(path, tuple(n for n in REQUIRED_LAYERS if n != "mrcnn_mask"))
        served = path.read_bytes()
    if served is not None:
        server.payload = served
    result = download(server, tmp_path, sha256=sha256)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "failed verification" in line and reason in line
    assert list((tmp_path / "w").iterdir()) == []


def test_size_mismatch_fails_verification(server, tmp_path):
    manifest = write_manifest(tmp_path / "manifest.json", server.url, server.payload)
    server.payload = server.payload + b"\0" * 10  # the server now sends a longer file
    result = fetch(manifest, tmp_path / "w")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "failed verification" in line and "differs from the manifest" in line
    assert list((tmp_path / "w").iterdir()) == []


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url_is_one_line_and_keeps_part(tmp_path, payload):
    url = f"http://127.0.0.1:{unused_port()}/mask_rcnn_coco.h5"
    manifest = write_manifest(tmp_path / "manifest.json", url, payload)
    part = tmp_path / "w" / (FILE_NAME + ".part")
    part.parent.mkdir()
    part.write_bytes(payload[:100])
    result = fetch(manifest, tmp_path / "w")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"cannot download {url}") and "refused" in line.lower()
    assert part.read_bytes() == payload[:100]


def test_url_option_overrides_manifest(server, tmp_path):
    nowhere = "http://127.0.0.1:9/nowhere"
    manifest = write_manifest(tmp_path / "manifest.json", nowhere, server.payload)
    result = fetch(manifest, tmp_path / "w", "--url", server.url)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / FILE_NAME).read_bytes() == server.payload


def test_unknown_name_lists_valid_names(tmp_path):
    result = run_cli("download", "yolo", "--weights-dir", str(tmp_path))
    assert result.exit_code == 1
    assert error_lines(result) == ["unknown weights 'yolo'; valid names: maskrcnn"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "missing"),
        ("good", "valid: "),
        ("truncated", "INVALID: .* size WRONG"),
        ("wrong-sha", "INVALID: .* sha256 WRONG"),
    ],
)
def test_list_reports_each_state(tmp_path, payload, content, expected):
    manifest = write_manifest(tmp_path / "manifest.json", "http://unused", payload)
    if content == "wrong-sha":
        write_manifest(manifest, "http://unused", payload, sha256="1" * 64)
    target = tmp_path / FILE_NAME
    if content in ("good", "wrong-sha"):
        target.write_bytes(payload)
    elif content == "truncated":
        target.write_bytes(payload[:1000])
    result = run_cli("list", "--weights-dir", str(tmp_path), "--manifest", str(manifest))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("maskrcnn:"))
    assert re.search(expected, line), line


def test_weights_dir_from_environment(tmp_path, payload, monkeypatch):
    monkeypatch.setenv("REPCOACH_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / FILE_NAME).write_bytes(payload)
    manifest = write_manifest(tmp_path / "manifest.json", "http://unused", payload)
    result = run_cli("list", "--manifest", str(manifest))
    assert f"weights folder: {tmp_path}" in result.stdout
    assert "maskrcnn: valid" in result.stdout


def test_console_script(server, tmp_path):
    """The installed `pipeline` entry point mounts this sub-app."""
    script = REPO / ".venv" / "bin" / "pipeline"
    if not script.exists():
        pytest.skip(f"{script} not installed (pip install -e .)")
    if not (REPO / "launch" / "cli.py").exists():
        pytest.skip("launch/cli.py (the main CLI) is not in this checkout")
    manifest = write_manifest(tmp_path / "manifest.json", server.url, server.payload)
    common = ["--weights-dir", str(tmp_path / "w"), "--manifest", str(manifest)]
    fetched = subprocess.run(
        [str(script), "weights", "download", "maskrcnn", *common],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fetched.returncode == 0, fetched.stderr
    listed = subprocess.run(
        [str(script), "weights", "list", *common], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    assert "maskrcnn: valid" in listed.stdout


def test_present_file_is_not_fetched_again(server, tmp_path):
    assert download(server, tmp_path).exit_code == 0
    again = download(server, tmp_path)
    assert again.exit_code == 0, again.output
    assert server.ranges == [None]  # one request in all

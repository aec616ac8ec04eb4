"""Shared fixtures: the real `pipeline` CLI in subprocesses, rendered videos,
and the shared clips folder (skipped cleanly when absent)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench import ports
from repcoach.common.clips import clips_dir
from repcoach.common.endpoints import ROLES

REPO = Path(__file__).resolve().parents[1]


def shared_clips() -> Path | None:
    folder = clips_dir()
    return folder if (folder / "labels.json").exists() else None


@pytest.fixture
def clips() -> Path:
    folder = shared_clips()
    if folder is None:
        pytest.skip("../shared/clips is absent (real workout clips are not shipped with the repo)")
    return folder


def pipeline_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from repcoach.launch.cli import main; main()"]


@pytest.fixture
def run_root():
    """A short run folder per test (ipc socket paths must stay under ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class Pipeline:
    """Runs `pipeline ...` commands against one run folder."""

    def __init__(self, run_root: Path):
        self.env = {
            **os.environ,
            "REPCOACH_RUN_DIR": str(run_root),
            "REPCOACH_DATA_DIR": str(run_root / "data"),  # history, queues: never the user's
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: list[subprocess.Popen] = []

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*pipeline_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [*pipeline_command(), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def status(self, name: str = "default") -> dict | None:
        result = self.run("status", "--json", "--name", name, timeout=30)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def wait_for(self, predicate, timeout: float, name: str = "default", what: str = "") -> dict:
        """Poll status until predicate(status) holds; fail (not hang) on timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        pytest.fail(
            f"timed out after {timeout} s waiting for {what or predicate}; last status {last}"
            + "".join(self._ended())
        )

    def _ended(self) -> list[str]:
        """What each started process that has ended said (why a wait found nothing)."""
        ended = []
        for process in self.processes:
            if process.poll() is not None:
                command = " ".join(process.args[len(pipeline_command()) :][:2])
                tail = process.stderr.read()[-2000:] if process.stderr else ""
                ended.append(f"\n`pipeline {command}` exited {process.returncode}: {tail}")
        return ended

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def pipeline(run_root):
    runner = Pipeline(run_root)
    yield runner
    runner.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port_block() -> int:
    """A base port with the successors a pipeline binds free on loopback."""
    return ports.free_port_block(len(ROLES))


def run_keys(pipeline: Pipeline, folder: Path, *args: str) -> str:
    """`pipeline keys ARGS` on the key folder `folder`; its output."""
    result = subprocess.run(
        [*pipeline_command(), "keys", *args],
        env={**pipeline.env, "REPCOACH_KEYS_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def netns_allowed() -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = f"rcprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    return None


def stage_report(status: dict, stage: str) -> dict:
    for row in status["stages"]:
        if row["stage"] == stage:
            return row
    raise AssertionError(f"no stage {stage} in {[r['stage'] for r in status['stages']]}")


def write_video(path: Path, frames: int, size=(320, 240), fps: float = 30.0) -> Path:
    """A video whose frames differ from each other (a moving bar and noise)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
        x = (i * 7) % width
        image[:, x : x + 10] = 255
        cv2.putText(image, str(i), (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 255, 0), 2)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def video(tmp_path):
    def make(frames: int, **kwargs) -> Path:
        return write_video(tmp_path / f"numbered_{frames}.mp4", frames, **kwargs)

    return make


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def pytest_collection_modifyitems(items):
    """A test that starts the pipeline's processes (the `pipeline` fixture)
    is `slow` too, so `pytest -m "not slow"` is the in-process tier."""
    for item in items:
        if "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)

"""`pipeline service install`: a systemd unit that systemd accepts, whose
command the real CLI parses, and that matches the one in deploy/systemd."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from repcoach.launch.cli import check_command
from repcoach.launch.service import render_unit

DEPLOYED = Path(__file__).parents[2] / "deploy" / "systemd" / "repcoach-default.service"


def exec_start(unit: str) -> list[str]:
    [line] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_unit_runs_up_with_the_given_options(pipeline, tmp_path):
    result = pipeline.run(
        "service", "install", "--name", "floor", "--user", "repcoach",
        "--unit-dir", str(tmp_path), "--",
        "--source", "rtsp://cam.local/1", "--sink", "web:port=8080", "--summary", "a b.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit_path = tmp_path / "repcoach-floor.service"
    assert f"wrote {unit_path}" in result.stdout
    unit = unit_path.read_text()
    command = exec_start(unit)
    assert command[1:] == [
        "up", "--no-console", "--name", "floor", "--source", "rtsp://cam.local/1",
        "--sink", "web:port=8080", "--summary", "a b.json",
    ]  # fmt: skip
    check_command(command[1:])  # the real CLI takes them
    expected = {"User=repcoach", "KillMode=mixed", "Restart=on-failure", "StateDirectory=repcoach"}
    assert expected <= set(unit.splitlines())
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr


def test_options_the_pipeline_would_refuse_write_nothing(pipeline, tmp_path):
    result = pipeline.run(
        "service", "install", "--unit-dir", str(tmp_path), "--", "--sourc", "camera0"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: `pipeline up --no-console --sourc camera0`: No such option: --sourc "
        "(Possible options: --history, --source, --summary)"
    ]
    assert not list(tmp_path.iterdir())


def test_the_shipped_unit_is_what_install_writes():
    shipped = DEPLOYED.read_text()
    command = exec_start(shipped)
    assert shipped == render_unit("default", "repcoach", command[5:], Path(command[0]))
    check_command(command[1:])

"""The vision benchmark's CPU accounting, on real processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.vision import steady_cpu_ms, tree_cpu_s

BENCH = Path(__file__).resolve().parents[2] / "bench"
SPIN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_cpu_of_a_process_tree_includes_its_children_alive_and_reaped():
    # A parent that starts one child that spins and exits (reaped: it moves
    # into the parent's cutime), then another that spins and stays alive.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            f"subprocess.run([sys.executable, '-c', {SPIN!r}])\n"
            f"alive = subprocess.Popen([sys.executable, '-c', {SPIN!r} + 'time.sleep(30)'])\n"
            "sys.stdout.write('go\\n'); sys.stdout.flush(); alive.wait()\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: one killpg ends the tree
    )
    try:
        assert parent.stdout.readline() == "go\n"
        deadline = time.monotonic() + 20
        total = 0.0
        while time.monotonic() < deadline:
            total = sum(tree_cpu_s(parent.pid).values())
            if total >= 0.75:
                break
            time.sleep(0.1)
        assert total >= 0.75, total  # both children's 0.4 s, one of them reaped
        assert set(tree_cpu_s(parent.pid)) == {"supervisor", "other"}
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(10)


def test_steady_cpu_is_per_frame_between_first_and_last_result():
    assert steady_cpu_ms(1.0, 2.0, 101) == 10.0
    assert steady_cpu_ms(None, 2.0, 101) is None
    assert steady_cpu_ms(1.0, 2.0, 1) is None


@pytest.mark.slow
def test_the_metrics_bench_prints_its_ratio():
    result = subprocess.run(
        [sys.executable, str(BENCH / "metrics.py"), "--synthetic", "--quick", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("steady CPU")]
    assert len(lines) == 1 and "x (goal <= 1.02x" in lines[0], result.stdout
    scrapes = int(lines[0].split(" scrapes")[0].rsplit(" ", 1)[1])
    assert scrapes >= 1  # the endpoint answered while the pipeline ran


@pytest.mark.slow
def test_the_multicam_bench_compares_one_pipeline_with_separate_ones():
    result = subprocess.run(
        [sys.executable, str(BENCH / "multicam.py"), "--quick", "--sources", "2", "--modes=file"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "2 source(s), file:" in out and "ratio" in out, out
    assert "reps         identical" in out, out  # a station counts as it does alone

"""Heart rate from a Bluetooth LE strap, end to end: bumble's software
controllers on a virtual link, an emulated strap that notifies a rising
heart rate and drops out for a while, and the real pipeline reading it
through `--ble tcp-client:...`."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from repcoach.common.history import History
from tests.conftest import free_port, read_jsonl

pytest.importorskip("bumble", reason="bumble (Bluetooth LE) is not installed")

STRAP = Path(__file__).with_name("strap_emulator.py")
ADDRESS = "C0:11:22:33:44:55"


@pytest.fixture
def strap():
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, str(STRAP), str(port), ADDRESS, "--drop-after", "3", "--away", "2.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert emulator.stdout.readline().strip() == "ready"
        yield port, emulator
    finally:
        emulator.kill()
        emulator.wait(10)


def _dashboard_heart(port: int, up: subprocess.Popen) -> tuple[int, list[int]] | None:
    """The first heart rate (and its RR intervals) the dashboard's state shows."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and up.poll() is None:
        url = f"http://127.0.0.1:{port}/state.json"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as reply:
            for person in json.load(reply)["people"]:
                if person["heart_rate"]:
                    assert person["member"] == "alice"
                    return person["heart_rate"], person["rr_ms"]
        time.sleep(0.2)
    return None


def test_a_strap_feeds_heart_rate_into_the_session_and_a_gap_is_shown(pipeline, tmp_path, strap):
    port, emulator = strap
    ble = f"tcp-client:127.0.0.1:{port}"
    scan = pipeline.run("wearables", "scan", "--ble", ble, "--seconds", "2", "--json")
    assert scan.returncode == 0, scan.stderr
    assert [(d["address"], d["name"]) for d in json.loads(scan.stdout)] == [(ADDRESS, "Test Strap")]

    assert pipeline.run("members", "set", "alice", "--max-hr", "150").returncode == 0
    events, port = tmp_path / "events.jsonl", free_port()
    up = pipeline.start(
        "up", "--source", "synthetic:squat,reps=4", "--realtime", "--profile", "alice",
        "--ble", ble, "--strap", f"{ADDRESS}=alice", "--no-console", "--sink", f"web:port={port}",
        "--sink", f"jsonl:path={events},frames=1", "--report", str(tmp_path / "report"),
    )  # fmt: skip
    on_dashboard = _dashboard_heart(port, up)
    _, err = up.communicate(timeout=300)
    assert up.returncode == 0, err
    assert on_dashboard is not None, "the dashboard shows the heart rate"
    bpm, rr_ms = on_dashboard
    assert len(rr_ms) == 1 and abs(rr_ms[0] - 60_000 / bpm) <= 2
    emulator.kill()
    sent = [json.loads(line) for line in emulator.stdout.read().splitlines()]
    beats = {e["bpm"] for e in sent if "bpm" in e}
    assert any(e.get("dropped") for e in sent) and any(e.get("back") for e in sent)

    records = read_jsonl(events)
    shown = [f["people"][0]["hr"] for f in records if f["type"] == "frame" and f["people"]]
    values = [h for h in shown if h is not None]
    assert len(set(values)) >= 4, "the heart rate changes as the strap says"
    assert set(values) <= beats, "every value shown was sent: none invented"
    # The strap went away and came back: a stretch without a value between two with.
    first, last = shown.index(values[0]), len(shown) - 1 - shown[::-1].index(values[-1])
    assert None in shown[first:last], "the gap is shown while the strap is away"
    people = [f["people"][0] for f in records if f["type"] == "frame" and f["people"]]
    paired = [(p["hr"], p["rr_ms"]) for p in people if p["hr"] is not None]
    assert all(len(rr) == 1 and abs(rr[0] - 60_000 / hr) <= 2 for hr, rr in paired), paired[:5]
    assert all(p["rr_ms"] == [] for p in people if p["hr"] is None)

    reps = [r["data"] for r in records if r["type"] == "event" and r["kind"] == "rep"]
    measured = [r for r in reps if "hr_mean" in r]
    assert len(reps) == 4 and measured
    assert all(r["hr_mean"] in range(min(beats), max(beats) + 1) for r in measured)
    assert all(r["hr_peak"] >= r["hr_mean"] and r["hr_peak"] in beats for r in measured)

    history = History.open(Path(pipeline.env["REPCOACH_DATA_DIR"]) / "history.sqlite")
    try:
        session = history.session("last")["id"]
        stored = [r["detail"].get("hr_peak") for r in history.reps(session)]
        trace = [(round(s.pts, 4), s.heart_rate) for s in history.angles(session)]
    finally:
        history.close()
    assert [p for p in stored if p] == [r["hr_peak"] for r in measured]
    kept = {h for _, h in trace if h is not None}
    assert kept <= beats and len(kept) >= 4, "the trace the report draws"
    # The trace is what the frames showed at those moments, gaps (None) included.
    shown_at = {
        f["pts"]: f["people"][0]["hr"] for f in records if f["type"] == "frame" and f["people"]
    }
    assert all(shown_at[pts] == hr for pts, hr in trace if pts in shown_at), trace[:8]
    assert sum(pts in shown_at for pts, _ in trace) >= 0.9 * len(trace)

    report = (tmp_path / "report" / "index.html").read_text()
    assert "Heart rate (mean / peak)" in report and "heart rate over the set" in report
    assert f"{measured[0]['hr_mean']} / {measured[0]['hr_peak']}" in report
    assert "Time in heart-rate zones (maximum 150 bpm)" in report
    assert "Zone 2 (light)</td><td>60%-70%</td><td>90-104</td>" in report
    trace_png = next((tmp_path / "report").glob("angles-*.png"))
    assert cv2.imread(str(trace_png)).shape[0] > 500, "the heart-rate panel under the angles"

    mean = round(sum(r["hr_mean"] for r in measured) / len(measured))
    [row] = json.loads(pipeline.run("history", "--profile", "alice", "--json").stdout)
    assert (row["hr_mean"], row["hr_peak"]) == (mean, max(r["hr_peak"] for r in measured))
    pipeline.env["COLUMNS"] = "200"  # one line per row
    table = pipeline.run("history", "--profile", "alice").stdout
    assert f"{mean} / {row['hr_peak']}" in table

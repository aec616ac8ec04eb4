"""Stations added to and removed from a running pipeline (`pipeline source
add` / `remove`): real processes, the real BlazePose models, rendered
athletes; the other stations go on undisturbed."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port, read_jsonl, stage_report
from tests.launch.test_stream_reconnect import MjpegCamera

GYM = "gym=synthetic:squat,reps=12"  # long enough to change stations while it runs
# 3252 frames: it must outlast the nine commands the first test sends before
# removing it, each a new process that a loaded machine starts slowly (with
# 980 frames, on 2 busy cores, it ended by itself and the pipeline with it).
LONG_GYM, LONG_GYM_FRAMES = "gym=synthetic:squat,reps=40", 3252
# 484 frames, 6 lunges: still running when the gym is removed and the floor
# is read after it (with 180 frames, on 2 busy cores, it had ended by then
# and the pipeline with it).
DOOR, DOOR_FRAMES, DOOR_LUNGES = "synthetic:lunge,reps=6", 484, 6


def _scored(status: dict, station: str) -> dict:
    report = stage_report(status, "score")["report"] or {}
    return report.get("stations", {}).get(station) or {}


def _floor(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/floor.json", timeout=5) as reply:
        return [tile["station"] for tile in json.load(reply)["stations"]]


def test_a_station_added_and_one_removed_mid_run(pipeline, tmp_path):
    summary, events, port = tmp_path / "summary.json", tmp_path / "events.jsonl", free_port()
    up = pipeline.start(
        "up",
        "--source",
        LONG_GYM,
        "--no-console",
        "--sink",
        f"jsonl:path={events},frames=1",
        "--sink",
        f"web:port={port}",
        "--summary",
        str(summary),
    )
    pipeline.wait_for(lambda s: _scored(s, "gym").get("frames", 0) > 20, 180, what="gym frames")

    # What cannot be added or removed is refused in one line; nothing changes.
    refusals = [
        (("add", "gym", DOOR), "already has a station 'gym'"),
        (("add", "door", str(tmp_path / "nowhere.mp4")), "does not exist"),
        (("add", "door", "ftp://camera/1"), "unknown source kind 'ftp'"),
        (("add", "bad name!", DOOR), "station name 'bad name!'"),
        (("add", "door", DOOR, "--exercise", "yoga"), "--exercise 'yoga' is not known"),
        (("remove", "door"), "has no station 'door' (it has gym)"),
        (("remove", "gym"), "the pipeline's last station"),
    ]
    for args, said in refusals:
        result = pipeline.run("source", *args, timeout=60)
        assert result.returncode == 1, (args, result.stdout)
        assert said in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)

    # A source that cannot be opened ends at once, said in one line.
    broken = pipeline.run("source", "add", "broken", "synthetic:nosuch", timeout=60)
    assert broken.returncode == 1
    assert "station broken ended without a frame: source failed" in broken.stderr

    added = pipeline.run("source", "add", "door", DOOR, "--exercise", "lunge", timeout=90)
    assert added.returncode == 0, added.stderr
    assert "station door added (every frame)" in added.stdout
    assert "station door: frames are flowing" in added.stdout
    gym_at_add = _scored(pipeline.status(), "gym")["frames"]
    assert _floor(port) == ["gym", "broken", "door"]  # the broken one shows why it ended

    removed = pipeline.run("source", "remove", "gym", timeout=90)
    assert removed.returncode == 0, removed.stderr
    assert "station gym: its stream ended (removed)" in removed.stdout
    assert _floor(port) == ["broken", "door"]  # the removed station's tile went

    out, err = up.communicate(timeout=300)
    assert up.returncode == 0, err
    document = json.loads(summary.read_text())["stations"]
    assert document["door"]["reason"] == "end of source"
    assert document["gym"]["reason"] == "removed"
    assert document["gym"]["warning"] is None  # removed, not a truncated file
    assert document["broken"]["reason"].startswith("source failed")

    frames = [r for r in read_jsonl(events) if r["type"] == "frame"]
    door = [f["seq"] for f in frames if f["station"] == "door"]
    gym = [f["seq"] for f in frames if f["station"] == "gym"]
    assert door == list(range(DOOR_FRAMES))  # the added file: every frame once, in order
    # The removed one: every frame handed out before its end, once, in order.
    assert gym == list(range(len(gym))) and gym_at_add < len(gym) < LONG_GYM_FRAMES
    # Frames of both stations were analysed side by side.
    first_door = next(i for i, f in enumerate(frames) if f["station"] == "door")
    assert any(f["station"] == "gym" for f in frames[first_door:])
    door_people = document["door"]["people"]
    assert [(e["exercise"], e["reps"]) for p in door_people for e in p["exercises"]] == [
        ("lunge", DOOR_LUNGES)
    ]
    squats = sum(e["reps"] for p in document["gym"]["people"] for e in p["exercises"])
    assert squats >= 1

    rep_events = [r for r in read_jsonl(events) if r["type"] == "event" and r["station"] == "door"]
    # Event ids start with the station's own session id.
    assert rep_events and all(r["id"].split(":")[0].endswith(".door") for r in rep_events)
    assert not (Path(pipeline.env["REPCOACH_RUN_DIR"]) / "default" / "pipeline.json").exists()
    # The added station is a history session of its own (with its lunges).
    history = pipeline.run("history", "--json")
    rows = {
        (r["session"].rsplit(".", 1)[-1], r["exercise"]): r["reps"]
        for r in json.loads(history.stdout)
    }
    assert rows[("door", "lunge")] == DOOR_LUNGES and ("door", "squat") not in rows


def test_a_camera_added_next_to_a_file_and_removed_is_let_go(pipeline, tmp_path):
    camera = MjpegCamera()
    summary, events = tmp_path / "summary.json", tmp_path / "events.jsonl"
    up = pipeline.start(
        "up",
        "--source",
        GYM,
        "--segmenter",
        "passthrough:jitter_ms=20-30",
        "--joints",
        "none",
        "--no-console",
        "--no-history",
        "--sink",
        f"jsonl:path={events},frames=1",
        "--summary",
        str(summary),
    )
    try:
        pipeline.wait_for(lambda s: _scored(s, "gym").get("frames", 0) > 0, 120, what="gym")
        url = f"http://127.0.0.1:{camera.port}/stream.mjpg"
        added = pipeline.run("source", "add", "rack", url, timeout=90)
        assert added.returncode == 0, added.stderr
        assert "station rack added (live)" in added.stdout
        assert camera.clients == 1
        removed = pipeline.run("source", "remove", "rack", timeout=90)
        assert removed.returncode == 0, removed.stderr
        assert "its stream ended (removed)" in removed.stdout
        # The camera is let go while the file goes on.
        deadline = time.monotonic() + 10
        while camera.clients and time.monotonic() < deadline:
            time.sleep(0.1)
        assert camera.clients == 0
        assert up.poll() is None
        out, err = up.communicate(timeout=300)
    finally:
        camera.stop()
    assert up.returncode == 0, err
    document = json.loads(summary.read_text())["stations"]
    assert document["rack"]["reason"] == "removed" and document["rack"]["frames"] > 0
    gym = document["gym"]
    assert gym["reason"] == "end of source" and gym["dropped"] == 0
    seqs = [r["seq"] for r in read_jsonl(events) if r["type"] == "frame" and r["station"] == "gym"]
    assert seqs == list(range(gym["frames"]))  # lossless beside the live camera

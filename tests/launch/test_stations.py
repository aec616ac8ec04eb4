"""Several sources in one pipeline: one pool of segment workers serves every
station, while ordering, tracking, coaching and summaries stay per station.
Real processes, the real BlazePose models, rendered athletes and a file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from tests.conftest import read_jsonl, stage_report
from tests.launch.test_stream_reconnect import MjpegCamera

SQUATS = "synthetic:squat,people=2,reps=2,seed=4"
LUNGES = "synthetic:lunge,reps=2"


def _exercises(summary: dict) -> list[tuple[int, list]]:
    return [
        (p["id"], [(e["exercise"], e["reps"], e["partial_reps"]) for e in p["exercises"]])
        for p in summary["people"]
    ]


def _up(pipeline, folder: Path, *args: str) -> tuple[dict, list[dict]]:
    folder.mkdir()
    summary, events = folder / "summary.json", folder / "events.jsonl"
    result = pipeline.run(
        "up",
        *args,
        "--no-console",
        "--no-history",
        "--sink",
        f"jsonl:path={events},frames=1",
        "--summary",
        str(summary),
        "--name",
        folder.name,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "forged" not in result.stderr  # every sink process reports under its own name
    return json.loads(summary.read_text()), read_jsonl(events)


def test_three_stations_share_the_workers_and_each_gets_its_own_exact_answer(
    pipeline, tmp_path, video
):
    still = video(45)  # nobody in view
    truth = tmp_path / "truth.json"
    lunges_only = tmp_path / "lunges.jsonl"
    summary, records = _up(
        pipeline,
        tmp_path / "floor",
        "--source",
        SQUATS,
        "--source",
        LUNGES,
        "--source",
        f"door={still}",
        "--workers",
        "2",
        "--segmenter",
        "blazepose:jitter_ms=0-30",  # workers finish out of order
        "--truth",
        str(truth),
        "--sink",
        f"jsonl:path={lunges_only},station=lunge",
    )
    stations = summary["stations"]
    assert list(stations) == ["squat", "lunge", "door"]
    totals = {"squat": 187, "lunge": 180, "door": 45}
    frames = [r for r in records if r["type"] == "frame"]
    for name, total in totals.items():
        # Every frame of every station exactly once, in its own order.
        assert [f["seq"] for f in frames if f["station"] == name] == list(range(total)), name
        assert (stations[name]["frames"], stations[name]["dropped"]) == (total, 0)
    assert summary["frames"] == sum(totals.values()) and summary["ended"]

    truths = json.loads(truth.read_text())
    assert set(truths) == {"squat", "lunge"}  # the file has no rendered truth
    assert _exercises(stations["squat"]) == [(1, [("squat", 2, 0)]), (2, [("squat", 2, 0)])]
    assert _exercises(stations["lunge"]) == [(1, [("lunge", 2, 0)])]
    assert stations["door"]["people"] == []

    events = [r for r in records if r["type"] == "event"]
    reps = Counter(e["station"] for e in events if e["kind"] == "rep")
    assert reps == {"squat": 4, "lunge": 2}
    # Each station is a session of its own (event ids start with the session's).
    assert {e["id"].split(":")[0].rsplit(".", 1)[1] for e in events} == {"squat", "lunge"}

    # A sink bound to one station sees that station alone, and its end.
    only = read_jsonl(lunges_only)
    assert {r["station"] for r in only} == {"lunge"}
    assert [r["type"] for r in only if r["type"] != "event"] == ["snapshot", "eos"]
    assert [r for r in only if r["type"] == "event"] == [
        e for e in events if e["station"] == "lunge"
    ]


def test_a_batching_worker_runs_frames_of_several_stations_in_one_pass(
    pipeline, tmp_path, video, run_root
):
    """A backend that takes batches (Mask R-CNN on a GPU; here its stand-in)
    gets the frames already waiting, whatever their station, in one call:
    every frame of every station still arrives once and in its order."""
    first, second = video(60), video(45, size=(160, 120))
    summary, records = _up(
        pipeline,
        tmp_path / "batched",
        "--source",
        f"a={first}",
        "--source",
        f"b={second}",
        "--segmenter",
        "passthrough:batch=4,jitter_ms=5-15",
        "--joints",
        "none",
        "--workers",
        "2",
    )
    frames = [r for r in records if r["type"] == "frame"]
    for name, total in (("a", 60), ("b", 45)):
        assert [f["seq"] for f in frames if f["station"] == name] == list(range(total)), name
        assert summary["stations"][name]["dropped"] == 0
    logs = [(run_root / "batched" / "logs" / f"segment-{i}.log").read_text() for i in (0, 1)]
    passes = [re.search(r"(\d+) frames in (\d+) forward passes of up to 4", log) for log in logs]
    assert all(passes), logs
    batched, calls = (sum(int(m[i]) for m in passes) for i in (1, 2))
    assert batched == 105 and calls < batched  # frames went in batches


def test_a_station_gives_what_it_gives_alone(pipeline, tmp_path):
    """Sharing the workers with another station changes nothing in a file's result."""
    shared, shared_records = _up(
        pipeline, tmp_path / "shared", "--source", SQUATS, "--source", LUNGES, "--workers", "2"
    )
    alone, alone_records = _up(pipeline, tmp_path / "alone", "--source", SQUATS, "--workers", "1")
    squat = shared["stations"]["squat"]
    unclocked = ("wall_s", "source")
    assert {k: v for k, v in squat.items() if k not in unclocked} == {
        k: v for k, v in alone.items() if k not in unclocked
    }

    def frames(records: list[dict]) -> list[dict]:
        return [
            {k: v for k, v in r.items() if k not in ("age_ms", "station")}
            for r in records
            if r["type"] == "frame" and r.get("station") == "squat"
        ]

    assert frames(shared_records) == frames(alone_records)  # every box and angle


def test_station_options_are_checked_in_one_line(pipeline, tmp_path, video):
    clip = video(5)
    cases = [
        (
            ["--source", str(clip), "--source", SQUATS, "--sink", f"video:path={tmp_path}/o.mp4"],
            "--sink video shows one station: add station=NAME, one of numbered_5, squat",
        ),
        (
            ["--source", str(clip), "--source", SQUATS, "--sink", "jsonl:path=e.jsonl,station=x"],
            "station='x' is not one of this pipeline's stations (numbered_5, squat)",
        ),
        (
            ["--source", f"a={clip}", "--source", f"a={SQUATS}"],
            "station 'a' is named twice",
        ),
        (
            ["--source", str(clip), "--source", SQUATS, "--profile", "ann"],
            "--profile binds one station's person to a member",
        ),
    ]
    for args, message in cases:
        result = pipeline.run("up", *args, "--no-console", "--no-history", timeout=60)
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr


GYM = """
name = "gym"
summary = "{summary}"
sinks = ["jsonl:path={events}"]

[[station]]
name = "rack1"
source = "synthetic:squat,reps=2"
exercise = "squat"
sinks = ["jsonl:path={rack1}"]

[[station]]
source = "synthetic:lunge,reps=2"
"""


def test_a_gym_file_names_the_stations_their_exercises_and_sinks(pipeline, tmp_path):
    summary, events, rack1 = (tmp_path / n for n in ("s.json", "all.jsonl", "rack1.jsonl"))
    gym = tmp_path / "gym.toml"
    gym.write_text(GYM.format(summary=summary, events=events, rack1=rack1))
    history, reports = tmp_path / "history.sqlite", tmp_path / "reports"
    typed = tmp_path / "typed.json"  # an option typed on the command line beats the file
    result = pipeline.run(
        "up", "--config", str(gym), "--no-console", "--history-db", str(history),
        "--report", str(reports), "--summary", str(typed), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not summary.exists()
    summary = typed
    for station in ("rack1", "lunge"):  # a session, and its report, per station
        assert f"report written to {reports / station / 'index.html'}" in result.stdout
    stations = json.loads(summary.read_text())["stations"]
    assert _exercises(stations["rack1"]) == [(1, [("squat", 2, 0)])]
    assert _exercises(stations["lunge"]) == [(1, [("lunge", 2, 0)])]  # recognised (auto)
    assert {r["station"] for r in read_jsonl(events)} == {"rack1", "lunge"}
    assert {r["station"] for r in read_jsonl(rack1)} == {"rack1"}  # a station's own sink


def test_status_shows_every_station_and_a_sink_attaches_to_one(pipeline, tmp_path):
    up = pipeline.start(
        "up", "--source", "synthetic:squat,reps=3", "--source", "synthetic:lunge,reps=3",
        "--realtime", "--no-console", "--no-history", "--name", "floor",
    )  # fmt: skip

    def both_scored(status: dict) -> bool:
        score = next(r["report"] for r in status["stages"] if r["stage"] == "score") or {}
        rows = score.get("stations", {})
        return set(rows) == {"squat", "lunge"} and all(r["frames"] > 0 for r in rows.values())

    status = pipeline.wait_for(both_scored, 120, "floor", "both stations scored")
    running = {"exercise": "", "policy": "latest", "removed": False}
    assert status["stations"] == [
        {"name": "squat", "source": "synthetic:squat,reps=3", **running},
        {"name": "lunge", "source": "synthetic:lunge,reps=3", **running},
    ]
    table = pipeline.run("status", "--name", "floor")
    assert table.returncode == 0 and "lunge" in table.stdout and "squat" in table.stdout

    video = tmp_path / "v.mp4"
    one = pipeline.run("sink", "attach", "video", "--path", str(video), "--name", "floor")
    assert one.returncode != 0
    assert "--sink video shows one station: add station=NAME" in one.stderr.strip().splitlines()[-1]

    events = tmp_path / "lunge.jsonl"
    attached = pipeline.run(
        "sink", "attach", "jsonl", "--path", str(events), "--frames", "--station", "lunge",
        "--name", "floor", timeout=120,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr  # ended with the lunge station
    records = read_jsonl(events)
    assert {r["station"] for r in records} == {"lunge"}
    assert records[-1]["type"] == "eos"
    assert up.wait(120) == 0, up.stderr.read()


def _records(path: Path) -> list[dict]:
    """The complete lines of a JSONL file still being written."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def test_a_file_stays_lossless_next_to_a_camera_that_drops_and_comes_back(
    pipeline, run_root, tmp_path, video
):
    camera = MjpegCamera()
    clip = video(240)
    events, summary = tmp_path / "frames.jsonl", tmp_path / "s.json"
    up = pipeline.start(
        "up", "--source", f"cam=http://127.0.0.1:{camera.port}/stream.mjpg",
        "--source", f"clip={clip}", "--workers", "2",
        "--segmenter", "passthrough:jitter_ms=40-60", "--joints", "none", "--no-console",
        "--no-history", "--sink", f"jsonl:path={events},frames=1", "--summary", str(summary),
        "--name", "mixed",
    )  # fmt: skip

    def frames(station: str) -> list[dict]:
        return [r for r in _records(events) if r["type"] == "frame" and r["station"] == station]

    def wait(predicate, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert up.poll() is None, up.stderr.read()
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    try:
        wait(lambda: len(frames("cam")) >= 20 and len(frames("clip")) >= 10, "both stations")
        camera.stop()  # the camera drops: the file must not wait for it
        log = run_root / "mixed" / "logs" / "capture.log"
        wait(lambda: "reconnecting" in log.read_text(), "capture to notice")
        during = len(frames("clip"))
        wait(lambda: len(frames("clip")) >= min(during + 40, 240), "the file to go on")
        seen = len(frames("cam"))
        camera = MjpegCamera(port=camera.port)
        wait(lambda: len(frames("cam")) >= seen + 20, "the camera's frames again")
        wait(lambda: len(frames("clip")) == 240, "the whole file", timeout=120)
    finally:
        camera.stop()
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(60) == 130, up.stderr.read()
    assert [f["seq"] for f in frames("clip")] == list(range(240))  # every frame, once, in order
    cam = frames("cam")
    seqs = [f["seq"] for f in cam]
    assert seqs == sorted(set(seqs))  # in order, no repeats: only drops
    assert max(f["age_ms"] for f in cam) < 1000 + 500  # stale camera frames were dropped
    stations = json.loads(summary.read_text())["stations"]
    assert (stations["clip"]["frames"], stations["clip"]["dropped"]) == (240, 0)
    assert stations["cam"]["frames"] == len(cam)


def test_a_stage_restarted_after_one_station_ended_does_not_wait_for_it(pipeline, tmp_path):
    events, summary = tmp_path / "events.jsonl", tmp_path / "s.json"
    up = pipeline.start(
        "up", "--source", "short=synthetic:squat,reps=1", "--source", "long=synthetic:squat,reps=4",
        "--realtime", "--no-console", "--no-history", "--sink", f"jsonl:path={events}",
        "--summary", str(summary), "--name", "restart",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(r["type"] == "eos" and r["station"] == "short" for r in _records(events)):
        assert up.poll() is None and time.monotonic() < deadline, "station short never ended"
        time.sleep(0.1)
    joints = stage_report(pipeline.status("restart"), "joints")["report"]["pid"]
    os.kill(joints, signal.SIGKILL)  # it restarts, never to see short's end-of-stream again
    assert up.wait(120) == 0, up.stderr.read()  # live: what it held is only stale frames
    stations = json.loads(summary.read_text())["stations"]
    assert stations["short"]["ended"] and stations["long"]["ended"]

"""Hostile peers on a running pipeline's sockets: whatever they send is
counted and dropped, every stage keeps running, and nothing a peer sends can
grow a table without bound (workers, re-order buffer, people, reports)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from repcoach.common.dispatch import DONE, EOS_KEY, HELLO, done
from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.common.messages import (
    SCHEMA_VERSION,
    EndOfStream,
    FrameMeta,
    FramePacket,
    PersonJoints,
    StageReport,
    decode,
)
from repcoach.common.reorder import Reorderer
from repcoach.stages.coaching.coach import MAX_PEOPLE, Coach
from tests.conftest import read_jsonl, stage_report

FAST = ["--joints", "none", "--no-console", "--no-history"]


def frame_seqs_of(records: list[dict]) -> list[int]:
    return [r["seq"] for r in records if r["type"] == "frame"]


def socket(kind: int, endpoint: str, **options) -> zmq.Socket:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 1000)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(endpoint)
    return sock


def start(pipeline, source, events, frames_jitter_ms: int = 40):
    up = pipeline.start(
        "up",
        "--source",
        str(source),
        "--workers",
        "1",
        "--segmenter",
        f"passthrough:jitter_ms={frames_jitter_ms}",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
    )
    pipeline.wait_for(
        lambda s: stage_report(s, "score")["report"] is not None, timeout=90, what="score to report"
    )
    return up


def assert_nothing_restarted(status: dict) -> None:
    for row in status["stages"]:
        if row["supervised"]:
            assert row["restarts"] == 0, f"{row['stage']} restarted"


# --- supervisor


def test_supervisor_survives_garbage_on_control_and_reports(pipeline, video, tmp_path, run_root):
    frames = 150
    events = tmp_path / "frames.jsonl"
    up = start(pipeline, video(frames), events)
    folder = run_root / "default"
    control = socket(zmq.DEALER, f"ipc://{folder}/control.sock")
    for message in ([b"STATUS"], [b"a", b"b", b"c"], [b""], [b"", b"STATUS", b"x"]):
        control.send_multipart(message)  # one frame used to crash the supervisor
    reports = socket(zmq.PUSH, f"ipc://{folder}/reports.sock")
    status = pipeline.status()
    capture_pid = stage_report(status, "score")["report"]["pid"]
    forged = StageReport("score", capture_pid + 1, 0, 0, {}, {"x": 10**9}, 0, 0, 0, 0, 0, 0)
    reports.send_multipart(forged.to_wire())  # someone else's row: refused
    for i in range(100):  # attached stages: a bounded table
        reports.send_multipart(
            StageReport(f"fake-{i}", 1, 0, 0, {}, {}, 0, 0, 0, 0, 0, 0).to_wire()
        )
    reports.send_multipart([b"\xc1garbage"])
    reports.send_multipart([msgpack.packb({"v": SCHEMA_VERSION, "type": []})])
    status = pipeline.wait_for(
        lambda s: sum(s.get("supervisor", {}).get("rejected", {}).values()) >= 7,
        timeout=30,
        what="the supervisor to count what it refused",
    )
    rejected = status["supervisor"]["rejected"]
    assert rejected.get("malformed", 0) >= 5  # 4 control envelopes + garbage + bad type
    assert rejected.get("forged", 0) == 1
    assert stage_report(status, "score")["report"]["pid"] == capture_pid
    assert len([r for r in status["stages"] if not r["supervised"]]) <= 16
    control.close()
    reports.close()
    assert up.wait(120) == 0, up.stderr.read()
    assert frame_seqs_of(read_jsonl(events)) == list(range(frames))


# --- capture's work socket


class FakeWorker:
    """A peer that says HELLO on capture's work socket and, if it gets frames,
    passes them on unchanged and says DONE (so the run still completes)."""

    def __init__(self, folder, identity: bytes):
        self.work = socket(zmq.DEALER, f"ipc://{folder}/work.sock", ROUTING_ID=identity)
        self.out = socket(zmq.PUSH, f"ipc://{folder}/segmented.sock")
        self.work.send_multipart([HELLO, msgpack.packb({"credits": 10**9})])
        self.frames = 0

    def serve(self) -> None:
        while self.work.poll(0):
            parts = self.work.recv_multipart()
            if parts == [b"STOP"]:
                continue
            message = decode(parts)
            self.out.send_multipart(parts)
            if isinstance(message, FramePacket):
                self.frames += 1
                self.work.send_multipart(done(message.meta.seq, message.meta.station))
            elif isinstance(message, EndOfStream):
                self.work.send_multipart(done(EOS_KEY, message.station))

    def close(self) -> None:
        self.work.close(0)
        self.out.close(1000)


def test_capture_survives_hostile_workers_and_bounds_its_table(pipeline, video, tmp_path, run_root):
    frames = 150
    events = tmp_path / "frames.jsonl"
    clip = video(frames)
    up = start(pipeline, clip, events)
    # The real worker holds its slot before the flood (one that has none when
    # the stream ends is never told to stop: see the report).
    pipeline.wait_for(
        lambda s: (stage_report(s, "segment-0")["report"] or {}).get("frames_in", 0) > 0,
        timeout=60,
        what="the real worker to get frames",
    )
    folder = run_root / "default"
    stranger = socket(zmq.DEALER, f"ipc://{folder}/work.sock")
    station = clip.stem.encode()  # the station is named after the file
    stranger.send_multipart([DONE, b"abc", station])  # used to crash capture
    stranger.send_multipart([DONE, b"0", b"nowhere"])  # no such station
    stranger.send_multipart(done(EOS_KEY, station.decode()))  # never said HELLO
    stranger.send_multipart([b"WHAT"])
    stranger.send_multipart([HELLO, b"\xc1"])
    fakes = [FakeWorker(folder, f"fake-{i}".encode()) for i in range(40)]
    # A peer that was never sent EOS says it is done with it: used to end the stream early.
    fakes[0].work.send_multipart(done(EOS_KEY, station.decode()))
    deadline = time.monotonic() + 150
    while up.poll() is None and time.monotonic() < deadline:
        for fake in fakes:
            fake.serve()
        time.sleep(0.005)
    stuck = pipeline.status() if up.poll() is None else None
    for fake in fakes:
        fake.close()
    stranger.close()
    assert stuck is None, f"the run did not finish: {stuck}"
    assert up.wait(10) == 0, up.stderr.read()
    assert frame_seqs_of(read_jsonl(events)) == list(range(frames))
    log = (folder / "logs" / "capture.log").read_text()
    assert "Traceback" not in log
    # 1 worker configured: 1*2 + 4 slots, one of them the real worker's
    assert sum(1 for f in fakes if f.frames) <= 5


def test_capture_counts_what_it_refuses(pipeline, video, tmp_path, run_root):
    """The same peers, counted in status while the run goes on."""
    frames = 400
    events = tmp_path / "frames.jsonl"
    clip = video(frames)
    up = start(pipeline, clip, events, frames_jitter_ms=60)
    folder = run_root / "default"
    stranger = socket(zmq.DEALER, f"ipc://{folder}/work.sock")
    station = clip.stem.encode()
    for message in (
        [DONE, b"abc", station],
        [DONE, b"-2", station],
        [b"WHAT"],
        [HELLO, b"\xc1"],
        [DONE, b"5", station, b"x"],
        [DONE, b"5", b"nowhere"],
    ):
        stranger.send_multipart(message)
    flood = [socket(zmq.DEALER, f"ipc://{folder}/work.sock") for _ in range(30)]
    for sock in flood:
        sock.send_multipart([HELLO, msgpack.packb({"credits": 0})])  # no credits: refused
    status = pipeline.wait_for(
        lambda s: sum(stage_report(s, "capture")["report"]["rejected"].values()) >= 35,
        timeout=60,
        what="capture to count the refused messages",
    )
    rejected = stage_report(status, "capture")["report"]["rejected"]
    assert rejected.get("malformed", 0) >= 3 + 30
    assert rejected.get("unknown-peer", 0) >= 1
    assert rejected.get("unknown-type", 0) >= 1
    assert rejected.get("unknown-station", 0) >= 1
    assert stage_report(status, "capture")["alive"]
    for sock in [stranger, *flood]:
        sock.close(0)
    assert up.wait(120) == 0, up.stderr.read()
    assert frame_seqs_of(read_jsonl(events)) == list(range(frames))


# --- joints (re-order), snapshot and results sockets


def forged_frame(seq: int, prev: int, station: str) -> list:
    meta = FrameMeta("forged", seq, prev, 0, 0.0, 0.0, 320, 240, station=station)
    return FramePacket(meta=meta).to_wire()


def test_a_forged_huge_seq_cannot_swallow_the_stream(pipeline, video, tmp_path, run_root):
    frames = 150
    events = tmp_path / "frames.jsonl"
    clip = video(frames)
    up = start(pipeline, clip, events)
    folder = run_root / "default"
    segmented = socket(zmq.PUSH, f"ipc://{folder}/segmented.sock")
    for prev in range(-1, frames):  # whichever frame the line waits for next
        segmented.send_multipart(forged_frame(10**12 + prev, prev, clip.stem))
    segmented.send_multipart(forged_frame(0, -1, "nowhere"))  # no such station
    snapshot = socket(zmq.DEALER, f"ipc://{folder}/snapshot.sock")
    for message in ([b"SNAPSHOT"], [b"", b"nope"], [b"", b"SNAPSHOT", b"x"]):
        snapshot.send_multipart(message)
    results = socket(zmq.XSUB, f"ipc://{folder}/results.sock")
    for message in ([b"\x00eos"], [b"\x05eos"], [b"\x00eos"], [b"junk", b"more"]):
        results.send_multipart(message)  # used to count as sinks leaving
    status = pipeline.wait_for(
        lambda s: stage_report(s, "joints")["report"]["rejected"].get("out-of-window", 0) >= frames,
        timeout=60,
        what="joints to refuse the forged frames",
    )
    assert stage_report(status, "joints")["report"]["rejected"].get("unknown-station", 0) == 1
    assert_nothing_restarted(status)
    assert up.wait(120) == 0, up.stderr.read()
    assert frame_seqs_of(read_jsonl(events)) == list(range(frames))
    for sock in (segmented, snapshot, results):
        sock.close(0)


# --- the bounded tables themselves


def packet(seq: int, prev: int) -> FramePacket:
    return FramePacket(FrameMeta("s", seq, prev, 0, 0.0, 0.0, 8, 8))


def test_reorder_buffer_refuses_out_of_window_frames_and_holds_a_bounded_number():
    reorder = Reorderer(max_held=100)
    assert reorder.push(packet(10**12, -1)) == []
    assert reorder.refused == 1
    for prev in range(1, 1000):  # far ahead of the missing frame 0
        reorder.push(packet(prev + 1, prev))
    assert len(reorder) <= 100
    assert reorder.refused == 1 + 899
    released = reorder.push(packet(0, -1))
    assert [p.meta.seq for p in released][:3] == [0]
    assert reorder.push(packet(1, 0))[0].meta.seq == 1  # the nearest were kept


def test_live_window_widens_with_time_since_the_last_release():
    reorder = Reorderer(window=10, growth_per_s=100.0)
    reorder.push(packet(0, -1))
    assert reorder.push(packet(500, 0)) == []  # too far for now
    reorder._released_at -= 10  # ten seconds without a release: a camera skipped 500
    assert [p.meta.seq for p in reorder.push(packet(500, 0))] == [500]


def joints(track: int) -> PersonJoints:
    rng = np.random.default_rng(track)
    return PersonJoints(
        track,
        rng.uniform(0, 300, (NUM_LANDMARKS, 2)).astype(np.float32),
        np.full(NUM_LANDMARKS, 0.9, np.float32),
        np.zeros((NUM_LANDMARKS, 3), np.float32),
    )


def test_forged_tracks_cannot_grow_the_coachs_people_table():
    coach = Coach("squat")
    pts = 0.0
    for batch in range(20):  # 20 x 10 new tracks, each seen once then gone
        pts += 3.0
        meta = FrameMeta("s", batch, batch - 1, 0, 0.0, pts, 320, 240)
        coach.process(FramePacket(meta, joints=tuple(joints(batch * 10 + i) for i in range(10))))
    assert len(coach.people()) <= MAX_PEOPLE
    assert coach.drops()["people-retired"] == 200 - MAX_PEOPLE
    # Everyone in view at once: the ones beyond the table are refused, counted.
    meta = FrameMeta("s", 99, 98, 0, 0.0, pts + 0.1, 320, 240)
    many = tuple(joints(10_000 + i) for i in range(MAX_PEOPLE + 6))
    coach.process(FramePacket(meta, joints=many))
    assert len(coach.people()) <= MAX_PEOPLE
    # the last batch's 10 are still in view: 54 retired make room, 16 refused
    assert coach.drops()["people-refused"] == 10 + 6


# --- the fuzz run itself (bench/fuzz.py), small


@pytest.mark.slow
def test_fuzzing_every_socket_crashes_nothing_and_counts_every_rejection():
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(repo / "bench" / "fuzz.py"), "--count", "5000", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=repo,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "verdict: all checks passed" in result.stdout

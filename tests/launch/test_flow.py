"""Flow control, supervision and sinks, with real processes and sockets.

Segmentation is the pass-through backend with a random delay, standing in for
a slow model, so these tests exercise the transport itself in seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from repcoach.common.messages import SCHEMA_VERSION
from tests.conftest import free_port_block, read_jsonl, stage_report

FAST = ["--joints", "none", "--no-console"]


def frame_seqs(records: list[dict]) -> list[int]:
    return [r["seq"] for r in records if r["type"] == "frame"]


def test_file_through_three_slow_workers_arrives_exactly_once_in_order(pipeline, video, tmp_path):
    frames = 150
    source = video(frames)
    events, summary = tmp_path / "frames.jsonl", tmp_path / "summary.json"
    result = pipeline.run(
        "up",
        "--source",
        str(source),
        "--workers",
        "3",
        "--segmenter",
        "passthrough:jitter_ms=1-40",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
        "--summary",
        str(summary),
    )
    assert result.returncode == 0, result.stderr
    assert frame_seqs(read_jsonl(events)) == list(range(frames))
    document = json.loads(summary.read_text())
    assert document["frames"] == frames
    assert document["dropped"] == 0
    assert document["ended"] is True
    assert document["duration_s"] == pytest.approx(frames / 30.0, abs=0.05)


def test_a_file_shorter_than_worker_start_up_ends(pipeline, video, tmp_path):
    """Capture can finish a short file before every worker has said hello; the
    workers it never met are stopped by the supervisor instead of waiting for
    work forever (this used to hang `up` about one run in six)."""
    source = video(10)
    for run in range(4):
        summary = tmp_path / f"summary-{run}.json"
        result = pipeline.run(
            "up",
            "--source",
            str(source),
            "--workers",
            "4",
            "--segmenter",
            "passthrough",
            *FAST,
            "--summary",
            str(summary),
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(summary.read_text())["frames"] == 10


def test_sigkilled_worker_is_restarted_and_no_frame_is_lost(pipeline, video, tmp_path):
    frames = 600  # long enough (~10 s) that the kill lands mid-file on a busy machine
    source = video(frames)
    events = tmp_path / "frames.jsonl"
    up = pipeline.start(
        "up",
        "--source",
        str(source),
        "--workers",
        "2",
        "--segmenter",
        "passthrough:jitter_ms=20-40",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
    )
    status = pipeline.wait_for(
        lambda s: (stage_report(s, "segment-0")["report"] or {}).get("frames_out", 0) >= 20,
        timeout=60,
        what="segment-0 to process 20 frames",
    )
    os.kill(stage_report(status, "segment-0")["report"]["pid"], signal.SIGKILL)
    assert up.wait(120) == 0
    stderr = up.stderr.read()
    assert "segment-0 killed by SIGKILL; restarting in" in stderr
    assert "restarting segment-0 (restart 1)" in stderr
    assert frame_seqs(read_jsonl(events)) == list(range(frames))


def _file_run_under_way(pipeline, video, stage: str, *options: str):
    """`up` on a 600-frame file, once `stage` has put out 20 frames: the
    process and that stage's pid."""
    up = pipeline.start(
        "up", "--source", str(video(600)), "--segmenter", "passthrough:jitter_ms=10-20",
        *FAST, *options,
    )  # fmt: skip
    status = pipeline.wait_for(
        lambda s: (stage_report(s, stage)["report"] or {}).get("frames_out", 0) >= 20,
        timeout=60,
        what=f"{stage} to put out 20 frames",
    )
    return up, stage_report(status, stage)["report"]["pid"]


def test_capture_killed_mid_file_resumes_and_loses_nothing(pipeline, video, tmp_path):
    """Capture restarts where the file was: every frame once, the run succeeds."""
    summary, events = tmp_path / "summary.json", tmp_path / "frames.jsonl"
    up, pid = _file_run_under_way(
        pipeline,
        video,
        "capture",
        "--summary",
        str(summary),
        "--sink",
        f"jsonl:path={events},frames=1",
    )
    os.kill(pid, signal.SIGKILL)
    assert up.wait(120) == 0, up.stderr.read()
    assert "restarting capture (restart 1)" in up.stderr.read()
    assert frame_seqs(read_jsonl(events)) == list(range(600))
    document = json.loads(summary.read_text())
    assert (document["frames"], document["dropped"]) == (600, 0)


@pytest.mark.parametrize("stage", ["joints", "score"])
def test_an_ordered_stage_killed_mid_file_fails_the_run(pipeline, video, tmp_path, stage):
    """The restarted stage finishes the file, but what the dead one held (its
    re-order buffer, the coaching state) is gone: `up` says so and exits
    non-zero instead of "summary written", and the books still add up."""
    summary = tmp_path / "summary.json"
    up, pid = _file_run_under_way(pipeline, video, stage, "--summary", str(summary))
    os.kill(pid, signal.SIGKILL)
    assert up.wait(120) == 1
    out, err = up.stdout.read(), up.stderr.read()
    assert "summary written" not in out
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"error: stage {stage} (1 restart(s)) crashed mid-file")
    ), err
    document = json.loads(summary.read_text())
    assert document["frames"] + document["dropped"] == 600
    assert document["warning"].startswith(f"stage {stage} (1 restart(s)) crashed mid-file")


def test_a_stage_that_hangs_mid_file_ends_the_run_as_failed(pipeline, video, tmp_path):
    """The watchdog: a stage that stops (SIGSTOP: alive, holding its frames)
    ends a file run after --stall-timeout with one line naming where the
    frames stopped and a non-zero exit, and the summary keeps what was done."""
    summary = tmp_path / "summary.json"
    up, joints = _file_run_under_way(
        pipeline, video, "joints", "--summary", str(summary), "--stall-timeout", "3"
    )
    os.kill(joints, signal.SIGSTOP)
    try:
        assert up.wait(90) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(joints, signal.SIGCONT)
    lines = up.stderr.read().strip().splitlines()
    assert lines[-1].startswith("error: no frame has moved for 3 s"), lines
    assert "(joints has not reported for" in lines[-1]
    document = json.loads(summary.read_text())
    assert 20 <= document["frames"] < 600


def test_live_source_faster_than_the_model_drops_but_stays_fresh(pipeline, video, tmp_path):
    # 60 fps source, one worker that needs 40-60 ms per frame (~20 fps).
    total = 1200
    source = video(total, fps=60.0)
    events = tmp_path / "frames.jsonl"
    summary = tmp_path / "summary.json"
    up = pipeline.start(
        "up",
        "--source",
        str(source),
        "--realtime",
        "--workers",
        "1",
        "--segmenter",
        "passthrough:jitter_ms=40-60",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
        "--summary",
        str(summary),
    )
    early = pipeline.wait_for(
        lambda s: (stage_report(s, "capture")["report"] or {}).get("frames_in", 0) > 150,
        timeout=60,
        what="capture to read 150 frames",
    )
    read_early = stage_report(early, "capture")["report"]["frames_in"]
    late = pipeline.wait_for(  # seconds more (one worker takes ~20 frames a second)
        lambda s: (
            (stage_report(s, "capture")["report"] or {}).get("frames_in", 0) > read_early + 60
        ),
        timeout=60,
        what="capture to take 60 more frames",
    )
    assert up.wait(90) == 0, up.stderr.read()

    records = [r for r in read_jsonl(events) if r["type"] == "frame"]
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs)), "results must stay in order without duplicates"
    assert 0.15 * total < len(seqs) < 0.7 * total, f"expected drops, got {len(seqs)} of {total}"
    ages = sorted(r["age_ms"] for r in records[10:])
    assert ages[int(0.95 * len(ages))] < 400, f"p95 latency {ages[int(0.95 * len(ages))]} ms"
    document = json.loads(summary.read_text())
    assert document["dropped"] == total - len(seqs)
    capture = stage_report(late, "capture")["report"]
    assert capture["dropped"].get("stale", 0) > 0
    for stage in ("capture", "segment-0", "score"):
        before = stage_report(early, stage)["report"]["rss_mb"]
        after = stage_report(late, stage)["report"]["rss_mb"]
        assert after - before < 25, f"{stage} memory grew {before} -> {after} MB"


def test_malformed_messages_are_rejected_counted_and_survived(pipeline, video, tmp_path, run_root):
    import msgpack
    import zmq

    frames = 400
    source = video(frames)
    events = tmp_path / "frames.jsonl"
    up = pipeline.start(  # lossless (a file), slowed down so there is time to inject
        "up",
        "--source",
        str(source),
        "--workers",
        "1",
        "--segmenter",
        "passthrough:jitter_ms=40",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
    )
    pipeline.wait_for(
        lambda s: stage_report(s, "score")["report"] is not None, timeout=60, what="score to report"
    )
    bad_messages = [
        [b"\xc1 not msgpack"],
        [msgpack.packb({"v": 99, "type": "frame"})],
        [msgpack.packb({"v": SCHEMA_VERSION, "type": "frame", "meta": {"src": "x"}})],
        [msgpack.packb({"v": SCHEMA_VERSION, "type": "teapot"})],
        [
            msgpack.packb(
                {
                    "v": SCHEMA_VERSION,
                    "type": "frame",
                    "px": True,
                    "meta": {
                        "src": "x",
                        "seq": 5,
                        "prev": 4,
                        "tm": 0,
                        "tw": 0.0,
                        "pts": 0.0,
                        "w": 64,
                        "h": 64,
                        "fmt": "bgr24",
                        "total": 0,
                        "chunk": -1,
                        "clk": "",
                        "stn": "",
                    },
                    "persons": [],
                    "joints": [],
                    "scores": [],
                    "events": [],
                    "tomb": False,
                }
            ),
            b"\x00" * 100,
        ],
        [b"a", b"b", b"c"],
    ]
    context = zmq.Context.instance()
    for role in ("segmented", "joined"):
        sock = context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.connect(f"ipc://{run_root}/default/{role}.sock")
        for message in bad_messages:
            sock.send_multipart(message)
        sock.close()
    status = pipeline.wait_for(
        lambda s: (
            sum((stage_report(s, "score")["report"] or {}).get("rejected", {}).values())
            >= len(bad_messages)
        ),
        timeout=30,
        what="score to count the rejects",
    )
    joints = stage_report(status, "joints")["report"]["rejected"]
    score = stage_report(status, "score")["report"]["rejected"]
    for counts in (joints, score):
        assert counts.get("malformed", 0) >= 3
        assert counts.get("wrong-version", 0) == 1
        assert counts.get("unknown-type", 0) == 1
        assert counts.get("truncated", 0) == 1
    assert up.wait(60) == 0, up.stderr.read()
    assert frame_seqs(read_jsonl(events)) == list(range(frames))


def test_sink_attached_mid_run_gets_state_at_once_and_detaching_disturbs_nothing(
    pipeline, video, tmp_path
):
    frames = 480
    source = video(frames)
    main_events, attached = tmp_path / "main.jsonl", tmp_path / "attached.jsonl"
    up = pipeline.start(
        "up",
        "--source",
        str(source),
        "--workers",
        "1",
        "--segmenter",
        "passthrough:jitter_ms=40",
        *FAST,
        "--sink",
        f"jsonl:path={main_events},frames=1",
    )
    pipeline.wait_for(
        lambda s: (stage_report(s, "score")["report"] or {}).get("frames_out", 0) > 30,
        timeout=60,
        what="30 frames published",
    )
    sink = pipeline.start("sink", "attach", "jsonl", "--path", str(attached), "--frames")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not read_jsonl(attached):
        time.sleep(0.1)
    first = read_jsonl(attached)[0]
    assert first["type"] == "snapshot"
    assert first["frames"] > 30 and first["last_seq"] >= 30
    time.sleep(1.0)
    sink.send_signal(signal.SIGINT)
    assert sink.wait(15) == 0
    seen_by_attached = frame_seqs(read_jsonl(attached))
    assert seen_by_attached and seen_by_attached[0] > 30
    assert up.wait(60) == 0, up.stderr.read()
    assert frame_seqs(read_jsonl(main_events)) == list(range(frames))


def test_an_attached_sink_that_stops_reading_slows_nobody(pipeline, video, tmp_path):
    """A sink attached to a file run, then frozen (SIGSTOP: its queue fills):
    the built-in sinks still get every result and the run ends as usual; the
    frozen sink is cut loose and counts what it missed. (Before, a full
    subscriber made every publish wait 5 s and then drop for all sinks.)"""
    frames = 8000  # more than its queues hold: ~2,000 at the publisher, the rest in the kernel
    summary, tapped = tmp_path / "summary.json", tmp_path / "tapped.jsonl"
    up = pipeline.start(
        "up",
        "--source",
        str(video(frames, size=(64, 48))),
        "--segmenter",
        "passthrough",
        *FAST,
        "--summary",
        str(summary),
    )
    pipeline.wait_for(
        lambda s: stage_report(s, "score")["report"] is not None, timeout=60, what="score"
    )
    attached = pipeline.start("sink", "attach", "jsonl", "--path", str(tapped), "--frames")
    # Frozen at its first frame (its file is flushed line by line), so most of
    # the file is still to come: more than its queues can hold.
    deadline = time.monotonic() + 60
    while '"type":"frame"' not in (tapped.read_text() if tapped.exists() else ""):
        assert time.monotonic() < deadline, "the attached sink received no frame"
        time.sleep(0.005)
    os.kill(attached.pid, signal.SIGSTOP)
    try:
        assert up.wait(180) == 0, up.stderr.read()
    finally:
        os.kill(attached.pid, signal.SIGCONT)
    document = json.loads(summary.read_text())
    assert (document["frames"], document["dropped"], document["missed_by_summary"]) == (
        frames,
        0,
        0,
    )
    assert attached.wait(30) == 0
    lines = [r for r in read_jsonl(tapped) if r.get("type") == "frame"]
    assert 0 < len(lines) < frames  # it was cut loose, not waited for


def test_ctrl_c_stops_cleanly_and_writes_the_summary(pipeline, video, tmp_path):
    source = video(600)
    summary = tmp_path / "summary.json"
    up = pipeline.start(
        "up",
        "--source",
        str(source),
        "--realtime",
        "--segmenter",
        "passthrough",
        *FAST,
        "--summary",
        str(summary),
    )
    pipeline.wait_for(
        lambda s: (stage_report(s, "score")["report"] or {}).get("frames_out", 0) > 20,
        timeout=60,
        what="20 frames",
    )
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(30) == 130
    document = json.loads(summary.read_text())
    assert document["ended"] is True and document["reason"] == "stopped"
    assert 20 < document["frames"] < 600


def test_a_stage_that_keeps_dying_stops_the_pipeline_with_a_clear_message(pipeline, video):
    up = pipeline.start(
        "up",
        "--source",
        str(video(900)),
        "--realtime",
        "--segmenter",
        "passthrough",
        *FAST,
    )
    killed = set()
    deadline = time.monotonic() + 90
    while up.poll() is None and time.monotonic() < deadline:
        status = pipeline.status()
        report = status and stage_report(status, "joints")["report"]
        if report and stage_report(status, "joints")["alive"] and report["pid"] not in killed:
            killed.add(report["pid"])
            os.kill(report["pid"], signal.SIGKILL)
        time.sleep(0.2)
    assert up.wait(30) == 1
    stderr = up.stderr.read()
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: stage joints keeps failing (5 crashes in 60 s; last killed by")


def test_tcp_pipeline_takes_an_extra_worker_started_elsewhere(pipeline, video, tmp_path):
    frames = 400
    events = tmp_path / "frames.jsonl"
    address = f"tcp://127.0.0.1:{free_port_block()}"
    up = pipeline.start(
        "up",
        "--source",
        str(video(frames)),
        "--bind",
        address,
        "--insecure",  # plain tcp, loopback only (CURVE is tested in test_curve.py)
        "--workers",
        "1",
        "--segmenter",
        "passthrough:jitter_ms=30-50",
        *FAST,
        "--sink",
        f"jsonl:path={events},frames=1",
    )
    extra = pipeline.start("stage", "segment", "--connect", address, "--index", "7", "--insecure")
    status = pipeline.wait_for(
        lambda s: any(
            r["stage"] == "segment-7" and (r["report"] or {}).get("frames_out", 0) > 5
            for r in s["stages"]
        ),
        timeout=60,
        what="the remote worker to take frames",
    )
    assert not stage_report(status, "segment-7")["supervised"]
    assert up.wait(90) == 0, up.stderr.read()
    assert extra.wait(30) == 0
    assert frame_seqs(read_jsonl(events)) == list(range(frames))


def test_each_worker_sees_only_its_gpu(pipeline, video):
    up = pipeline.start(
        "up",
        "--source",
        str(video(600)),
        "--workers",
        "3",
        "--gpus",
        "0,1",
        "--segmenter",
        "passthrough:jitter_ms=20",
        *FAST,
    )
    status = pipeline.wait_for(
        lambda s: all(stage_report(s, f"segment-{i}")["report"] for i in range(3)),
        timeout=60,
        what="three workers reporting",
    )
    for index, gpu in ((0, "0"), (1, "1"), (2, "0")):
        pid = stage_report(status, f"segment-{index}")["report"]["pid"]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"CUDA_VISIBLE_DEVICES={gpu}".encode() in environ
    assert up.wait(60) == 0


def test_stages_exit_when_the_supervisor_is_killed(pipeline, video, run_root):
    """Even a stage blocked sending to a stage that died with the supervisor
    notices it is orphaned and exits: nothing is left running."""
    import psutil

    up = pipeline.start(
        "up", "--source", str(video(600)), "--realtime", "--segmenter", "passthrough", *FAST
    )
    pipeline.wait_for(
        lambda s: (stage_report(s, "score")["report"] or {}).get("frames_out", 0) > 20,
        timeout=60,
        what="20 frames",
    )
    stages = [
        p for p in psutil.Process(up.pid).children() if "repcoach.launch.stage" in p.cmdline()
    ]
    assert len(stages) >= 5
    up.kill()  # the supervisor alone: its stages become orphans
    up.wait(10)
    gone, alive = psutil.wait_procs(stages, timeout=30)
    assert not alive, [p.cmdline()[3] for p in alive]

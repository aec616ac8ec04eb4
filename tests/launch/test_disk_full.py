"""A full disk is never silent: the video, summary, history database and
report each get one clear line naming the file and the error, `pipeline up`
exits non-zero, and the previous good file is kept (never replaced by a
partial one, never called "written").

Each test mounts a 1 MiB tmpfs (as root; skipped otherwise) and runs the real
pipeline with the pass-through backends on a rendered clip.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from repcoach.common.errors import UserError
from repcoach.common.history import History
from repcoach.common.messages import FeedbackEvent, FrameMeta, FramePacket
from repcoach.stages.report.html import GENERATOR
from repcoach.stages.sinks.outbox import Outbox
from repcoach.stages.sinks.webhook import WebhookSink

FAST = ["--segmenter", "passthrough", "--joints", "none", "--no-console"]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Write a filler file until the disk refuses another byte, then give
    back `leave` bytes."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        while True:
            try:
                handle.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        while True:  # the last partial block
            try:
                handle.write(b"\0")
            except OSError:
                break
    if leave:
        os.truncate(filler, max(filler.stat().st_size - leave, 0))


def up(pipeline, video, *args: str) -> subprocess.CompletedProcess:
    clip = video(60)
    return pipeline.run("up", "--source", str(clip), *FAST, *args, timeout=240)


def one_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "written" not in result.stdout, result.stdout
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


def test_video_to_a_full_disk_keeps_the_previous_file(pipeline, video, small_disk, tmp_path):
    target = small_disk / "session.mp4"
    previous = video(3).read_bytes()  # a short, valid, earlier recording
    target.write_bytes(previous)
    # Room for the encoder's check, not for a recording (a slow video sink
    # drops frames and repeats the last: the file's size is not the clip's).
    fill(small_disk, leave=16 * 1024)
    result = up(
        pipeline, video, "--sink", f"video:path={target}", "--summary", str(tmp_path / "s.json")
    )
    one_error(result, "session.mp4", "No space left on device", "the previous file was kept")
    assert target.read_bytes() == previous
    assert leftovers(small_disk) == ["session.mp4"]  # no partial file left behind


def test_video_to_a_disk_already_full_says_so(pipeline, video, small_disk, tmp_path):
    target = small_disk / "session.mp4"
    fill(small_disk)
    result = up(pipeline, video, "--sink", f"video:path={target}")
    one_error(result, "session.mp4", "No space left on device", "nothing was written")
    assert leftovers(small_disk) == []


def test_summary_to_a_full_disk_keeps_the_previous_file(pipeline, video, small_disk):
    target = small_disk / "s.json"
    target.write_text('{"previous": true}\n')
    fill(small_disk)
    result = up(pipeline, video, "--summary", str(target))
    one_error(result, "s.json", "No space left on device", "the previous file was kept")
    assert target.read_text() == '{"previous": true}\n'
    assert leftovers(small_disk) == ["s.json"]


@pytest.mark.parametrize("when", ["at-open", "mid-session"])
def test_history_database_on_a_full_disk(pipeline, video, small_disk, tmp_path, when):
    db_path = small_disk / "h.sqlite"
    history = History.open(db_path)
    history.start_session("earlier", None, "beginner", "clip.mp4", "gym")
    history.add_rep("earlier", "earlier:1:0", "rep", 1, {"rep": 1, "exercise": "squat"})
    # mid-session: a reader keeps the WAL index open, so the sink opens the
    # database and then finds every write refused
    keeper = sqlite3.connect(db_path) if when == "mid-session" else None
    if keeper is not None:
        keeper.execute("SELECT COUNT(*) FROM sessions").fetchone()
    history.close()
    fill(small_disk)
    summary = tmp_path / "s.json"
    try:
        result = up(pipeline, video, "--history-db", str(db_path), "--summary", str(summary))
    finally:
        if keeper is not None:
            keeper.close()
    line = one_error(result, "h.sqlite", "no space left on device")
    if when == "mid-session":
        assert "could not write the history database" in line and "recorded before is kept" in line
    (small_disk / "filler").unlink()  # reading a WAL database needs room for its index
    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert ("earlier",) in db.execute("SELECT id FROM sessions").fetchall()
        assert db.execute("SELECT event_id FROM reps").fetchall() == [("earlier:1:0",)]
    finally:
        db.close()


def test_report_to_a_full_disk_keeps_the_previous_report(pipeline, video, small_disk):
    report = small_disk / "report"
    report.mkdir()
    page = f'<html><meta name="generator" content="{GENERATOR}">earlier report</html>'
    (report / "index.html").write_text(page)
    fill(small_disk)
    result = up(pipeline, video, "--report", str(report))
    one_error(result, "report", "No space left on device", "the previous report was kept")
    assert (report / "index.html").read_text() == page
    assert leftovers(small_disk) == ["report"]  # no half-written report folder
    assert sorted(p.name for p in report.iterdir()) == ["index.html"]


def _events(seq: int, pad: str = "") -> FramePacket:
    meta = FrameMeta("cam", seq, seq - 1, time.monotonic_ns(), time.time(), seq / 30, 64, 48)
    data = {"rep": seq, "pad": pad}
    event = FeedbackEvent(f"s:{seq}:0", "rep", 1, seq, seq / 30, f"Rep {seq}", data=data)
    return FramePacket(meta, events=(event,))


def test_webhook_queue_on_a_full_disk_is_an_error_and_keeps_what_was_queued(small_disk):
    queue = small_disk / "q.sqlite"
    # nothing answers on port 9: every event waits in the queue
    sink = WebhookSink("http://user:pw@127.0.0.1:9/x", Outbox(queue), flush_s=0.0)
    for seq in range(3):
        sink.on_result(_events(seq))
    fill(small_disk)
    for seq in range(3, 300):  # big enough that the WAL needs a new page soon
        sink.on_result(_events(seq, pad="x" * 2000))
    with pytest.raises(UserError) as raised:
        sink.close(0)
    message = str(raised.value)
    assert "could not write the webhook queue" in message and "q.sqlite" in message
    assert "full" in message and "never queued" in message
    assert "pw" not in message
    (small_disk / "filler").unlink()
    db = sqlite3.connect(queue)
    try:
        ids = [row[0] for row in db.execute("SELECT event_id FROM outbox ORDER BY pos")]
    finally:
        db.close()
    assert ids[:3] == ["s:0:0", "s:1:0", "s:2:0"]
    assert sink.unqueued > 0 and len(ids) + sink.unqueued == 300

"""History with the real pipeline: reps reach the database as they happen and
survive a crash; `pipeline history` reads them back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time

import psutil
import pytest


def _reps(db_path) -> list[tuple]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(db_path, timeout=5)
    try:
        return db.execute(
            "SELECT number, member, exercise FROM reps WHERE kind = 'rep' ORDER BY number"
        ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        db.close()


def test_reps_already_counted_survive_a_crash_mid_session(pipeline, run_root):
    db_path = run_root / "data" / "history.sqlite"
    up = pipeline.start(
        "up",
        "--source",
        "synthetic:squat,reps=10",
        "--realtime",
        "--no-console",
        "--profile",
        "bob",
        "--level",
        "advanced",
    )
    deadline = time.monotonic() + 150
    while len(_reps(db_path)) < 2:
        assert up.poll() is None, up.stderr.read()
        assert time.monotonic() < deadline, "no reps reached the history database"
        time.sleep(0.5)
    # Every process dies at once, mid-set, as in a power cut. Each stage runs
    # in its own session, so killing the supervisor's group alone would leave
    # them to notice the orphaning and close cleanly ("stopped").
    stages = psutil.Process(up.pid).children(recursive=True)
    os.killpg(up.pid, signal.SIGKILL)
    for stage in stages:
        with contextlib.suppress(psutil.NoSuchProcess):
            stage.kill()
    up.wait(10)
    psutil.wait_procs(stages, timeout=10)
    reps = _reps(db_path)
    assert len(reps) >= 2
    assert [r[0] for r in reps] == list(range(1, len(reps) + 1))
    assert {(r[1], r[2]) for r in reps} == {("bob", "squat")}
    db = sqlite3.connect(db_path)
    member, level, status = db.execute("SELECT member, level, status FROM sessions").fetchone()
    db.close()
    assert (member, level, status) == ("bob", "advanced", "running")  # never closed

    shown = pipeline.run("history", "--profile", "bob", "--json")
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert (row["member"], row["exercise"], row["reps"]) == ("bob", "squat", len(reps))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "--profile", "nobody"], "no member 'nobody'"),
        (["report", "last"], "no session 'last'"),
        (["up", "--source", "synthetic:squat", "--no-history", "--report", "r"], "--report needs"),
        (["up", "--source", "synthetic:squat", "--profile", "a,b"], "--profile 'a,b'"),
        (["up", "--source", "synthetic:squat", "--level", "olympian"], "'olympian' is not one of"),
        (["members", "set", "ann", "--max-hr", "20"], "maximum heart rate of 20 is not plausible"),
        (["members", "set", "a;b"], "member name 'a;b': use letters"),
    ],
)
def test_history_bad_input_is_one_line(pipeline, run_root, args, message):
    (run_root / "data").mkdir()
    db = run_root / "data" / "history.sqlite"
    assert "no history database" in pipeline.run("history").stderr
    assert not db.exists()  # reading history never creates a database
    if args[0] in ("history", "report"):
        from repcoach.common.history import History

        History.open(db).close()  # an empty database
    result = pipeline.run(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_hold_still_under_way_when_the_clip_ends_is_published_and_recorded(
    pipeline, run_root, tmp_path
):
    events = tmp_path / "events.jsonl"
    result = pipeline.run(
        "up",
        "--source",
        "synthetic:plank,seconds=5",
        "--no-console",
        "--exercise",
        "plank",
        "--sink",
        f"jsonl:path={events}",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    holds = [
        json.loads(line) for line in events.read_text().splitlines() if '"kind":"hold"' in line
    ]
    assert len(holds) == 1 and holds[0]["data"]["seconds"] > 2.0
    db = sqlite3.connect(run_root / "data" / "history.sqlite")
    rows = db.execute("SELECT kind, seconds, event_id FROM reps").fetchall()
    db.close()
    assert rows == [("hold", holds[0]["data"]["seconds"], holds[0]["id"])]


def test_no_history_reads_and_writes_no_database(pipeline, run_root):
    result = pipeline.run(
        "up",
        "--source",
        "synthetic:squat,reps=1",
        "--no-console",
        "--no-history",
        "--profile",
        "zed",
        "--level",
        "beginner",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert not (run_root / "data").exists()

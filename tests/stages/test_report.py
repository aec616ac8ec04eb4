"""The session report, from a real history database.

Sessions are recorded the way a run records them: a rendered synthetic
athlete's truth joints (no models) go through the real coach, and every
result packet through the real history sink; `write_report` then reads the
SQLite file back. The last test runs the whole pipeline with `--report`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.history import History
from repcoach.common.messages import EndOfStream, FrameMeta, FramePacket, PersonJoints, SessionState
from repcoach.stages.coaching import Coach
from repcoach.stages.report import write_report
from repcoach.stages.report.html import GENERATOR
from repcoach.stages.sinks.history import StationRecord
from repcoach.stages.synthetic import SyntheticSource

MEMBER = "Alex O'Neil"  # a quote: the page must escape it
STAND_S = 2.0  # after the clip the plank athlete stands up, ending the hold


def _joints(track: int, truth) -> PersonJoints:
    return PersonJoints(
        track,
        truth.joints_xy.astype(np.float32),
        truth.visible.astype(np.float32),
        np.zeros((33, 3), np.float32),
    )


def record(db: Path, session: str, spec: str, exercise: str, member: str | None) -> list[dict]:
    """Runs `spec` through the coach into the history sink; returns the rep,
    partial rep and hold events (their data) in order."""
    source = SyntheticSource.from_spec(spec)
    frames = [[_joints(i + 1, p) for i, p in enumerate(t.people)] for _, t in source.frames()]
    plank = [i for i, a in enumerate(source.athletes) if a.exercise.is_hold]
    standing = frames[0][0]  # athlete 1 standing, as the planker getting up
    for _ in range(round(STAND_S * source.fps) if plank else 0):
        frames.append(
            [PersonJoints(plank[0] + 1, standing.image_xy, standing.visibility, standing.world_xyz)]
        )
    coach = Coach(exercise, session_id=session, member=member or "")  # person 1 is the member
    sink = StationRecord(db, session, member, "beginner", "gym-1")
    events = []

    def state(seq: int, ended: bool = False) -> SessionState:
        return SessionState(
            "synthetic",
            seq + 1,
            0,
            len(frames),
            seq,
            (seq + 1) / source.fps,
            time.time(),
            ended,
            "",
        )

    for seq, joints in enumerate(frames):
        meta = FrameMeta("synthetic", seq, seq - 1, 0, 0.0, seq / source.fps, 640, 480)
        packet = coach.process(FramePacket(meta, joints=tuple(joints)))
        sink.on_result(packet)
        events += [e.data for e in packet.events if e.kind in ("rep", "partial_rep", "hold")]
        if seq % 15 == 0:
            sink.on_state(state(seq))
            sink.tick()
    eos = EndOfStream("synthetic", len(frames) - 1, len(frames), 0, "end of file")
    coach.end(eos)
    sink.on_state(state(len(frames) - 1, ended=True))
    sink.on_eos(eos)
    sink.close(0)
    return events


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A history with two sessions of the member: an earlier squat session,
    then a squatter, a curler (one partial rep) and a planker side by side."""
    db = tmp_path_factory.mktemp("history") / "history.sqlite"
    record(db, "s-earlier", "squat,reps=2,seed=4", "squat", MEMBER)
    events = record(
        db,
        "s-today",
        "squat+bicep_curl+plank,reps=4,fault=torso_lean@2+partial_range@3+hip_sag",
        "auto",
        MEMBER,
    )
    return db, events


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_shows_every_rep_fault_and_plot(recorded, tmp_path):
    db, events = recorded
    kinds = [e.get("exercise") for e in events]
    assert {"squat", "bicep_curl", "plank"} <= set(kinds)  # the coach saw all three
    history = History.open(db, create=False)
    index = write_report(history, "s-today", tmp_path / "report")
    page = index.read_text()

    moving = [e for e in events if "rep" in e]
    rows = re.findall(r'<tr class="rep( partial)?">', page)
    assert len(rows) == len(moving) == len(history.reps("s-today")) - 1  # all but the hold
    assert rows.count(" partial") == sum(e["partial"] for e in moving) == 1
    assert len(re.findall(r'<tr class="hold">', page)) == 1
    for fault in ("Torso lean", "Shallow depth", "Partial range", "Hip sag"):
        assert fault in page
    assert "Keep your chest up" in page  # the cue from exercises/squat.json
    assert "Alex O&#x27;Neil" in page and MEMBER not in page  # escaped
    assert "<h1>Session s-today</h1>" in page and GENERATOR in page
    assert "<script" not in page and not re.search(r'(src|href)="[a-z]+:', page)  # no CDN

    images = _images(page)
    names = {Path(n).name.split("-")[0] for n in images}
    assert names == {"angles", "scores", "tempo", "progress"}
    assert len([n for n in images if n.startswith("angles-")]) == 3  # one per person
    assert sorted(images) == sorted(p.name for p in index.parent.glob("*.png"))
    for name in images:
        image = cv2.imread(str(index.parent / name))
        assert image is not None, name
        h, w = image.shape[:2]
        assert 250 <= h <= 600 and 500 <= w <= 1300, (name, w, h)
    squat = cv2.imread(str(index.parent / "angles-p1-squat.png"), cv2.IMREAD_GRAYSCALE)
    assert np.count_nonzero(squat < 200) > 0.02 * squat.size  # lines, spans: not blank
    assert "Progress of Alex" in page and "s-earlier" in page
    history.close()


def test_regenerating_replaces_the_folder(recorded, tmp_path):
    db, _ = recorded
    history = History.open(db, create=False)
    out = tmp_path / "report"
    write_report(history, "s-today", out)
    (out / "stale.png").write_bytes(b"left from an older report")
    index = write_report(history, "s-earlier", out)
    assert not (out / "stale.png").exists()
    assert "<h1>Session s-earlier</h1>" in index.read_text()
    assert "progress" not in " ".join(_images(index.read_text()))  # one session: no trend
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temp folders left
    assert write_report(history, "last", out).read_text().count("Session s-today") == 2
    history.close()


def test_unknown_session_and_bad_folders(recorded, tmp_path):
    db, _ = recorded
    history = History.open(db, create=False)
    with pytest.raises(UserError, match=r"no session 'nope' .*recent: s-today, s-earlier"):
        write_report(history, "nope", tmp_path / "r")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        write_report(history, "s-today", tmp_path / "file")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="holds other files"):
        write_report(history, "s-today", mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="cannot write the report into .*file/sub"):
        write_report(history, "s-today", tmp_path / "file" / "sub")
    history.close()


def test_session_without_reps(tmp_path):
    history = History.open(tmp_path / "h.sqlite")
    history.start_session("s-empty", None, "intermediate", "camera:0", "default")
    index = write_report(history, "s-empty", tmp_path / "out")
    page = index.read_text()
    assert "No reps were recorded in this session." in page
    assert _images(page) == [] and not list(index.parent.glob("*.png"))
    history.close()


@pytest.mark.slow
def test_pipeline_up_writes_the_report(pipeline, tmp_path):
    out = tmp_path / "report"
    done = pipeline.run(
        "up",
        "--source",
        "synthetic:squat,reps=3",
        "--no-console",
        "--profile",
        "sam",
        "--report",
        str(out),
        "--name",
        "rpt",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = (out / "index.html").read_text()
    assert len(re.findall(r'<tr class="rep">', page)) == 3
    assert "sam (intermediate)" in page
    assert all((out / name).exists() for name in _images(page))
    history = History.open(Path(pipeline.env["REPCOACH_DATA_DIR"]) / "history.sqlite")
    session = history.session("last")["id"]
    history.close()
    assert f"<h1>Session {session}</h1>" in page
    again = pipeline.run("report", "last", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"report written to {out / 'index.html'}"
    assert (out / "index.html").read_text().count('<tr class="rep">') == 3
    unknown = pipeline.run("report", "nope")
    assert unknown.returncode != 0 and "Traceback" not in unknown.stderr
    assert "no session 'nope'" in unknown.stderr and session in unknown.stderr

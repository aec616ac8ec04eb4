"""The history database: members, reps recorded once, baselines, progress."""

from __future__ import annotations

import sqlite3

import pytest

from repcoach.common.errors import UserError
from repcoach.common.history import AngleSample, History


def _rep(number: int, rom: float, score: float = 100.0, faults=(), member="alice") -> dict:
    return {
        "rep": number,
        "exercise": "squat",
        "member": member,
        "start_pts": number * 3.0,
        "bottom_pts": number * 3.0 + 1,
        "end_pts": number * 3.0 + 2,
        "tempo_down_s": 1.0,
        "tempo_up_s": 1.0,
        "rom": rom,
        "rom_unit": "deg",
        "score": score,
        "faults": list(faults),
    }


@pytest.fixture
def history(tmp_path):
    db = History.open(tmp_path / "h.sqlite")
    yield db
    db.close()


def test_member_level_is_created_kept_and_updated(history):
    assert history.member_level("alice") == "intermediate"
    assert history.member_level("alice", "beginner") == "beginner"
    assert history.member_level("alice") == "beginner"  # saved to the profile
    with pytest.raises(UserError, match="valid: beginner, intermediate, advanced"):
        history.member_level("bob", "expert")


def test_a_rep_delivered_twice_is_recorded_once(history):
    history.start_session("s1", "alice", "intermediate", "cam", "default")
    history.add_rep("s1", "s1:10:1", "rep", 1, _rep(1, 80))
    history.add_rep("s1", "s1:10:1", "rep", 1, _rep(1, 80))
    history.add_rep("s1", "s1:20:2", "partial_rep", 1, {**_rep(1, 20), "partial": True})
    reps = history.reps("s1")
    assert [(r["kind"], r["number"]) for r in reps] == [("rep", 1), ("partial_rep", 1)]
    assert reps[0]["detail"]["rom"] == 80


def test_baseline_comes_from_the_members_last_session_with_reps(history):
    for session, roms in (("s1", [60, 62, 64]), ("s2", [80, 90, 100])):
        history.start_session(session, "alice", "intermediate", "cam", "default")
        for i, rom in enumerate(roms, 1):
            history.add_rep(session, f"{session}:{i}", "rep", 1, _rep(i, rom))
    history.start_session("s3", "alice", "intermediate", "cam", "default")
    baseline = history.baselines("alice", before="s3")["squat"]
    assert (baseline.session, baseline.rom, baseline.reps, baseline.tempo_s) == ("s2", 90, 3, 2.0)
    assert history.baselines("bob") == {}


def test_progress_per_session_and_exercise(history):
    history.start_session("s1", "alice", "beginner", "cam", "default")
    history.add_rep("s1", "a", "rep", 1, _rep(1, 70, 85, ["torso_lean"]))
    history.add_rep("s1", "b", "rep", 1, _rep(2, 80, 100))
    history.add_rep("s1", "c", "rep", 2, _rep(1, 50, 40, ["shallow_depth"], member=None))
    rows = history.progress("alice")
    assert len(rows) == 1
    row = rows[0]
    assert (row["reps"], row["mean_score"], row["median_rom"]) == (2, 92.5, 75)
    assert row["faults"] == {"torso_lean": 1}  # the guest's rep is not alice's
    assert history.progress()[0]["reps"] == 3


def test_unknown_session_names_recent_ones(history):
    history.start_session("s1", None, "intermediate", "cam", "default")
    with pytest.raises(UserError, match="no session 'nope'.*recent: s1"):
        history.session("nope")
    assert history.session("last")["id"] == "s1"


def test_missing_database_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no history database at .*created by `pipeline up`"):
        History.open(tmp_path / "none.sqlite", create=False)


def test_rows_are_committed_as_they_are_written(history, tmp_path):
    """Another connection (a crash leaves nothing else) sees each rep at once."""
    history.start_session("s1", "alice", "intermediate", "cam", "default")
    history.add_rep("s1", "a", "rep", 1, _rep(1, 70))
    other = sqlite3.connect(tmp_path / "h.sqlite")
    assert other.execute("SELECT count(*) FROM reps").fetchone()[0] == 1
    other.close()


def test_a_database_of_the_first_schema_is_brought_up_to_date(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE members (name TEXT PRIMARY KEY, level TEXT NOT NULL, created REAL NOT NULL);"
        "CREATE TABLE angles (session TEXT NOT NULL, person INTEGER NOT NULL, pts REAL NOT NULL,"
        " exercise TEXT, angles TEXT NOT NULL);"
        "INSERT INTO members VALUES ('ann', 'beginner', 0);"
        "INSERT INTO angles VALUES ('s', 1, 0.5, 'squat', '{\"knee\": 90}');"
        "PRAGMA user_version = 1;"
    )
    old.close()
    history = History.open(path)
    assert history.angles("s") == [AngleSample(1, 0.5, "squat", {"knee": 90}, None)]
    assert history.max_hr("ann") is None
    history.set_max_hr("ann", 182)
    history.add_angles("s", [AngleSample(1, 0.6, "squat", {"knee": 95}, 120)])
    assert history.max_hr("ann") == 182 and history.angles("s")[-1].heart_rate == 120
    assert history.member_level("ann") == "beginner"

"""Training history in a local SQLite file: members, sessions, every rep and
hold, and a thinned angle trace for the session report.

One writer per session (the history sink) commits each rep in its own
transaction, so a crash mid-session keeps every rep already counted. Readers
(`pipeline history`, `pipeline report`, the coach's baseline) open the same
file; WAL mode lets them read while a session is being written.

Tables:
  members(name, level, created, max_hr)   max_hr: for the report's heart-rate zones
  sessions(id, member, level, source, station, started, ended, frames,
           duration_s, status)           status: running | ended | stopped
  reps(event_id, session, person, member, exercise, kind, number, start_frame,
       end_frame, start_pts, bottom_pts, end_pts, tempo_down_s, tempo_up_s,
       rom, rom_unit, seconds, score, faults, detail)
                                          kind: rep | partial_rep | hold
  angles(session, person, pts, exercise, angles, heart_rate)
                                          ~10 samples/s per person
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple

from repcoach.common.atomic import disk_full
from repcoach.common.endpoints import data_root
from repcoach.common.errors import UserError
from repcoach.common.messages import EventKind
from repcoach.common.sqlite import open_database, transaction


class Level(str, Enum):
    """How strictly a member is coached (see `stages/coaching/levels.py`)."""

    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


LEVELS = tuple(level.value for level in Level)
DEFAULT_LEVEL = Level.INTERMEDIATE.value
REP_KINDS = (EventKind.REP, EventKind.PARTIAL_REP, EventKind.HOLD)
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    name TEXT PRIMARY KEY,
    level TEXT NOT NULL,
    created REAL NOT NULL,
    max_hr INTEGER
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    member TEXT REFERENCES members(name),
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    station TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    frames INTEGER NOT NULL DEFAULT 0,
    duration_s REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS reps (
    event_id TEXT PRIMARY KEY,
    session TEXT NOT NULL REFERENCES sessions(id),
    person INTEGER NOT NULL,
    member TEXT,
    exercise TEXT NOT NULL,
    kind TEXT NOT NULL,
    number INTEGER NOT NULL,
    start_frame INTEGER, end_frame INTEGER,
    start_pts REAL, bottom_pts REAL, end_pts REAL,
    tempo_down_s REAL, tempo_up_s REAL,
    rom REAL, rom_unit TEXT, seconds REAL,
    score REAL,
    faults TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reps_by_session ON reps(session, person, end_pts);
CREATE INDEX IF NOT EXISTS reps_by_member ON reps(member, exercise);
CREATE TABLE IF NOT EXISTS angles (
    session TEXT NOT NULL,
    person INTEGER NOT NULL,
    pts REAL NOT NULL,
    exercise TEXT,
    angles TEXT NOT NULL,
    heart_rate INTEGER
);
CREATE INDEX IF NOT EXISTS angles_by_session ON angles(session, person, pts);
"""
MIGRATIONS = {  # version -> what takes a file of the version before to it
    2: [  # heart rate from wearables
        "ALTER TABLE members ADD COLUMN max_hr INTEGER",
        "ALTER TABLE angles ADD COLUMN heart_rate INTEGER",
    ],
}
MAX_HR = (100, 230)  # a maximum heart rate outside this is a typo


def default_history_path() -> Path:
    return data_root() / "history.sqlite"


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise UserError(f"--level {level!r} is not known; valid: {', '.join(LEVELS)}")
    return level


@dataclass(frozen=True)
class Baseline:
    """A member's usual range of motion and tempo on one exercise, from their
    last session that had full reps of it."""

    exercise: str
    session: str
    rom: float
    rom_unit: str
    tempo_s: float  # median seconds down + up
    reps: int


class AngleSample(NamedTuple):
    """A person's joint angles at one moment, and their heart rate then
    (from their strap; None without one or during a gap)."""

    person: int
    pts: float
    exercise: str | None  # None: auto mode did not know it yet
    angles: dict[str, float]
    heart_rate: int | None = None


class History:
    """The history database. Open with `History.open(path)`; every public
    write is one transaction."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None, create: bool = True) -> History:
        path = Path(path or default_history_path()).expanduser()
        if not create and not path.exists():
            raise UserError(
                f"no history database at {path}; it is created by `pipeline up` "
                "(give --history-db PATH if it lives elsewhere)"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = open_database(path, SCHEMA, SCHEMA_VERSION, migrations=MIGRATIONS)
        except (OSError, sqlite3.Error) as exc:
            reason = f"{exc}" + (", no space left on device" if disk_full(path.parent) else "")
            raise UserError(f"history database {path} cannot be used ({reason})") from None
        db.row_factory = sqlite3.Row
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with transaction(self.db):  # all rows or none
            self.db.executemany(sql, rows)

    # --- members

    def member_level(self, name: str, level: str = "") -> str:
        """Create the member if new; save `level` when given. Returns the
        member's level."""
        row = self.db.execute("SELECT level FROM members WHERE name = ?", (name,)).fetchone()
        if row is not None and not level:
            return row["level"]
        level = check_level(level or DEFAULT_LEVEL)
        self._write(
            "INSERT INTO members(name, level, created) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET level = excluded.level",
            [(name, level, time.time())],
        )
        return level

    def set_max_hr(self, name: str, bpm: int) -> None:
        """Save the member's maximum heart rate (the report's zones are
        fractions of it); the member must exist."""
        low, high = MAX_HR
        if not low <= bpm <= high:
            raise UserError(f"a maximum heart rate of {bpm} is not plausible; give {low}-{high}")
        self._write("UPDATE members SET max_hr = ? WHERE name = ?", [(bpm, name)])

    def max_hr(self, name: str | None) -> int | None:
        """The member's maximum heart rate, None when not set."""
        row = self.db.execute("SELECT max_hr FROM members WHERE name = ?", (name,)).fetchone()
        return row["max_hr"] if row is not None else None

    def members(self) -> list[str]:
        return [r["name"] for r in self.db.execute("SELECT name FROM members ORDER BY name")]

    # --- sessions (written by the history sink)

    def start_session(
        self, session: str, member: str | None, level: str, source: str, station: str
    ) -> None:
        self._write(
            "INSERT OR IGNORE INTO sessions(id, member, level, source, station, started) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(session, member, level, source, station, time.time())],
        )

    def set_source(self, session: str, source: str) -> None:
        self._write("UPDATE sessions SET source = ? WHERE id = ?", [(source, session)])

    def update_session(
        self, session: str, frames: int, duration_s: float, status: str = "running"
    ) -> None:
        ended = None if status == "running" else time.time()
        self._write(
            "UPDATE sessions SET frames = ?, duration_s = ?, status = ?, ended = ? WHERE id = ?",
            [(frames, duration_s, status, ended, session)],
        )

    def add_rep(
        self, session: str, event_id: str, kind: str, person: int, detail: Mapping[str, Any]
    ) -> None:
        """One rep, partial rep or hold (the event's `data`). A repeated
        event id is ignored, so re-delivery never counts a rep twice."""
        number = detail.get("hold") if kind == EventKind.HOLD else detail.get("rep")
        row = (
            event_id,
            session,
            person,
            detail.get("member"),
            detail.get("exercise") or "unknown",
            kind,
            int(number or 0),
            detail.get("start_frame"),
            detail.get("end_frame"),
            detail.get("start_pts"),
            detail.get("bottom_pts"),
            detail.get("end_pts"),
            detail.get("tempo_down_s"),
            detail.get("tempo_up_s"),
            detail.get("rom"),
            detail.get("rom_unit"),
            detail.get("seconds"),
            detail.get("score"),
            json.dumps(list(detail.get("faults") or [])),
            json.dumps(dict(detail), default=str),
        )
        self._write(
            "INSERT OR IGNORE INTO reps VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [row]
        )

    def add_angles(self, session: str, samples: Iterable[AngleSample]) -> None:
        """Angle samples, one transaction."""
        rows = [
            (session, s.person, s.pts, s.exercise, json.dumps(s.angles), s.heart_rate)
            for s in samples
        ]
        if rows:
            self._write("INSERT INTO angles VALUES (?, ?, ?, ?, ?, ?)", rows)

    # --- reading

    def session(self, session: str) -> sqlite3.Row:
        """A session by id, or the newest one for "last"; UserError if unknown."""
        if session == "last":
            row = self.db.execute("SELECT * FROM sessions ORDER BY started DESC LIMIT 1").fetchone()
        else:
            row = self.db.execute("SELECT * FROM sessions WHERE id = ?", (session,)).fetchone()
        if row is None:
            known = [r["id"] for r in self.sessions(limit=5)]
            hint = f"; recent: {', '.join(known)}" if known else "; none recorded yet"
            raise UserError(f"no session {session!r} in {self.path}{hint}")
        return row

    def sessions(self, member: str | None = None, limit: int = 1000) -> list[sqlite3.Row]:
        """Sessions, newest first (only `member`'s when given: theirs, and
        any where they checked in at a station and did reps)."""
        if member is None:
            sql, args = "SELECT * FROM sessions ORDER BY started DESC LIMIT ?", (limit,)
        else:
            sql = (
                "SELECT * FROM sessions WHERE member = ? OR id IN "
                "(SELECT session FROM reps WHERE member = ?) ORDER BY started DESC LIMIT ?"
            )
            args = (member, member, limit)  # type: ignore[assignment]
        return list(self.db.execute(sql, args))

    def reps(self, session: str, person: int | None = None) -> list[dict]:
        sql = "SELECT * FROM reps WHERE session = ?"
        args: tuple = (session,)
        if person is not None:
            sql, args = sql + " AND person = ?", (session, person)
        rows = self.db.execute(sql + " ORDER BY person, end_pts, number", args)
        return [_rep_dict(r) for r in rows]

    def angles(self, session: str) -> list[AngleSample]:
        rows = self.db.execute(
            "SELECT person, pts, exercise, angles, heart_rate FROM angles WHERE session = ? "
            "ORDER BY person, pts",
            (session,),
        )
        return [AngleSample(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def baselines(self, member: str, before: str | None = None) -> dict[str, Baseline]:
        """Per exercise, the member's last session with full reps of it
        (sessions other than `before`)."""
        rows = self.db.execute(
            "SELECT r.session, r.exercise, r.rom, r.rom_unit, r.tempo_down_s, r.tempo_up_s "
            "FROM reps r JOIN sessions s ON s.id = r.session "
            "WHERE r.member = ? AND r.kind = 'rep' AND r.session != ? AND r.rom IS NOT NULL "
            "ORDER BY s.started DESC",
            (member, before or ""),
        )
        by_exercise: dict[str, list[sqlite3.Row]] = {}
        for row in rows:
            group = by_exercise.setdefault(row["exercise"], [])
            if not group or group[0]["session"] == row["session"]:
                group.append(row)
        for exercise, group in by_exercise.items():
            by_exercise[exercise] = _in_usual_unit(group)
        return {
            exercise: Baseline(
                exercise=exercise,
                session=group[0]["session"],
                rom=median(r["rom"] for r in group),
                rom_unit=group[0]["rom_unit"] or "",
                tempo_s=median((r["tempo_down_s"] or 0) + (r["tempo_up_s"] or 0) for r in group),
                reps=len(group),
            )
            for exercise, group in by_exercise.items()
        }

    def progress(self, member: str | None = None, limit: int = 50) -> list[dict]:
        """Per session and exercise, oldest first: reps, partial reps, mean
        score, median range of motion and tempo, and the most common faults."""
        out = []
        for session in reversed(self.sessions(member, limit)):
            by_exercise: dict[str, list[dict]] = {}
            for rep in self.reps(session["id"]):
                if member is None or rep["member"] == member:
                    by_exercise.setdefault(rep["exercise"], []).append(rep)
            for exercise, reps in sorted(by_exercise.items()):
                row = exercise_summary(session, exercise, reps)
                out.append({**row, "member": member} if member else row)
        return out


def exercise_summary(session: Mapping[str, Any], exercise: str, reps: list[dict]) -> dict:
    full = [r for r in reps if r["kind"] == EventKind.REP]
    holds = [r for r in reps if r["kind"] == EventKind.HOLD]
    scored = [r["score"] for r in full + holds if r["score"] is not None]
    faults: dict[str, int] = {}
    for rep in full + holds:
        for fault in rep["faults"]:
            faults[fault] = faults.get(fault, 0) + 1
    measured = _in_usual_unit([r for r in full if r["rom"] is not None])
    roms = [r["rom"] for r in measured]
    unit = measured[0]["rom_unit"] if measured else None
    tempos = [(r["tempo_down_s"] or 0) + (r["tempo_up_s"] or 0) for r in full]
    means = [b for b in (beats(r, "hr_mean") for r in reps) if b]  # partial reps too: effort
    peaks = [b for b in (beats(r, "hr_peak") for r in reps) if b]
    return {
        "session": session["id"],
        "started": session["started"],
        "member": session["member"],
        "exercise": exercise,
        "reps": len(full),
        "partial_reps": sum(r["kind"] == EventKind.PARTIAL_REP for r in reps),
        "holds": len(holds),
        "hold_s": round(sum(r["seconds"] or 0 for r in holds), 1),
        "mean_score": round(sum(scored) / len(scored), 1) if scored else None,
        "median_rom": round(median(roms), 2) if roms else None,
        "rom_unit": unit,
        "median_tempo_s": round(median(tempos), 2) if tempos else None,
        "faults": dict(sorted(faults.items(), key=lambda kv: -kv[1])),
        "hr_mean": round(sum(means) / len(means)) if means else None,
        "hr_peak": max(peaks) if peaks else None,
    }


def beats(rep: Mapping[str, Any], key: str) -> int | None:
    """A rep's `hr_mean` or `hr_peak` (from the wearer's strap), if it has one."""
    value = rep["detail"].get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value)


def _in_usual_unit(reps: list) -> list:
    """The reps whose range is in the most common unit: side-view reps
    measure degrees, front-view ones ratios, and the two do not mix."""
    units = [r["rom_unit"] for r in reps]
    usual = max(set(units), key=units.count) if units else None
    return [r for r in reps if r["rom_unit"] == usual]


def _rep_dict(row: sqlite3.Row) -> dict:
    rep = dict(row)
    rep["faults"] = json.loads(rep["faults"])
    rep["detail"] = json.loads(rep["detail"])
    return rep

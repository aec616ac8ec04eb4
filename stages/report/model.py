"""What a session report shows, read from the history database: the session,
then one `Group` per person and exercise (their reps, holds, angle trace and
totals), and the member's progress over earlier sessions."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from repcoach.common.history import AngleSample, History, exercise_summary

GAP_S = 1.0  # angle samples further apart than this are not joined by a line


@dataclass(frozen=True)
class ExerciseWords:
    """How an exercise is named for people: its title, the words for the two
    halves of a rep, and the coaching cue of each fault."""

    title: str
    away: str = "down"
    back: str = "up"
    cues: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str) -> ExerciseWords:
        from repcoach.common.errors import UserError
        from repcoach.stages.coaching import registry

        try:
            spec = registry().get(name)
        except UserError:  # an exercise file that is gone since the session
            return cls(title=human(name))
        cues = {rule.id: rule.cue for rule in spec.rules}
        if spec.cues.get("partial"):
            cues.setdefault("partial_range", spec.cues["partial"])
        return cls(spec.title, spec.phases.away, spec.phases.back, cues)


def safe_name(text: str) -> str:
    """`text` as a file name and URL fragment: letters, digits, '_' and '-'
    only. A name that had to change gets a digest of the original, so two
    names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:64]
    if safe == text:
        return safe
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def human(identifier: str) -> str:
    """ "torso_lean" -> "Torso lean"."""
    words = identifier.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass
class Group:
    """One person doing one exercise in the session."""

    person: int
    exercise: str
    words: ExerciseWords
    reps: list[dict] = field(default_factory=list)  # full and partial, in time order
    holds: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # angle sample pts; NaN breaks a line
    angles: dict[str, list[float]] = field(default_factory=dict)  # name -> one value per time
    heart: list[float] = field(default_factory=list)  # beats per minute per time; NaN: none
    member: str | None = None
    max_hr: int | None = None  # the member's, for heart-rate zones
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A file-name-safe id, unique in the session."""
        return f"p{self.person}-{safe_name(self.exercise)}"

    @property
    def full_reps(self) -> list[dict]:
        return [r for r in self.reps if r["kind"] == "rep"]

    @property
    def partial_reps(self) -> list[dict]:
        return [r for r in self.reps if r["kind"] == "partial_rep"]

    @property
    def rom_unit(self) -> str:
        """The unit most full reps' range of motion is in ("deg" or "ratio")."""
        units = [r["rom_unit"] for r in self.full_reps if r["rom_unit"]]
        return max(set(units), key=units.count) if units else "deg"

    @property
    def measure(self) -> str | None:
        """The measure most of the reps were counted on (the trace to stress)."""
        names = [r["detail"].get("measure") for r in self.reps if r["detail"].get("measure")]
        return max(set(names), key=names.count) if names else None


@dataclass
class ReportData:
    session: dict[str, Any]
    groups: list[Group]
    progress: dict[str, list[dict]]  # exercise -> one summary per session, oldest first

    @property
    def words(self) -> dict[str, ExerciseWords]:
        return {g.exercise: g.words for g in self.groups}

    def member_group(self, exercise: str) -> Group | None:
        """The member's group of `exercise` (the one progress is about)."""
        member = self.session["member"]
        return next((g for g in self.groups if g.exercise == exercise and g.member == member), None)


def load_report(history: History, session_id: str) -> ReportData:
    """Everything the report shows for `session_id` ("last": the newest);
    UserError naming recent sessions when it is unknown."""
    session = dict(history.session(session_id))
    sid = session["id"]
    reps = history.reps(sid)
    alias = _track_aliases(reps)
    groups: dict[tuple[int, str], Group] = {}
    words: dict[str, ExerciseWords] = {}

    def group(person: int, exercise: str) -> Group:
        key = (person, exercise)
        if key not in groups:
            if exercise not in words:
                words[exercise] = ExerciseWords.of(exercise)
            groups[key] = Group(person, exercise, words[exercise])
        return groups[key]

    for rep in reps:
        g = group(rep["person"], rep["exercise"])
        (g.holds if rep["kind"] == "hold" else g.reps).append(rep)
        g.member = g.member or rep["member"]
    for sample in history.angles(sid):
        if sample.exercise:  # samples before auto mode knew the exercise belong to none
            _add_sample(group(alias.get(sample.person, sample.person), sample.exercise), sample)
    for g in groups.values():
        g.max_hr = history.max_hr(g.member) if g.member else None
        g.reps.sort(key=lambda r: (r["end_pts"] or 0.0, r["kind"]))
        g.summary = exercise_summary(session, g.exercise, g.reps + g.holds)
    ordered = sorted(groups.values(), key=lambda g: (g.person, _first_pts(g)))
    return ReportData(session, ordered, _progress(history, session, ordered))


def _track_aliases(reps: list[dict]) -> dict[int, int]:
    """Track id -> the person's first track id. Reps are stored under the
    first id of a person the tracker lost and found again; their angle
    samples carry the track id of the moment."""
    alias = {}
    for rep in reps:
        tracks = rep["detail"].get("tracks") or []
        for track in tracks[1:]:
            alias[int(track)] = int(tracks[0])
    return alias


def _add_sample(g: Group, sample: AngleSample) -> None:
    pts, angles = sample.pts, sample.angles
    if g.times and pts - g.times[-1] > GAP_S:  # the person was away: break the lines
        g.times.append(math.nan)
        g.heart.append(math.nan)
        for values in g.angles.values():
            values.append(math.nan)
    g.times.append(pts)
    g.heart.append(math.nan if sample.heart_rate is None else float(sample.heart_rate))
    for name in angles.keys() | g.angles.keys():
        values = g.angles.setdefault(name, [math.nan] * (len(g.times) - 1))
        value = angles.get(name)
        values.append(math.nan if value is None else float(value))


def _first_pts(g: Group) -> float:
    starts = [r["start_pts"] for r in g.reps + g.holds if r["start_pts"] is not None]
    return min(starts + [t for t in g.times[:1] if not math.isnan(t)], default=0.0)


def _progress(history: History, session: dict, groups: list[Group]) -> dict[str, list[dict]]:
    """The member's sessions up to this one, per exercise done today; only
    exercises with more than one session (one point is no trend)."""
    member = session["member"]
    if not member:
        return {}
    today = {g.exercise for g in groups if g.member == member}
    out: dict[str, list[dict]] = {}
    for row in history.progress(member):
        if row["exercise"] in today and row["started"] <= session["started"]:
            out.setdefault(row["exercise"], []).append(row)
    return {exercise: rows for exercise, rows in out.items() if len(rows) > 1}

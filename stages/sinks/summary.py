"""Session summary JSON, written atomically (at the end, on stop, and every
few seconds so a crash keeps what was already processed)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path

from repcoach.common.atomic import write_failure, write_json_atomic
from repcoach.common.config import MAX_STATIONS
from repcoach.common.errors import UserError
from repcoach.common.messages import (
    PHASE_IDLE,
    REMOVED,
    STOPPED,
    EndOfStream,
    EventKind,
    FramePacket,
    SessionState,
)
from repcoach.common.specs import Spec
from repcoach.stages.sinks import required_path

log = logging.getLogger(__name__)

WRITE_EVERY_S = 2.0
DETAIL_FIELDS = ("start_frame", "end_frame", "score", "faults")


class RepLog:
    """Every rep and partial rep each person did, grouped by exercise.

    A person the tracker lost and found again under a new track id, whose
    state the coach handed over, keeps every rep: their events then name
    all their track ids (`data["tracks"]`, oldest first), and what was
    logged under the earlier ones becomes the current id's."""

    def __init__(self) -> None:
        # track -> exercise -> {"reps": [detail...], "partial": count}
        self.people: dict[int, dict[str, dict]] = defaultdict(dict)
        self.members: dict[int, str] = {}  # track -> the member their reps went to

    def add(self, packet: FramePacket) -> None:
        exercise_of = {s.track_id: s.exercise for s in packet.scores}
        for event in packet.events:
            track = event.track_id
            self._hand_over(event.data.get("tracks"), track)
            if event.kind not in (EventKind.REP, EventKind.PARTIAL_REP):
                continue
            exercise = event.data.get("exercise") or exercise_of.get(track) or "unknown"
            entry = self.people[track].setdefault(exercise, {"reps": [], "partial": 0})
            if member := event.data.get("member"):
                self.members[track] = str(member)
            if event.kind == EventKind.REP:
                detail = {k: event.data.get(k) for k in DETAIL_FIELDS}
                detail["faults"] = list(detail["faults"] or [])
                entry["reps"].append(detail)
            else:
                entry["partial"] += 1

    def _hand_over(self, tracks: object, track: int) -> None:
        """Moves what was logged under the person's earlier track ids to
        `track`. The coach lists `track` last; anything else is ignored (a
        stale or forged list must not pull in somebody else's reps)."""
        if not isinstance(tracks, list) or not tracks or tracks[-1] != track:
            return
        for earlier in reversed(tracks):  # newest first: each is put before the later ones
            if type(earlier) is not int or earlier == track or earlier not in self.people:
                continue
            mine = self.people[track]
            for exercise, entry in self.people.pop(earlier).items():
                kept = mine.setdefault(exercise, {"reps": [], "partial": 0})
                kept["reps"][:0] = entry["reps"]  # the earlier reps came first
                kept["partial"] += entry["partial"]
            if earlier in self.members:
                self.members.setdefault(track, self.members.pop(earlier))


def short_source_warning(state: SessionState) -> str | None:
    """Why the summary covers fewer frames than the file declared (a truncated
    file), or None. Compares frames read with the container's frame count,
    with a tolerance for formats whose count is only an estimate."""
    from repcoach.stages.capture import truncation_warning

    if not state.ended or state.reason in (STOPPED, REMOVED) or state.total <= 0:
        return None
    return truncation_warning(state.source_id, state.frames + state.dropped, state.total)


def summary_document(state: SessionState, reps: RepLog, wall_s: float, missed: int = 0) -> dict:
    """The summary's shape (documented in the README; integrators rely on it).
    `warning` is null, or says why the numbers may not cover the whole source
    (e.g. a truncated file)."""
    people = []
    for person in state.people:
        logged = reps.people.get(person.track_id, {})
        exercises = [
            {
                "exercise": exercise,
                "reps": len(entry["reps"]),
                "partial_reps": entry["partial"],
                "reps_detail": entry["reps"],
            }
            for exercise, entry in logged.items()
        ]
        if not exercises and person.exercise:  # nothing counted yet: say what they do
            exercises = [
                {
                    "exercise": person.exercise,
                    "reps": person.reps,
                    "partial_reps": person.partial_reps,
                    "reps_detail": [],
                }
            ]
        training = bool(exercises)
        people.append(
            {
                "id": person.track_id,
                "member": reps.members.get(person.track_id) or person.member or None,
                "training": training,
                "state": "training" if training else (person.phase or PHASE_IDLE),
                "exercises": exercises,
            }
        )
    return {
        "source": state.source_id,
        "frames": state.frames,
        "dropped": state.dropped,
        "duration_s": state.duration_s,
        "wall_s": round(wall_s, 3),
        "ended": state.ended,
        "reason": state.reason,
        "missed_by_summary": missed,
        "warning": short_source_warning(state),
        "people": people,
    }


def stations_document(documents: dict[str, dict]) -> dict:
    """A pipeline with several stations: each station's summary under its
    name, and the run's totals."""
    warnings = [f"{name}: {d['warning']}" for name, d in documents.items() if d["warning"]]
    return {
        "frames": sum(d["frames"] for d in documents.values()),
        "dropped": sum(d["dropped"] for d in documents.values()),
        "ended": all(d["ended"] for d in documents.values()),
        "missed_by_summary": max(d["missed_by_summary"] for d in documents.values()),
        "warning": "; ".join(warnings) or None,
        "stations": documents,
    }


class SummarySink:
    """One station's summary, or (several) every station's in one document."""

    topics = (b"res",)

    def __init__(self, path: Path):
        self.path = path
        self.states: dict[str, SessionState] = {}
        self.reps: dict[str, RepLog] = defaultdict(RepLog)
        self._dirty = False
        self._last_write = 0.0
        self._started = time.monotonic()
        self.failure: str | None = None  # why the last write failed

    def on_state(self, state: SessionState) -> None:
        if state.station in self.states or len(self.states) < MAX_STATIONS:
            self.states[state.station], self._dirty = state, True

    def on_result(self, packet: FramePacket) -> None:
        station = packet.meta.station
        if packet.events and (station in self.reps or len(self.reps) < MAX_STATIONS):
            self.reps[station].add(packet)
            self._dirty = True

    def on_eos(self, eos: EndOfStream) -> None:
        self.write()

    def tick(self) -> None:
        if self._dirty and time.monotonic() - self._last_write > WRITE_EVERY_S:
            self.write()

    def write(self, missed: int = 0, final: bool = False) -> None:
        """Write the summary atomically. A failed write (a full disk) leaves
        the previous file as it was and is said once in the log; the final
        one raises, so the sink, and `pipeline up`, exit non-zero."""
        if not self.states:
            return
        wall = time.monotonic() - self._started
        documents = {
            name: summary_document(state, self.reps[name], wall, missed)
            for name, state in self.states.items()
        }
        document = next(iter(documents.values()))
        if len(documents) > 1:
            document = stations_document(documents)
        try:
            write_json_atomic(self.path, document)
        except OSError as exc:
            message = write_failure(self.path, exc)
            if message != self.failure:
                log.error("error: %s", message)
            self.failure = message
            self._last_write = time.monotonic()  # retried at the next interval, not at once
            if final:
                raise UserError(message) from None
            return
        if self.failure is not None:
            log.info("summary %s written again", self.path)
        self.failure = None
        self._dirty, self._last_write = False, time.monotonic()

    def close(self, missed: int) -> None:
        self.write(missed, final=True)


def from_spec(spec: Spec, build: bool) -> SummarySink | None:
    spec.check_known({"path"})
    path = required_path(spec, "summary file", "--summary PATH")
    return SummarySink(path) if build else None

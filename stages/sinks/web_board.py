"""What the web dashboard shows, kept up to date from the published results:
each person's live numbers and the session's rep table. Plain data with a
lock (the sink thread writes, the HTTP threads read); no I/O.

The document (`/state.json`; `/events` sends it in two parts):

    session  source, frames, dropped, duration_s, ended, reason,
             joined_late (the dashboard started mid-session, so reps counted
             before then are in the counters but not in the table),
             reps_before_join, missed (results this dashboard never received)
    people   [{id, member, heart_rate, rr_ms, colour, exercise, reps, partial, form_score,
              phase, last_cue}]
    reps     [{event_id, person, exercise, rep, partial, score, faults,
               tempo_down_s, tempo_up_s, pts, text}]   oldest first
"""

from __future__ import annotations

import threading
from typing import Any

from repcoach.common.messages import (
    EndOfStream,
    EventKind,
    FeedbackEvent,
    FramePacket,
    PersonScore,
    SessionState,
)
from repcoach.stages.sinks.overlay import track_colour

REP_KINDS = (EventKind.REP, EventKind.PARTIAL_REP)


def colour_hex(track_id: int) -> str:
    """The CSS colour of a track: the same one the overlay draws it in."""
    b, g, r = track_colour(track_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def person_record(score: PersonScore) -> dict[str, Any]:
    return {
        "id": score.track_id,
        "member": score.member or None,  # checked in with their code
        "heart_rate": score.heart_rate,  # from their strap; None: none, or a gap
        "rr_ms": list(score.rr_ms),  # the beat-to-beat intervals sent with it, if any
        "colour": colour_hex(score.track_id),
        "exercise": score.exercise,
        "reps": score.reps,
        "partial": score.partial_reps,
        "form_score": None if score.form_score is None else round(score.form_score, 1),
        "phase": score.phase,
        "last_cue": score.last_cue,
    }


def rep_row(event: FeedbackEvent, exercise: str | None) -> dict[str, Any]:
    """One row of the rep table from a rep/partial_rep event (its `data` is
    the coach's rep detail; fields it lacks stay None)."""
    data = event.data
    return {
        "event_id": event.event_id,
        "person": event.track_id,
        "colour": colour_hex(event.track_id),
        "exercise": data.get("exercise") or exercise,
        "rep": data.get("rep"),
        "partial": event.kind == EventKind.PARTIAL_REP or bool(data.get("partial")),
        "score": data.get("score"),
        "faults": list(data.get("faults") or []),
        "tempo_down_s": data.get("tempo_down_s"),
        "tempo_up_s": data.get("tempo_up_s"),
        "pts": round(event.pts, 3),
        "text": event.text,
    }


class Scoreboard:
    """The dashboard's data. `version` rises on every change, so a reader
    can wait for news instead of polling."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.version = 0
        self.closed = False
        self._session: dict[str, Any] = {
            "source": "",
            "frames": 0,
            "dropped": 0,
            "duration_s": 0.0,
            "ended": False,
            "reason": "",
            "joined_late": False,
            "reps_before_join": 0,
            "missed": 0,
        }
        self._people: dict[int, PersonScore] = {}
        self._rows: list[dict[str, Any]] = []
        self._row_ids: set[str] = set()
        self._first_state = True

    def _bump(self) -> None:
        self.version += 1
        self._changed.notify_all()

    # --- writers (the sink thread)

    def on_state(self, state: SessionState) -> None:
        with self._changed:
            if self._first_state:
                # The first state is the publisher's snapshot: frames already
                # published mean this dashboard missed the start.
                self._first_state = False
                if state.frames > 0:
                    self._session["joined_late"] = True
                    self._session["reps_before_join"] = sum(
                        p.reps + p.partial_reps for p in state.people
                    )
            self._session.update(
                source=state.source_id,
                frames=state.frames,
                dropped=state.dropped,
                duration_s=state.duration_s,
                ended=state.ended or self._session["ended"],
                reason=state.reason or self._session["reason"],
            )
            # The publisher's list is authoritative (a track handed over to a
            # new id disappears from it).
            self._people = {p.track_id: p for p in state.people}
            self._bump()

    def on_result(self, packet: FramePacket) -> None:
        with self._changed:
            changed = False
            for score in packet.scores:
                if self._people.get(score.track_id) != score:
                    self._people[score.track_id] = score
                    changed = True
            for event in packet.events:
                if event.kind in REP_KINDS and event.event_id not in self._row_ids:
                    person = self._people.get(event.track_id)
                    self._rows.append(rep_row(event, person.exercise if person else None))
                    self._row_ids.add(event.event_id)
                    changed = True
            if changed:
                self._bump()

    def on_eos(self, eos: EndOfStream) -> None:
        with self._changed:
            self._session.update(ended=True, reason=eos.reason)
            self._bump()

    def close(self, missed: int) -> None:
        with self._changed:
            self._session["missed"] = missed
            self.closed = True
            self._bump()

    # --- readers (the HTTP threads)

    def wait_newer(self, version: int, timeout: float) -> int:
        """Block until the version passes `version` (or timeout); the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > version or self.closed, timeout)
            return self.version

    def live(self) -> dict[str, Any]:
        """Session and people: what changes every frame (no rep rows)."""
        with self._changed:
            return {
                "session": dict(self._session),
                "people": [person_record(p) for _, p in sorted(self._people.items())],
                "rep_rows": len(self._rows),
            }

    def rows_since(self, start: int) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._rows[start:])

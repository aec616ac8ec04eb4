"""The coaching stage: reps, form and feedback for every tracked person.

`Coach(exercise)` has the score stage's interface (`process`, `end`,
`people`): each frame's joints go in, each person's `PersonScore` and the
frame's `FeedbackEvent`s come out. Event kinds: `rep`, `partial_rep`, `cue`,
`visibility` (why counting is paused), `hold` (a plank ended),
`exercise` (auto mode recognised or changed a person's exercise),
`person_enter`, `person_leave`, `check_in` (a person showed a member's
code: their events carry `data["member"]` from then on, see `checkin.py`)
and `check_out` (they were out of view longer than the check-in holds).

Only people who train are coached. Everyone present gets a `PersonScore`,
but until a person is established as training (`activity.TrainingGate`:
repeated reps, in rhythm, body in place, joints in the picture) their score
says exercise "" and phase "idle" (auto mode: exercise None and phase
"recognising" while their movement is being recognised), and their rep,
cue and exercise events are held; they are published, with the frames
they happened in, when the person is established, or dropped if that never
happens. A mirror reflection of a person (`mirror.py`) is shown as present
with phase "reflection", and never coached.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from repcoach.common.history import Baseline
from repcoach.common.messages import (
    PHASE_IDLE,
    PHASE_RECOGNISING,
    PHASE_REFLECTION,
    EndOfStream,
    EventKind,
    FeedbackEvent,
    FramePacket,
    HeartRateSample,
    PersonJoints,
    PersonScore,
)
from repcoach.stages.coaching.activity import TrainingGate
from repcoach.stages.coaching.athlete import Athlete, Note
from repcoach.stages.coaching.checkin import CheckIns
from repcoach.stages.coaching.heart import HeartTrace
from repcoach.stages.coaching.mirror import MirrorWatch
from repcoach.stages.coaching.recognize import Recognizer
from repcoach.stages.coaching.registry import ExerciseRegistry, registry
from repcoach.stages.coaching.spec import ExerciseSpec

AUTO = "auto"
LEAVE_AFTER_S = 2.0
# A track that vanished this recently hands its state to a track that just
# appeared, when it is the only one that vanished: the tracker loses a person
# who drops fast into a push-up, and the rep under way must not be lost.
HANDOVER_S = 1.0
# Auto mode: a person switches exercise only after this long without a rep.
SWITCH_IDLE_S = 5.0
# Auto mode: the frames replayed to the exercise once it is recognised (the
# reps done while it was being recognised); the recogniser may hesitate for a
# while, so this is longer than its window.
REPLAY_S = 20.0
IDLE, RECOGNISING, REFLECTION = PHASE_IDLE, PHASE_RECOGNISING, PHASE_REFLECTION
# People kept per session (track ids come from upstream: forged or runaway
# tracks must not grow the table). Beyond it, the person who left longest ago
# is forgotten (`people-retired`); when everyone is in view a new track is
# not coached (`people-refused`).
MAX_PEOPLE = 64


@dataclass
class _Person:
    last_pts: float
    tracks: list[int]  # every track id this person has had, oldest first
    athlete: Athlete | None = None  # None until auto mode knows the exercise
    recognizer: Recognizer | None = None
    replay: deque[tuple[PersonJoints, int, float]] = field(default_factory=deque)
    earlier: list[dict] = field(default_factory=list)  # log of earlier exercises (auto)
    member: str = ""  # the profile this person trains as ('' = a guest)
    checked_in: bool = False  # `member` came from a code shown here (it may end)
    gate: TrainingGate | None = None
    heart: HeartTrace = field(default_factory=HeartTrace)


def _checked_in(member: str, **data: str) -> Note:
    return Note(EventKind.CHECK_IN, f"Hi {member}, you're checked in.", data=data)


class Coach:
    """Counts reps and judges form per tracked person.

    `exercise`: a name from the exercise registry (`exercises/*.json`), or
    "auto" to recognise each person's exercise from their movement.
    `exercises`: another registry (tests, user folders).
    `adapt`: applied to an exercise's spec before anyone is coached on it
    (the hook for strictness profiles: e.g. move rule thresholds with
    `dataclasses.replace`).
    `session_id`: makes event ids unique across sessions, not only within one.
    `member`: the profile the station's person trains as: the first person
    coached this session; their events carry `data["member"]`, and `priors`
    (their baseline per exercise from earlier sessions) apply to them."""

    def __init__(
        self,
        exercise: str,
        exercises: ExerciseRegistry | None = None,
        adapt: Callable[[ExerciseSpec], ExerciseSpec] | None = None,
        session_id: str = "",
        member: str = "",
        priors: Mapping[str, Baseline] | None = None,
        checkins: CheckIns | None = None,
    ):
        self.exercises = exercises if exercises is not None else registry()
        self.adapt = adapt or (lambda spec: spec)
        self.auto = exercise.strip().lower() == AUTO
        self.spec = None if self.auto else self.adapt(self.exercises.get(exercise))
        self._people: dict[int, _Person] = {}  # by current track id
        self._present: set[int] = set()
        self._events = 0
        self._last_packet: FramePacket | None = None
        self._mirror = MirrorWatch()
        self.session_id = session_id
        self.member = member
        self.priors = dict(priors or {})
        self.checkins = checkins
        self._by_hand: list[tuple[int, str]] = []  # check-ins made on the dashboard, to announce
        self.max_people = MAX_PEOPLE
        self.people_retired = 0
        self.people_refused = 0

    def process(self, packet: FramePacket) -> FramePacket:
        self._last_packet = packet
        meta = packet.meta
        pts = meta.pts
        events: list[FeedbackEvent] = []
        scores: list[PersonScore] = []
        in_frame = {j.track_id for j in packet.joints}
        reflections = self._mirror.update(packet.joints, pts)
        for joints in packet.joints:
            track = joints.track_id
            person = self._people.get(track) or self._handover(track, in_frame, pts)
            if person is None:
                person = self._new_person(track, pts, meta.width, meta.height)
                if person is None:
                    continue  # the people table is full of people in view
            if track not in self._present:
                self._present.add(track)
                if len(person.tracks) == 1:
                    note = Note(EventKind.PERSON_ENTER, "Welcome! Step in.")
                    events.append(self._event(packet, track, note))
            person.last_pts = pts
            if track in reflections:
                scores.append(PersonScore(track_id=track, exercise="", phase=REFLECTION))
                continue
            for note in self._step(person, joints, meta.seq, pts):
                events.append(self._event(packet, track, note))
            scores.append(self._score(track, person))
        gone = [t for t in self._present if pts - self._people[t].last_pts > LEAVE_AFTER_S]
        for track in sorted(gone):
            self._present.discard(track)
            events.append(
                self._event(packet, track, Note(EventKind.PERSON_LEAVE, "See you next set."))
            )
        if self.checkins is not None:
            events += self._check_ins(packet)
            scores = [replace(s, member=self._member_of(s.track_id)) for s in scores]  # just bound
        return packet.replace(scores=tuple(scores), events=tuple(events))

    def check_in(self, track: int, member: str) -> str | None:
        """Check person `track` in as `member` by hand (the dashboard): None
        when done (announced with the next frame), else why not."""
        if self.checkins is None:
            return "check-in is off in this pipeline (--no-checkin)"
        problem = self.checkins.unknown_member(member)
        if problem:
            return problem
        person = self._people.get(track)
        if person is None or track not in self._present:
            return f"person {track} is not in view here"
        self._bind(person, member)
        if len(self._by_hand) < MAX_PEOPLE:  # announced with the next frame
            self._by_hand.append((track, member))
        return None

    def _bind(self, person: _Person, member: str) -> None:
        for other in self._people.values():
            if other.member == member:  # the member moved to another body
                other.member, other.checked_in = "", False
        person.member, person.checked_in = member, True

    def heart_rate(self, sample: HeartRateSample) -> bool:
        """A strap's reading: for the person checked in as its member, or (a
        station's strap) the person training here. False if nobody it
        belongs to is in view."""
        person = self._wearer(sample.member)
        if person is None:
            return False
        person.heart.add(sample.t_wall, sample.bpm, sample.rr)
        return True

    def _wearer(self, member: str) -> _Person | None:
        present = [self._people[t] for t in sorted(self._present) if t in self._people]
        if member:
            return next((p for p in present if p.member == member), None)
        training = [p for p in present if p.gate is not None and p.gate.established]
        if training:
            return max(training, key=lambda p: p.gate.reps if p.gate else 0)
        return present[0] if len(present) == 1 else None

    def _member_of(self, track: int) -> str:
        person = self._people.get(track)
        return person.member if person is not None else ""

    def _check_ins(self, packet: FramePacket) -> list[FeedbackEvent]:
        """Bind each person showing a member's code to that member (one
        person per member), and end the check-in of those out of view
        longer than it holds."""
        checkins, pts, events = self.checkins, packet.meta.pts, []
        assert checkins is not None
        for track, member in self._by_hand:
            if self._member_of(track) == member:
                events.append(self._event(packet, track, _checked_in(member, by="hand")))
        self._by_hand.clear()
        for code in packet.codes:
            member = checkins.member_of(code)
            track = None if member is None else checkins.holder(code, packet.joints)
            person = self._people.get(track) if track is not None else None
            if person is None or person.member == member:
                continue
            self._bind(person, member)
            events.append(self._event(packet, track, _checked_in(member)))
        for person in self._people.values():
            if person.checked_in and pts - person.last_pts > checkins.hold_s:
                note = Note(EventKind.CHECK_OUT, f"{person.member} checked out.")
                events.append(self._event(packet, person.tracks[-1], note))
                person.member, person.checked_in = "", False
        return events

    def drops(self) -> dict[str, int]:
        """People forgotten or refused to keep the table bounded, and codes
        this box did not issue (running totals)."""
        refused = self.checkins.refused if self.checkins is not None else 0
        return {
            "people-retired": self.people_retired,
            "people-refused": self.people_refused,
            "unknown-code": refused,
        }

    def _make_room(self) -> bool:
        """Room for one more person: forget the one who left longest ago."""
        if len(self._people) < self.max_people:
            return True
        gone = [(p.last_pts, t) for t, p in self._people.items() if t not in self._present]
        if not gone:
            self.people_refused += 1
            return False
        del self._people[min(gone)[1]]
        self.people_retired += 1
        return True

    def _new_person(self, track: int, pts: float, width: int, height: int) -> _Person | None:
        if not self._make_room():
            return None
        first = not self._people
        person = _Person(pts, [track], member=self.member if first else "")
        person.gate = TrainingGate(width, height)
        if self.spec is not None:
            person.athlete = self._athlete(person, self.spec)
        else:
            person.recognizer = Recognizer(self.exercises.names())
        self._people[track] = person
        return person

    def _step(self, person: _Person, joints: PersonJoints, seq: int, pts: float) -> list[Note]:
        gate = person.gate
        assert gate is not None
        gate.observe(joints, seq, pts)
        if person.recognizer is None:
            assert person.athlete is not None
            return gate.admit(person.athlete, person.athlete.step(joints, seq, pts), pts)
        notes: list[Note] = []
        published: list[Note] = []  # the previous exercise's last notes
        name = person.recognizer.update(joints, pts)
        athlete = person.athlete
        busy = athlete is not None and pts - max(athlete.last_rep_pts, 0.0) < SWITCH_IDLE_S
        if busy and name is not None and name != athlete.spec.name:  # type: ignore[union-attr]
            name = None  # still doing reps of the current exercise
        if name is not None and (athlete is None or name != athlete.spec.name):
            since = -1.0
            if athlete is not None:
                published.extend(gate.admit(athlete, athlete.finish(pts), pts))
                person.earlier.extend(self._published(person, athlete.log))
                since = athlete.last_rep_pts  # its reps are not the new exercise's
                gate.discard()
            person.athlete = athlete = self._athlete(person, self.adapt(self.exercises.get(name)))
            title = athlete.spec.title
            notes.append(Note(EventKind.EXERCISE, f"{title}: let's go!", data={"exercise": name}))
            for old_joints, old_seq, old_pts in person.replay:  # the reps already under way
                if old_pts > since:
                    notes.extend(athlete.step(old_joints, old_seq, old_pts))
        if athlete is not None:
            notes.extend(athlete.step(joints, seq, pts))
        person.replay.append((joints, seq, pts))
        while person.replay and pts - person.replay[0][2] > REPLAY_S:
            person.replay.popleft()
        return published + (gate.admit(athlete, notes, pts) if athlete is not None else notes)

    @staticmethod
    def _published(person: _Person, log: list[dict]) -> list[dict]:
        """The published part of a person's rep log (none before they are
        established as training)."""
        gate = person.gate
        if gate is None:
            return log
        return gate.published(log) if gate.established else []

    def _athlete(self, person: _Person, spec: ExerciseSpec) -> Athlete:
        # The baselines are the station's profile's (`--profile`), no one else's.
        own = person.member and person.member == self.member
        return Athlete(spec, self.priors.get(spec.name) if own else None)

    def _handover(self, track: int, in_frame: set[int], pts: float) -> _Person | None:
        lost = [
            t
            for t, p in self._people.items()
            if t not in in_frame and 0.0 < pts - p.last_pts <= HANDOVER_S
        ]
        if len(lost) != 1:
            return None
        person = self._people.pop(lost[0])
        self._present.discard(lost[0])
        person.tracks.append(track)
        self._people[track] = person
        return person

    def _event(self, packet: FramePacket, track: int, note: Note) -> FeedbackEvent:
        self._events += 1
        meta = packet.meta
        data = dict(note.data)
        person = self._people.get(track)
        if person is not None and len(person.tracks) > 1:
            data.setdefault("tracks", list(person.tracks))
        if person is not None and person.member:
            data["member"] = person.member
        if person is not None and note.kind in (EventKind.REP, EventKind.PARTIAL_REP):
            data.update(person.heart.during(meta.t_wall, meta.pts, data))
        return FeedbackEvent(
            event_id=f"{self.session_id or meta.source_id}:{meta.seq}:{self._events}",
            kind=note.kind,
            track_id=track,
            seq=meta.seq,
            pts=meta.pts,
            text=note.text,
            severity=note.severity,
            data=data,
        )

    def _score(self, track: int, person: _Person) -> PersonScore:
        athlete = person.athlete
        training = person.gate is None or person.gate.established
        who = {
            "member": person.member,
            "heart_rate": person.heart.now(),
            "rr_ms": person.heart.rr_now(),
        }
        if athlete is None or not training:
            if person.recognizer is None:
                return PersonScore(track_id=track, exercise="", phase=IDLE, **who)
            moving = person.recognizer.moving()
            return PersonScore(track_id=track, phase=RECOGNISING if moving else IDLE, **who)
        return PersonScore(
            **who,
            track_id=track,
            angles=dict(athlete.angles),
            exercise=athlete.spec.name,
            reps=person.gate.reps if person.gate else athlete.reps,
            partial_reps=person.gate.partial_reps if person.gate else athlete.partial_reps,
            phase="paused" if athlete.paused else athlete.phase,
            form_score=athlete.form_score,
            last_cue=athlete.last_cue,
        )

    def end(self, eos: EndOfStream) -> FramePacket | None:
        """End of stream: holds in progress are closed, and a movement the
        stream cut is judged by what was seen (a full or partial rep, see
        `reps.py`); they reach `rep_log` for people established as training.
        Returns their events on a pixel-less packet stamped with the last
        frame (None when there are none, or no frame was seen)."""
        last = self._last_packet
        self._present.clear()
        if last is None:  # no frame seen: nobody to finish
            return None
        events = []
        for track, person in sorted(self._people.items()):
            athlete = person.athlete
            if athlete is not None:
                notes = athlete.finish(last.meta.pts)
                if person.gate is not None:
                    notes = person.gate.admit(athlete, notes, athlete.last_rep_pts)
                events.extend(self._event(last, track, note) for note in notes)
        if not events:
            return None
        return FramePacket(last.meta, events=tuple(events), tombstone=True)

    def people(self) -> tuple[PersonScore, ...]:
        """Latest score of everyone seen this session, by track id."""
        return tuple(self._score(t, p) for t, p in sorted(self._people.items()))

    def rep_log(self) -> dict[int, list[dict]]:
        """Every finished rep (full and partial) and hold, per track id; each
        entry names its exercise."""
        return {
            t: p.earlier + (self._published(p, p.athlete.log) if p.athlete else [])
            for t, p in sorted(self._people.items())
        }

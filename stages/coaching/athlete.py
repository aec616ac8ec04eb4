"""One person's coaching state: which side faces the camera, which view, the
rep counter, the form verdict of each rep or hold, and what to tell them.

`Athlete.step` takes one frame's joints and returns `Note`s (what happened);
the `Coach` turns them into feedback events. Nothing here knows about
packets or track ids, so it can be fed synthetic joint sequences directly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from repcoach.common.history import Baseline
from repcoach.common.messages import EventKind, PersonJoints, Severity
from repcoach.stages.coaching.baseline import Comparison, PersonalBaseline
from repcoach.stages.coaching.measures import MIN_VISIBILITY, read, side_visibility, view_ratio
from repcoach.stages.coaching.reps import Movement, RepCounter
from repcoach.stages.coaching.rules import FrameRecord, Verdict, judge
from repcoach.stages.coaching.spec import Counting, ExerciseSpec, Rule

# View from shoulder width / torso length (see `view_ratio`): side below the
# first bound, front above the second, oblique between (about 25-55 degrees
# from side-on); a view changes only once the ratio is `VIEW_MARGIN` past a bound.
VIEW_BOUNDS = (0.25, 0.5)
VIEW_MARGIN = 0.03
VIEW_TAU_S = 0.3  # smoothing of the ratio: a turn takes a few frames to register
SIDE_SWITCH_MARGIN = 0.15  # visibility lead the far side needs to become the near side
HISTORY_S = 30.0  # frames kept for judging a rep (the slowest reps take ~10 s)
PAUSE_ANNOUNCE_S = 0.5  # a visibility problem must last this long to be reported
PAUSE_REPEAT_S = 10.0
CUE_GAP_S = 1.5  # at most one cue per this many seconds
SAME_CUE_GAP_S = 4.0
PRAISE_GAP_S = 8.0
HOLD_ENTER_S = 0.5  # in position this long starts a hold
HOLD_EXIT_S = 1.0  # out of position this long ends it
HOLD_FAULT_MIN_S = 1.0  # a hold fault counts against the score once it lasted this long
HOLD_CUE_REPEAT_S = 5.0


def _view_of(ratio: float, current: str | None) -> str:
    """The view for a smoothed `view_ratio`: the bounds move by the margin in
    favour of the `current` view, so a ratio hovering at a bound cannot flip it."""
    low, high = VIEW_BOUNDS
    if current == "side":
        low += VIEW_MARGIN
    elif current == "oblique":
        low, high = low - VIEW_MARGIN, high + VIEW_MARGIN
    elif current == "front":
        high -= VIEW_MARGIN
    return "side" if ratio < low else ("front" if ratio >= high else "oblique")


@dataclass(frozen=True)
class Note:
    """Something to tell: `kind` is a feedback event kind (rep, partial_rep,
    cue, visibility, hold, ...)."""

    kind: EventKind
    text: str
    severity: Severity = Severity.INFO
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Hold:
    number: int
    start: FrameRecord
    last_in: FrameRecord
    fault_seconds: dict[str, float] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)


class Athlete:
    """Coaching state of one person doing `spec`; `prior` is their baseline
    from an earlier session (members only)."""

    def __init__(self, spec: ExerciseSpec, prior: Baseline | None = None):
        self.spec = spec
        self.near = "left"
        self._near_known = False
        self.view: str | None = None
        self._ratio: float | None = None
        self._last_pts: float | None = None
        self.history: deque[FrameRecord] = deque()
        self.counters = [RepCounter(c) for c in spec.counting]
        self.baselines = [
            PersonalBaseline(spec.measures[c.measure].unit, prior) for c in spec.counting
        ]
        self._last_end_seq = -1  # end frame of the rep counted last
        self.reps = 0
        self.partial_reps = 0
        self.holds = 0
        self.last_rep_pts = -math.inf
        self.log: list[dict] = []
        self.form_score: float | None = None
        self.last_cue: str | None = None
        self._last_cue_pts = -math.inf
        self._last_cue_text = ""
        self._last_praise_pts = -math.inf
        self._pause_reason: str | None = None
        self._pause_since: float | None = None
        self._announced: tuple[str, float] | None = None
        self._hold: _Hold | None = None
        self._in_position_since: float | None = None
        self._hold_cue_pts: dict[str, float] = {}
        self.phase = ""
        self.angles: dict[str, float] = {}
        # What the counter found wrong with a partial rep, by counting entry:
        # too little range by the exercise's thresholds, or short of the person's own.
        self._partial_rules = {
            (i, short): Rule(
                "partial_range",
                c.measure,
                "turn",
                spec.views,
                Severity.WARN,
                spec.cues["short" if short else "partial"],
                penalty=15.0,
            )
            for i, c in enumerate(spec.counting)
            for short in (False, True)
        }

    # --- per frame

    def step(self, joints: PersonJoints, seq: int, pts: float) -> list[Note]:
        spec = self.spec
        self._update_near(joints)
        self._update_view(joints, pts)
        values = {name: read(m, joints, self.near) for name, m in spec.measures.items()}
        self.angles = {
            name: round(v, 1)
            for name, v in values.items()
            if spec.measures[name].unit == "deg" and not math.isnan(v)
        }
        record = FrameRecord(seq, pts, self.view or spec.views[0], values)
        self.history.append(record)
        while self.history and pts - self.history[0].pts > HISTORY_S:
            self.history.popleft()
        blocker, missing = self._blocker(joints, values, record.view)
        notes = (
            self._hold_step(record, blocker) if spec.is_hold else self._rep_step(record, blocker)
        )
        notes.extend(self._visibility(blocker, missing, pts))
        return notes

    def _update_near(self, joints: PersonJoints) -> None:
        if not self.spec.side_joints:
            return
        vis = side_visibility(joints, self.spec.side_joints)
        other = "right" if self.near == "left" else "left"
        if not self._near_known:
            self.near, self._near_known = max(vis, key=vis.__getitem__), True
        elif vis[other] > vis[self.near] + SIDE_SWITCH_MARGIN:
            self.near = other

    def _update_view(self, joints: PersonJoints, pts: float) -> None:
        ratio = view_ratio(joints)
        if not math.isnan(ratio):
            if self._ratio is None or self._last_pts is None:
                self._ratio = ratio
            else:
                dt = max(pts - self._last_pts, 0.0)
                self._ratio += (ratio - self._ratio) * (1.0 - math.exp(-dt / VIEW_TAU_S))
            self.view = _view_of(self._ratio, self.view)
        self._last_pts = pts

    def _blocker(
        self, joints: PersonJoints, values: dict[str, float], view: str
    ) -> tuple[str | None, list[str]]:
        """Why counting cannot go on in this frame (a `cues` key), and the
        joints that are missing; (None, []) when it can."""
        spec = self.spec
        if view not in spec.views or (not spec.is_hold and spec.counting_for(view) is None):
            usable = [c.views for c in spec.counting] if spec.counting else [spec.views]
            wanted = [v for views in usable for v in views]
            return ("turn_front" if "front" in wanted else "turn_side"), []
        missing = [
            ref.text
            for ref in spec.required
            if min(joints.visibility[m] for m in ref.landmarks(self.near)) < MIN_VISIBILITY
        ]
        if missing:
            return "out_of_view", missing
        measure = spec.hold.measure if spec.hold else spec.counting_for(view).measure  # type: ignore[union-attr]
        if math.isnan(values[measure]):
            return "out_of_view", [measure]
        return None, []

    def _visibility(self, blocker: str | None, missing: list[str], pts: float) -> list[Note]:
        if blocker is None:
            self._pause_since = self._pause_reason = None
            self._announced = None
            return []
        if blocker != self._pause_reason:
            self._pause_reason, self._pause_since = blocker, pts
        if self._pause_since is None or pts - self._pause_since < PAUSE_ANNOUNCE_S:
            return []
        if self._announced is not None:
            reason, when = self._announced
            if reason == blocker and pts - when < PAUSE_REPEAT_S:
                return []
        self._announced = (blocker, pts)
        text = self.spec.cues[blocker]
        return [
            Note(EventKind.VISIBILITY, text, Severity.WARN, {"reason": blocker, "missing": missing})
        ]

    @property
    def paused(self) -> bool:
        return self._announced is not None

    # --- reps

    def _rep_step(self, record: FrameRecord, blocker: str | None) -> list[Note]:
        """Every counting entry runs all the time (a view that flickers at a
        bound must not lose the rep under way); a movement counts if the view
        at its turning point is one its entry counts in, and it does not
        overlap the rep counted last (another entry's view of the same rep)."""
        notes: list[Note] = []
        for index, (counting, counter) in enumerate(
            zip(self.spec.counting, self.counters, strict=True)
        ):
            value = math.nan if blocker is not None else record.values[counting.measure]
            movement = counter.update(record.seq, record.pts, value)
            if movement is None or movement.turn.seq <= self._last_end_seq:
                continue
            if self._view_at(movement.turn.seq, record.view) in counting.views:
                self._last_end_seq = movement.end.seq
                notes.extend(self._finish_rep(movement, index))
        active = next((i for i, c in enumerate(self.spec.counting) if record.view in c.views), None)
        phases = self.spec.phases
        self.phase = (
            ""
            if active is None
            else {
                "rest": phases.rest,
                "away": phases.away,
                "turn": phases.turn,
                "back": phases.back,
            }.get(self.counters[active].phase, "")
        )
        return notes

    def _view_at(self, seq: int, default: str) -> str:
        for r in reversed(self.history):
            if r.seq == seq:
                return r.view
            if r.seq < seq:
                break
        return default

    def _finish_rep(self, movement: Movement, index: int) -> list[Note]:
        counting = self.spec.counting[index]
        tolerance = self.counters[index].tolerance
        frames = [r for r in self.history if movement.start.seq <= r.seq <= movement.end.seq]
        turn = [
            abs(r.values.get(counting.measure, math.nan) - movement.turn.value) <= tolerance
            for r in frames
        ]
        rules = self.spec.rules
        extra: tuple[Rule, ...] = ()
        if not movement.full:
            rules = tuple(r for r in rules if not r.skip_on_partial)
            extra = (self._partial_rules[index, movement.short],)
        verdict = judge(rules, frames, turn, extra)
        if movement.full:
            self.reps += 1
            number, kind = self.reps, EventKind.REP
            self.form_score = verdict.score
        else:
            self.partial_reps += 1
            number, kind = self.partial_reps, EventKind.PARTIAL_REP
        detail = self._rep_detail(number, movement, counting, verdict)
        comparison = None
        if movement.full and not movement.cut:  # a cut rep's range or tempo is not all seen
            baseline = self.baselines[index]
            tempo = movement.seconds_away + movement.seconds_back
            compared, comparison = baseline.add(
                movement.range, tempo, movement.depth, clean=not verdict.faults
            )
            detail.update(compared)
            self.counters[index].reference = baseline.depth
        self.log.append(detail)
        self.last_rep_pts = movement.end.pts
        text = f"Rep {number}" if movement.full else f"Partial rep {number}: not counted"
        notes = [Note(kind, text, Severity.INFO if not verdict.faults else Severity.WARN, detail)]
        cue = self._rep_cue(verdict, number, movement.full, movement.end.pts, comparison)
        if cue is not None:
            notes.append(cue)
        return notes

    def _rep_detail(
        self, number: int, movement: Movement, counting: Counting, verdict: Verdict
    ) -> dict[str, Any]:
        degrees = self.spec.measures[counting.measure].unit == "deg"
        return {
            "rep": number,
            "partial": not movement.full,
            "short": movement.short,
            "cut": movement.cut or None,
            "exercise": self.spec.name,
            "start_frame": movement.start.seq,
            "bottom_frame": movement.turn.seq,
            "end_frame": movement.end.seq,
            "start_pts": round(movement.start.pts, 3),
            "bottom_pts": round(movement.turn.pts, 3),
            "end_pts": round(movement.end.pts, 3),
            "tempo_down_s": round(movement.seconds_away, 3),
            "tempo_up_s": round(movement.seconds_back, 3),
            "measure": counting.measure,
            "rom_deg": round(movement.range, 1) if degrees else None,
            "rom": round(movement.range, 3),
            "depth": round(movement.depth, 3),
            "rom_unit": self.spec.measures[counting.measure].unit,
            "score": round(verdict.score, 1),
            "faults": verdict.fault_ids,
            "view": verdict.view,
            "skipped": list(verdict.skipped),
            "checks": dict(verdict.values),
        }

    def _rep_cue(
        self,
        verdict: Verdict,
        number: int,
        full: bool,
        pts: float,
        comparison: Comparison | None = None,
    ) -> Note | None:
        """The one cue a rep earns: a fault first, then how it compares with
        the person's own baseline, then praise (not too often)."""
        extra: dict[str, Any] = {}
        if verdict.faults:
            rule = verdict.faults[0]
            text, severity, fault = rule.cue, rule.severity, rule.id
        elif comparison is not None:
            text, severity, fault = comparison.text, comparison.severity, None
            extra = comparison.data
        elif verdict.praise and full and pts - self._last_praise_pts >= PRAISE_GAP_S:
            text, severity, fault = verdict.praise[0], Severity.INFO, None
        else:
            return None
        if pts - self._last_cue_pts < CUE_GAP_S:
            return None
        if text == self._last_cue_text and pts - self._last_cue_pts < SAME_CUE_GAP_S:
            return None
        if fault is None and severity == Severity.INFO:
            self._last_praise_pts = pts
        self._last_cue_pts, self._last_cue_text, self.last_cue = pts, text, text
        data = {"rep": number, "partial": not full, "fault": fault, **extra}
        return Note(EventKind.CUE, text, severity, data)

    # --- holds

    def _hold_step(self, record: FrameRecord, blocker: str | None) -> list[Note]:
        hold = self.spec.hold
        assert hold is not None
        value = record.values[hold.measure]
        in_position = blocker is None and not math.isnan(value) and hold.holding(value)
        notes: list[Note] = []
        current = self._hold
        if in_position:
            if self._in_position_since is None:
                self._in_position_since = record.pts
            if current is None and record.pts - self._in_position_since >= HOLD_ENTER_S:
                start = next(r for r in self.history if r.pts >= self._in_position_since)
                self.holds += 1
                current = self._hold = _Hold(self.holds, start, record)
            if current is not None:
                current.last_in = record
        else:
            self._in_position_since = None
            if current is not None and record.pts - current.last_in.pts >= HOLD_EXIT_S:
                notes.append(self._finish_hold())
                current = None
        if current is not None and in_position:
            notes.extend(self._judge_hold(current, record))
        self.phase = self.spec.phases.away if current is not None else self.spec.phases.rest
        if current is not None:
            self.phase = f"{self.phase} {current.last_in.pts - current.start.pts:.0f} s"
        return notes

    def _judge_hold(self, hold: _Hold, record: FrameRecord) -> list[Note]:
        window = self.spec.hold.window_s  # type: ignore[union-attr]
        frames = [
            r for r in self.history if r.seq >= hold.start.seq and r.pts >= record.pts - window
        ]
        verdict = judge(self.spec.rules, frames)
        dt = record.pts - frames[-2].pts if len(frames) > 1 else 0.0
        now = set(verdict.fault_ids)
        notes = []
        for rule in verdict.faults:
            hold.fault_seconds[rule.id] = hold.fault_seconds.get(rule.id, 0.0) + dt
            last = self._hold_cue_pts.get(rule.id, -math.inf)
            if rule.id not in hold.active and record.pts - last >= HOLD_CUE_REPEAT_S:
                self._hold_cue_pts[rule.id] = record.pts
                self.last_cue = rule.cue
                notes.append(
                    Note(
                        EventKind.CUE,
                        rule.cue,
                        rule.severity,
                        {"hold": hold.number, "fault": rule.id},
                    )
                )
        hold.active = now
        self.form_score = self._hold_score(hold)
        return notes

    def _hold_score(self, hold: _Hold) -> float:
        penalties = {r.id: r.penalty for r in self.spec.rules}
        lasting = [f for f, s in hold.fault_seconds.items() if s >= HOLD_FAULT_MIN_S]
        return max(0.0, 100.0 - sum(penalties.get(f, 0.0) for f in lasting))

    def _finish_hold(self) -> Note:
        hold = self._hold
        assert hold is not None
        self._hold = None
        seconds = hold.last_in.pts - hold.start.pts
        faults = [f for f, s in hold.fault_seconds.items() if s >= HOLD_FAULT_MIN_S]
        score = self._hold_score(hold)
        detail = {
            "hold": hold.number,
            "exercise": self.spec.name,
            "start_frame": hold.start.seq,
            "end_frame": hold.last_in.seq,
            "start_pts": round(hold.start.pts, 3),
            "end_pts": round(hold.last_in.pts, 3),
            "seconds": round(seconds, 2),
            "faults": faults,
            "fault_seconds": {f: round(s, 2) for f, s in hold.fault_seconds.items()},
            "score": round(score, 1),
        }
        self.log.append(detail)
        return Note(EventKind.HOLD, f"Held {seconds:.0f} s", Severity.INFO, detail)

    def finish(self, end_pts: float) -> list[Note]:
        """End of stream (or of this exercise) at `end_pts`: a hold in
        progress ends; a rep the end cut off is judged by what was seen of it
        (see `reps.py`)."""
        notes: list[Note] = []
        for index, counter in enumerate(self.counters):
            counting = self.spec.counting[index]
            for movement in counter.flush(end_pts):
                if (
                    movement.turn.seq > self._last_end_seq
                    and self._view_at(movement.turn.seq, self.view or "") in counting.views
                ):
                    self._last_end_seq = movement.end.seq
                    notes.extend(self._finish_rep(movement, index))
        if self._hold is not None:
            notes.append(self._finish_hold())
        return notes

"""Is this person training, or only present (standing, walking through,
resting, spotting, gesturing)? Nobody gets reps, cues or an exercise until
their own movement says they train.

Mechanism: the `Athlete` counts everyone's reps as usual, but its notes are
held here, provisional. Each finished rep is weighed as evidence:

- **in place**: from the rep's start to its end the hips drift by less
  than `IN_PLACE` body sizes (torso length or shoulder width, the larger)
  per second. An athlete's hips come back (only a handheld camera moves
  them a little); a walker's translate across the frame, about 2-3 torso
  lengths a second, whatever their legs and arms do meanwhile.
- **in the picture**: the counting measure's joints lay inside the frame
  for most of the rep. A joint outside the image is BlazePose's guess (the
  hips of a coach standing in the foreground, cut by the frame edge), and a
  rep of guessed joints is no evidence.
- **the body moves with it**, where the exercise says how (`hips_drop`: a
  squat or lunge lowers the hips). A knee that bends under a still body is
  another person's limb taken for a leg: BlazePose, on someone standing
  right behind a push-up, drew their legs along the athlete's arm, and the
  "knee" bent with each push-up while their hips stayed put. The hips are
  followed from as long before the rep as the rep lasted (not before the
  last rep's end): a counting measure can leave rest late in the body's
  movement (seen from a camera up on a wall, a front squat's hip-above-knee
  holds while the knees come towards the camera and the hips go most of
  the way down).

A person becomes *established* as training once `ESTABLISH_REPS` such reps
(full or partial: shallow reps are training too) follow each other in a
rhythm: each starts within `RHYTHM_GAP_S` of the previous one's end, and
their durations are within a factor `RHYTHM_RATIO` (unless the stream cut
one of them: its duration is not all seen). One rep alone is no evidence (a
bystander bends down once to pick something up); repetition is. A rep
without evidence among them is skipped, neither counted nor breaking the
series: its joints were not all this person's (the tracker gave the id to
someone emerging from behind while the athlete went unseen). So is a rep
out of rhythm with the series: a "rep" of 0.7 s before push-ups of 2.3-3.8
s is the landmark model's guess at a blurred title card, not one of them.
At that moment every held note of a rep of the series is released: the
set's first rep is not lost, it is published one rep late (its event
carries the frames it happened in). A provisional rep that nothing follows
in rhythm (the next rep starts more than `RHYTHM_GAP_S` after it) is
dropped with its notes. A hold (plank) is established once the athlete
holds the position
(`Athlete.holds`).

Once established, a person stays established while tracked: rest pauses
between reps and sets do not reset them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import EventKind, PersonJoints
from repcoach.stages.coaching.athlete import Athlete, Note
from repcoach.stages.coaching.measures import MIN_VISIBILITY, SIDES

ESTABLISH_REPS = 2
IN_PLACE = 1.0  # hip drift over a rep, body sizes per second (a walk: 2-3)
IN_FRAME_SHARE = 0.8  # share of a rep's frames with its measure's joints in the picture
FRAME_MARGIN = 0.05  # of the frame size: a joint this little outside is still seen
RHYTHM_GAP_S = 8.0  # longest pause between two reps that still makes them a series
RHYTHM_RATIO = 3.0  # two reps of a series differ in duration by at most this factor
HISTORY_S = 40.0  # body positions kept (a slow rep plus the one before it)
REP_KINDS = (EventKind.REP, EventKind.PARTIAL_REP)

_HIPS = [L.LEFT_HIP, L.RIGHT_HIP]
_SHOULDERS = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER]


@dataclass(frozen=True)
class _Frame:
    seq: int
    pts: float
    hip: np.ndarray  # image pixels
    size: float  # body scale: torso length or shoulder width, pixels (NaN: unknown)
    inside: np.ndarray  # (33,) bool: the landmark lies in the picture
    visible: np.ndarray  # (33,) bool


@dataclass
class _Rep:
    """A finished rep not yet published, with the notes it produced."""

    start_seq: int
    end_seq: int
    start_pts: float
    end_pts: float
    full: bool
    cut: bool  # the stream cut it (its duration is not all seen)
    evidence: bool  # in place and in the picture
    notes: list[Note]


class TrainingGate:
    """Holds one person's coaching notes until they are established as
    training (see the module docstring). Call `observe` every frame before
    the athlete steps, then `admit` with the athlete's notes."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.established = False
        self._frames: deque[_Frame] = deque()
        self._reps: list[_Rep] = []
        self._loose: list[Note] = []  # cues and notices since the last rep
        self.reps = 0  # published full reps
        self.partial_reps = 0
        self._dropped: set[int] = set()  # ids of rep details never published
        self._last_end_pts = -math.inf  # where the last rep held here ended

    def observe(self, joints: PersonJoints, seq: int, pts: float) -> None:
        xy = joints.image_xy.astype(np.float64)
        visible = joints.visibility >= MIN_VISIBILITY
        margin_x, margin_y = FRAME_MARGIN * self.width, FRAME_MARGIN * self.height
        inside = (
            (xy[:, 0] >= -margin_x)
            & (xy[:, 0] <= self.width + margin_x)
            & (xy[:, 1] >= -margin_y)
            & (xy[:, 1] <= self.height + margin_y)
        )
        hip = xy[_HIPS].mean(axis=0)
        sides = [
            float(np.linalg.norm(xy[shoulder] - xy[h]))
            for shoulder, h in zip(_SHOULDERS, _HIPS, strict=True)
            if visible[shoulder] and visible[h]
        ]
        if visible[_SHOULDERS].all():  # head-on to a push-up the torso is foreshortened
            sides.append(float(np.linalg.norm(xy[_SHOULDERS[0]] - xy[_SHOULDERS[1]])))
        size = max(sides) if sides else math.nan  # side-on, only the near side is seen
        self._frames.append(_Frame(seq, pts, hip, size, inside, visible))
        while self._frames and pts - self._frames[0].pts > HISTORY_S:
            self._frames.popleft()

    def admit(self, athlete: Athlete, notes: list[Note], pts: float) -> list[Note]:
        """The notes to publish now: all of them once established; until
        then none, and the held ones all at once when the person becomes
        established."""
        if self.established:
            return [self._publish(n) for n in notes]
        for note in notes:
            if note.kind in REP_KINDS:
                self._add_rep(athlete, note)
            elif self._reps and note.kind == EventKind.CUE and "rep" in note.data:
                self._reps[-1].notes.append(note)  # the cue a rep earned
            else:
                self._loose.append(note)
        if self._reps and pts - self._reps[-1].end_pts > HISTORY_S:
            self.discard()  # long idle: whatever was held is stale
        series = self._series()
        if (athlete.spec.is_hold and athlete.holds > 0) or len(series) >= ESTABLISH_REPS:
            self.established = True
            kept = {id(r) for r in series}
            self._drop([r for r in self._reps if id(r) not in kept])
            held = [n for r in series for n in r.notes] + [
                n
                for n in self._loose
                if n.kind in (EventKind.EXERCISE, EventKind.HOLD, EventKind.CUE)
            ]
            self._reps, self._loose = [], []
            return [self._publish(n) for n in sorted(held, key=_order)]
        if not self._reps:
            self._loose = [n for n in self._loose if n.kind == EventKind.EXERCISE]
        return []

    def discard(self) -> None:
        """Forget everything held (the person's exercise changed)."""
        self._drop(self._reps)
        self._reps, self._loose = [], []

    def published(self, log: list[dict]) -> list[dict]:
        """The entries of an athlete's rep log that were published."""
        return [entry for entry in log if id(entry) not in self._dropped]

    def _drop(self, reps: list[_Rep]) -> None:
        for rep in reps:
            self._dropped.update(id(n.data) for n in rep.notes if n.kind in REP_KINDS)

    def _publish(self, note: Note) -> Note:
        """The note numbered among the published reps (the athlete numbers
        every rep it counted, the dropped ones too)."""
        if note.kind == EventKind.REP:
            self.reps += 1
            note.data["rep"] = self.reps
            return Note(note.kind, f"Rep {self.reps}", note.severity, note.data)
        if note.kind == EventKind.PARTIAL_REP:
            self.partial_reps += 1
            note.data["rep"] = self.partial_reps
            text = f"Partial rep {self.partial_reps}: not counted"
            return Note(note.kind, text, note.severity, note.data)
        if note.kind == EventKind.CUE and "rep" in note.data:  # the cue a rep earned
            note.data["rep"] = self.partial_reps if note.data.get("partial") else self.reps
        return note

    def _add_rep(self, athlete: Athlete, note: Note) -> None:
        d = note.data
        start, end = d["start_frame"], d["end_frame"]
        frames = [f for f in self._frames if start <= f.seq <= end]
        measure = athlete.spec.measures[d["measure"]]
        refs = measure.joints + (measure.per or ())
        marks = {m for ref in refs for side in SIDES for m in ref.landmarks(side)}
        # The body's movement may start before the measure's (module docstring).
        lead_from = max(2 * d["start_pts"] - d["end_pts"], self._last_end_pts)
        body = [f for f in self._frames if f.pts >= lead_from and f.seq <= end]
        evidence = (
            bool(frames)
            and _in_place(frames)
            and _in_picture(frames, sorted(marks))
            and _hips_lowered(body, athlete.spec.hips_drop)
        )
        self._last_end_pts = d["end_pts"]
        if self._reps and d["start_pts"] - self._reps[-1].end_pts > RHYTHM_GAP_S:
            self.discard()  # not one series: the earlier reps were something else
        self._reps.append(
            _Rep(
                start,
                end,
                d["start_pts"],
                d["end_pts"],
                not d["partial"],
                bool(d["cut"]),
                evidence,
                [note],
            )
        )

    def _series(self) -> list[_Rep]:
        """The held reps of the series the newest rep ends, oldest first
        (none unless it is evidence): walking back from it, each evidence rep
        in rhythm with the one after it. A rep without evidence or out of
        rhythm is passed over, neither joining the series nor breaking it."""
        if not self._reps or not self._reps[-1].evidence:
            return []
        series: list[_Rep] = []
        for rep in reversed(self._reps):
            if rep.evidence and (not series or _in_rhythm(rep, series[-1])):
                series.append(rep)
        return series[::-1]


def _in_rhythm(a: _Rep, b: _Rep) -> bool:
    """`b` can follow `a` in one series: it starts soon enough after it, and
    their durations are alike (not judged when the stream cut either)."""
    if b.start_pts - a.end_pts > RHYTHM_GAP_S:
        return False
    if a.cut or b.cut:
        return True
    da, db = a.end_pts - a.start_pts, b.end_pts - b.start_pts
    return max(da, db) <= RHYTHM_RATIO * max(min(da, db), 1e-3)


def _order(note: Note) -> int:
    """Held notes are published in the order they came, the exercise first."""
    return 0 if note.kind == EventKind.EXERCISE else 1


def _body_size(frames: list[_Frame]) -> float:
    """The median body size over the frames, pixels; NaN if never known."""
    sizes = [f.size for f in frames if not math.isnan(f.size)]
    return float(np.median(sizes)) if sizes else math.nan


def _in_place(frames: list[_Frame]) -> bool:
    moved = float(np.linalg.norm(frames[-1].hip - frames[0].hip))
    seconds = max(frames[-1].pts - frames[0].pts, 0.5)  # a rep lasts at least that
    return moved <= IN_PLACE * _body_size(frames) * seconds  # False without a size


def _hips_lowered(frames: list[_Frame], need: float) -> bool:
    """The hips went down by `need` body sizes over the rep (lowest against
    highest image position, so a rep cut at the clip's start or end counts
    what it shows); always true where the exercise needs nothing."""
    if need <= 0:
        return True
    heights = [float(f.hip[1]) for f in frames]
    return max(heights) - min(heights) >= need * _body_size(frames)


def _in_picture(frames: list[_Frame], marks: list[int]) -> bool:
    seen = [bool(f.inside[marks][f.visible[marks]].all()) for f in frames]
    return sum(seen) >= IN_FRAME_SHARE * len(seen)

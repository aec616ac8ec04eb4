"""Counting reps from one measure over time: a state machine with hysteresis.

    rest --(passes `start`)--> moving --(back past `end`, settled)--> rest
                                  |
                                  +--> full rep if it passed `full` (and was not
                                       short of the person's own range),
                                       partial if it went `min_partial` past `start`,
                                       nothing otherwise (noise, a sway)

The signal first goes through a centred running median of `2 * SMOOTH_HALF
+ 1` frames (so it lags by `SMOOTH_HALF` frames): a landmark glitch of a
frame or two can neither be the turning point nor make a rep full.
`end` lies on the rest side of `start`, so a signal hovering around either
threshold cannot cycle, and the return to rest must last `settle_s` before
the rep counts, so a landmark glitch of a frame or two mid-rep cannot split
it in two. A gap in the signal longer than `max_gap_s` abandons the movement
in progress, whether its frames were unreadable or the person was away (no
samples at all: they left the picture and came back).

The person's own range. A rep's `depth` is how far its turn lies past the
rest boundary `end`: unlike the range from the last rest sample, it does not
move when the signal jumps about at rest. Once the athlete has calibrated the
person's own depth (`reference`, the median of their first full reps; see
`baseline.py`), a rep that passed `full` but reached less than `SHORT_SHARE`
of it is partial and marked `short` (a three-quarter curl, a half squat):
the exercise's fixed threshold alone would let it pass.

The edges of the stream. A new rep normally starts only after the signal was
seen in the rest zone, so a person who appears mid-movement (walks in, comes
back from behind something or after a gap) is not counted half-way through.
The stream itself can cut a rep, though, and then what was seen decides:

- Cut at the start: the first readable sample comes within `STREAM_START_S`
  of the stream's start (pts is media time from the source's opening) and
  lies outside the rest zone: the set was under way when the stream began.
  That sample stands in for the rest the movement left from. The turn was
  approached inside the stream when the signal was seen travelling at least
  `SEEN_SHARE` of the way from `start` to it. Approached and past `full`: a
  full rep (a push-up set filmed from near the top of rep 1). One of the two:
  partial (a raise that opens with the arms up shows only the lowering from
  a full turn). Neither: nothing (someone kneeling with bent arms who
  straightens them to get into position).
- Cut at the end (`flush`): a movement back in the rest zone but not yet
  settled counts as usual. One still away from rest whose signal was last
  read more than `max_gap_s` before the stream's end was not cut by the end
  but lost before it, as in any gap that long: the person got up mid-movement
  and walked out of the picture while the recording went on. Nothing counts.
  One the end did cut is full when it passed
  `full`, its turn is confirmed (the signal came back from the turn by more
  than `tolerance`, or stayed within `tolerance` of it for `TURN_HOLD_S`, or
  reached `REACH_SHARE` of the person's own depth), and its lift was seen
  (`Counting.lift`). A curl or a raise lifts on the way away from rest: the
  part that makes the rep was seen; only the lowering, which every rep has,
  is missing. A squat or a push-up lifts on the way back: caught at the
  bottom, however deep, it was not done; back past `start` (where it left
  rest), it was. Otherwise it is partial when it went `min_partial` past
  `start` (a descent that never came back up).
- Cut at both ends (never seen at rest): nothing shows it was a rep, so it is
  not reported (a constant signal away from rest counts nothing).

The person's own rest. `end` is where the exercise's rest usually reads,
but a camera up on a wall reads a straight arm or an upright stance short
of it (a push-up's locked arms at 148 degrees, `end` 152, from 35 degrees
above), and so may a person who stands with soft knees. Whoever holds still
between `end` and `start` for `REST_HOLD_S`, seen throughout, before a
movement or on the way back from a full rep's turn, is resting there: the
rest zone then reaches halfway from that level to `start` (`rest_edge`), so
their reps start from it and end back at it. A rep still has to pass `start` and
`full` as every rep does; only the way back to rest is theirs. A pause in
that band on the way to the turn is not rest (a curler who lowers the
dumbbell a little, holds, then curls).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from repcoach.stages.coaching.spec import Counting

SMOOTH_HALF = 2
STREAM_START_S = 0.5  # a first sample this close to the stream's start is "at the start"
SEEN_SHARE = 0.5  # of the way from `start` to the turn, seen, makes a cut start a full rep
TURN_HOLD_S = 0.2  # this long within `tolerance` of the turn confirms it at the stream's end
SHORT_SHARE = 0.75  # a rep under this share of the person's own range is short (partial)
REACH_SHARE = 0.9  # a rep cut at the end that reached this share of it reached its turn
REST_HOLD_S = 0.4  # held still this long between `end` and `start`: the person's own rest
MAX_HOLD_SAMPLES = 256  # `REST_HOLD_S` at up to 640 frames a second


@dataclass(frozen=True)
class Sample:
    seq: int
    pts: float
    value: float


@dataclass(frozen=True)
class Movement:
    """One excursion from rest and back.

    `start` is the last sample still in the rest zone before it left, `turn`
    the sample furthest from rest, `end` the first sample back in the rest
    zone. `depth`: how far the turn lies past the rest boundary (`end`).
    `full`: it counts as a rep (else it is a partial rep). `cut`:
    "start" when it was under way as the stream began (`start` is then the
    first sample), "end" when the stream ended before it came back (`end` is
    then the last sample), "" otherwise. `short`: it passed `full` but fell
    clearly short of the person's own range.
    """

    start: Sample
    turn: Sample
    end: Sample
    depth: float
    full: bool
    cut: str = ""
    short: bool = False

    @property
    def seconds_away(self) -> float:
        return self.turn.pts - self.start.pts

    @property
    def seconds_back(self) -> float:
        return self.end.pts - self.turn.pts

    @property
    def range(self) -> float:
        return abs(self.turn.value - self.start.value)


class RepCounter:
    """Feeds on one value per frame (NaN when it cannot be read) and reports
    each finished movement. `reference`: the person's own depth, once known."""

    def __init__(self, counting: Counting, max_gap_s: float = 1.0, settle_s: float = 0.1):
        self.counting = counting
        self.max_gap_s = max_gap_s
        self.settle_s = settle_s
        self.tolerance = 0.1 * abs(counting.full - counting.end)  # "at the turn"
        self.reference: float | None = None
        self._window: deque[Sample] = deque(maxlen=2 * SMOOTH_HALF + 1)
        self._first = True  # no readable sample seen yet: the stream may start mid-rep
        self._last_valid: Sample | None = None
        self.rest_edge = counting.end  # the rest zone's boundary (see the module docstring)
        # The last `REST_HOLD_S`, all readable; bounded even if a stream's
        # times stop advancing (a hold is then never seen: no rest learned).
        self._recent: deque[Sample] = deque(maxlen=MAX_HOLD_SAMPLES)
        self._abandon()

    def _abandon(self) -> None:
        """Forgets the movement under way; a new one needs the rest zone first."""
        self._ready = False  # a movement may start (seen in the rest zone, or stream start)
        self._rest: Sample | None = None  # where the next movement starts from
        self._rest_cut = False  # `_rest` is the stream's first sample, not a rest sample
        self._start: Sample | None = None  # set while moving
        self._cut_start = False
        self._turn: Sample | None = None
        self._held: Sample | None = None  # first sample of the stay near the turn
        self._turned = False  # seen coming back from the turn
        self._back: Sample | None = None  # first sample back in the rest zone, unconfirmed
        self.phase = "unknown"

    @property
    def moving(self) -> bool:
        return self._start is not None

    def update(self, seq: int, pts: float, value: float) -> Movement | None:
        """Takes this frame's value; may report the movement that ended
        `SMOOTH_HALF` frames ago. A value that is not finite is unreadable."""
        self._window.append(Sample(seq, pts, value if math.isfinite(value) else math.nan))
        if len(self._window) <= SMOOTH_HALF:
            return None
        return self._step(self._smoothed(tuple(self._window), len(self._window) - 1 - SMOOTH_HALF))

    @staticmethod
    def _smoothed(window: tuple[Sample, ...], i: int) -> Sample:
        centre = window[i]
        if math.isnan(centre.value):
            return centre
        around = [s.value for s in window[max(0, i - SMOOTH_HALF) : i + SMOOTH_HALF + 1]]
        return Sample(centre.seq, centre.pts, float(np.nanmedian(around)))

    def _step(self, sample: Sample) -> Movement | None:
        value = sample.value
        last = self._last_valid
        if last is not None and sample.pts - last.pts > self.max_gap_s:
            # Too long unreadable, or away (no samples at all): whatever was
            # under way is lost, and a hold is seen throughout.
            self._abandon()
            self._recent.clear()
        if math.isnan(value):
            self._recent.clear()  # a hold is seen throughout
            self.phase = "unknown" if not self._ready else self.phase
            return None
        if self._first:
            self._first = False
            if sample.pts <= STREAM_START_S and self.counting.past(value, self.rest_edge):
                self._ready, self._rest, self._rest_cut = True, sample, True
        self._last_valid = sample
        self._learn_rest(sample)
        if self._start is None:
            self._leave_rest(sample)
            return None
        return self._away(sample)

    def _learn_rest(self, sample: Sample) -> None:
        """Moves `rest_edge` when the last `REST_HOLD_S` held still between
        `end` and `start` (see the module docstring)."""
        c = self.counting
        recent = self._recent
        recent.append(sample)
        while len(recent) > 1 and sample.pts - recent[1].pts >= REST_HOLD_S:
            recent.popleft()
        if sample.pts - recent[0].pts < REST_HOLD_S:
            return
        values = [s.value for s in recent]
        if max(values) - min(values) > self.tolerance:
            return
        if self._turn is not None and not (self._turned and c.past(self._turn.value, c.full)):
            return  # on the way to the turn, or back from one short of a rep
        level = float(np.median(values))
        if c.past(level, self.rest_edge) and not c.past(level, c.start):
            self.rest_edge = (level + c.start) / 2.0
            if self._start is not None:
                self._back = recent[0]  # back since the hold began: it settled the rep

    def _leave_rest(self, sample: Sample) -> None:
        c = self.counting
        if not c.past(sample.value, self.rest_edge):
            self._ready, self._rest, self._rest_cut = True, sample, False
            self.phase = "rest"
        elif self._ready and c.past(sample.value, c.start) and self._rest is not None:
            self._start, self._cut_start = self._rest, self._rest_cut
            self._turn = self._held = sample
            self._turned = False
            self.phase = "away"

    def _away(self, sample: Sample) -> Movement | None:
        c = self.counting
        assert self._turn is not None and self._held is not None
        if c.past(sample.value, self.rest_edge):
            self._back = None  # not back yet (or that was a glitch)
            if c.past(sample.value, self._turn.value):
                self._turn = sample
                if abs(sample.value - self._held.value) > self.tolerance:
                    self._held, self._turned = sample, False  # a new, further turn
            elif abs(sample.value - self._turn.value) > self.tolerance:
                self._turned = True
            self.phase = self._moving_phase(sample)
            return None
        if self._back is None:
            self._back = sample
        if sample.pts - self._back.pts < self.settle_s:
            self.phase = "back"
            return None
        movement = self._movement(self._back, cut_end=False)
        self._rest_here(sample)
        return movement

    def _rest_here(self, sample: Sample) -> None:
        self._abandon()
        self._ready, self._rest = True, sample
        self.phase = "rest"

    def _movement(self, end: Sample, cut_end: bool) -> Movement | None:
        """The movement from `_start` to `end`, judged; None when it is no rep
        at all (a glitch, a sway, or never seen at rest)."""
        c = self.counting
        start, turn = self._start, self._turn
        assert start is not None and turn is not None
        if self._cut_start and cut_end:
            return None
        reached = c.past(turn.value, c.full) or turn.value == c.full
        depth = abs(turn.value - c.end)
        own = self.reference
        short = reached and own is not None and depth < SHORT_SHARE * own
        full = reached and not short
        if self._cut_start:
            approached = abs(turn.value - start.value) >= SEEN_SHARE * abs(turn.value - c.start)
            if not (approached or reached):
                return None  # only seen coming back from somewhere: no sign of a rep
            full = full and approached
        if cut_end:
            assert self._held is not None
            held = end.pts - self._held.pts >= TURN_HOLD_S
            reached_own = own is not None and depth >= REACH_SHARE * own
            # A lift on the way back is done once back past `start`, where it left.
            lifted = c.lift == "away" or not c.past(end.value, c.start)
            full = full and lifted and (self._turned or held or reached_own)
        if end.pts - start.pts < c.min_seconds:
            return None  # too quick for a person: a glitch
        if not full and abs(turn.value - c.start) < c.min_partial:
            return None  # barely left rest: a sway, not an attempt
        cut = "start" if self._cut_start else ("end" if cut_end else "")
        return Movement(start, turn, end, depth, full, cut, short)

    def _moving_phase(self, sample: Sample) -> str:
        assert self._turn is not None
        if sample is self._turn:
            return "away"
        if abs(sample.value - self._turn.value) <= self.tolerance:
            return "turn"
        return "back"

    def flush(self, end_pts: float | None = None) -> tuple[Movement, ...]:
        """End of stream at `end_pts` (None: at the last sample given): the
        frames still held back by the running median are counted, then the
        movement under way is judged as cut by the end, if the end cut it (see
        the module docstring). Returns the movements finished, oldest first."""
        found: list[Movement] = []
        window = tuple(self._window)  # `_step` may abandon state; the frames stay
        for i in range(max(len(window) - SMOOTH_HALF, 0), len(window)):
            movement = self._step(self._smoothed(window, i))
            if movement is not None:
                found.append(movement)
        last = self._last_valid
        if self._start is not None and last is not None:
            lost = end_pts is not None and end_pts - last.pts > self.max_gap_s
            if self._back is not None or not lost:
                end = self._back if self._back is not None else last
                movement = self._movement(end, cut_end=self._back is None)
                if movement is not None:
                    found.append(movement)
        self._window.clear()
        self._abandon()
        return tuple(found)

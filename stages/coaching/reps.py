"""Counting reps from one measure over time: a state machine with hysteresis.

    rest --(passes `start`)--> moving --(back past `end`)--> rest
                                  |
                                  +--> full rep if it passed `full`,
                                       partial if it went `min_partial` past `start`,
                                       nothing otherwise (noise, a sway)

The signal first goes through a centred running median of `2 * SMOOTH_HALF
+ 1` frames (so it lags by `SMOOTH_HALF` frames): a landmark glitch of a
frame or two can neither be the turning point nor make a rep full.
`end` lies on the rest side of `start`, so a signal hovering around either
threshold cannot cycle, and the return to rest must last `settle_s` before
the rep counts, so a landmark glitch of a frame or two mid-rep cannot split
it in two. A new rep can only start after the signal has been
seen in the rest zone (so a person who appears mid-movement, or comes back
from behind something, is not counted half-way through), and a gap in the
signal longer than `max_gap_s` abandons the movement in progress.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from repcoach.stages.coaching.spec import Counting

SMOOTH_HALF = 2


@dataclass(frozen=True)
class Sample:
    seq: int
    pts: float
    value: float


@dataclass(frozen=True)
class Movement:
    """One finished excursion from rest and back.

    `start` is the last sample still in the rest zone before it left, `turn`
    the sample furthest from rest, `end` the first sample back in the rest
    zone. `full`: it reached the `full` threshold (else it is a partial rep).
    """

    start: Sample
    turn: Sample
    end: Sample
    full: bool

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
    each finished movement."""

    def __init__(self, counting: Counting, max_gap_s: float = 1.0, settle_s: float = 0.1):
        self.counting = counting
        self.max_gap_s = max_gap_s
        self.settle_s = settle_s
        self.tolerance = 0.1 * abs(counting.full - counting.end)  # "at the turn"
        self.reset()

    def reset(self) -> None:
        self._ready = False  # seen in the rest zone since the last reset
        self._rest: Sample | None = None  # latest sample in the rest zone
        self._start: Sample | None = None  # set while moving
        self._turn: Sample | None = None
        self._back: Sample | None = None  # first sample back in the rest zone, unconfirmed
        self._last_valid: float | None = None
        self._window: deque[Sample] = deque(maxlen=2 * SMOOTH_HALF + 1)
        self.phase = "unknown"

    @property
    def moving(self) -> bool:
        return self._start is not None

    def update(self, seq: int, pts: float, value: float) -> Movement | None:
        """Takes this frame's value; may report the movement that ended
        `SMOOTH_HALF` frames ago."""
        self._window.append(Sample(seq, pts, value))
        if len(self._window) <= SMOOTH_HALF:
            return None
        return self._step(self._smoothed(len(self._window) - 1 - SMOOTH_HALF))

    def _smoothed(self, i: int) -> Sample:
        centre = self._window[i]
        if math.isnan(centre.value):
            return centre
        around = [
            s.value for s in list(self._window)[max(0, i - SMOOTH_HALF) : i + SMOOTH_HALF + 1]
        ]
        return Sample(centre.seq, centre.pts, float(np.nanmedian(around)))

    def _step(self, sample: Sample) -> Movement | None:
        c = self.counting
        value, pts = sample.value, sample.pts
        if math.isnan(value):
            if self._last_valid is not None and pts - self._last_valid > self.max_gap_s:
                self.reset()  # too long unseen: whatever was under way is lost
            self.phase = "unknown" if not self._ready else self.phase
            return None
        self._last_valid = pts
        if self._start is None:
            if not c.past(value, c.end):
                self._ready, self._rest = True, sample
                self.phase = "rest"
            elif self._ready and c.past(value, c.start) and self._rest is not None:
                self._start, self._turn = self._rest, sample
                self.phase = "away"
            return None
        assert self._turn is not None
        if c.past(value, c.end):
            self._back = None  # not back yet (or that was a glitch)
            if c.past(value, self._turn.value):
                self._turn = sample
            self.phase = self._moving_phase(sample)
            return None
        if self._back is None:
            self._back = sample
        if sample.pts - self._back.pts < self.settle_s:
            self.phase = "back"
            return None
        return self._finish(sample)

    def _finish(self, now: Sample) -> Movement | None:
        c = self.counting
        assert self._start is not None and self._turn is not None and self._back is not None
        full = c.past(self._turn.value, c.full) or self._turn.value == c.full
        movement = Movement(self._start, self._turn, self._back, full)
        self._start = self._turn = self._back = None
        self._ready, self._rest = True, now
        self.phase = "rest"
        if movement.end.pts - movement.start.pts < c.min_seconds:
            return None  # too quick for a person: a glitch
        if not movement.full and abs(movement.turn.value - c.start) < c.min_partial:
            return None  # barely left rest: a sway, not an attempt
        return movement

    def _moving_phase(self, sample: Sample) -> str:
        assert self._turn is not None
        if sample is self._turn:
            return "away"
        if abs(sample.value - self._turn.value) <= self.tolerance:
            return "turn"
        return "back"

    def flush(self) -> Movement | None:
        """End of stream: a movement already back in the rest zone is
        finished; one that never came back is not a rep."""
        movement = None
        window = len(self._window)
        for i in range(max(window - SMOOTH_HALF, 0), window):  # the frames still held back
            movement = self._step(self._smoothed(i)) or movement
        if self._back is not None:
            movement = self._finish(self._back) or movement
        self.reset()
        return movement

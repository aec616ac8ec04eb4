"""A person's heart rate from their strap (`stages/wearables.py`): the
latest reading for the live view, the readings during each rep, and the
heart-rate zones the report counts time in."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

STALE_S = 5.0  # a reading older than this is not shown as the person's heart rate now
KEPT = 600  # readings kept per person (about 10 minutes at one a second)


class HeartTrace:
    """Readings as (wall time, beats per minute or None for a gap), and the
    RR intervals that came with the last one."""

    def __init__(self) -> None:
        self.readings: deque[tuple[float, int | None]] = deque(maxlen=KEPT)
        self._rr_ms: tuple[int, ...] = ()

    def add(self, t_wall: float, bpm: int | None, rr: Sequence[float] = ()) -> None:
        self.readings.append((t_wall, bpm))
        self._rr_ms = tuple(round(1000 * s) for s in rr) if bpm is not None else ()

    def now(self, at: float | None = None) -> int | None:
        """The heart rate to show now: None with no strap, during a gap, or
        when the last reading is stale (never a value carried over)."""
        if not self.readings:
            return None
        t_wall, bpm = self.readings[-1]
        return bpm if (time.time() if at is None else at) - t_wall <= STALE_S else None

    def rr_now(self, at: float | None = None) -> tuple[int, ...]:
        """The RR intervals (ms) of the reading `now` shows; none with it."""
        return self._rr_ms if self.now(at) is not None else ()

    def during(self, t_wall: float, pts: float, rep: Mapping[str, Any]) -> dict[str, int]:
        """Mean and peak heart rate over a rep (its `start_pts`..`end_pts`,
        placed in wall time by the frame at `pts` captured at `t_wall`);
        nothing when no reading fell in it."""
        start, end = rep.get("start_pts"), rep.get("end_pts")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
            return {}
        offset = t_wall - pts
        beats = [
            b for t, b in self.readings if b is not None and start + offset <= t <= end + offset
        ]
        if not beats:
            return {}
        return {"hr_mean": round(fmean(beats)), "hr_peak": max(beats)}


# The common five-zone scale: each zone starts at this fraction of the
# member's maximum heart rate (below the first: resting, no zone).
ZONES = (
    (0.5, "very light"),
    (0.6, "light"),
    (0.7, "moderate"),
    (0.8, "hard"),
    (0.9, "maximum"),
)


def zone_of(bpm: float, max_hr: int) -> int:
    """1-5 for the zone `bpm` is in, 0 below zone 1."""
    return sum(bpm >= start * max_hr for start, _ in ZONES)


def time_in_zones(
    times: Sequence[float], bpms: Sequence[float], max_hr: int, gap_s: float
) -> list[float]:
    """Seconds spent in each zone (index 0: below zone 1) over a trace of
    readings at `times` (NaN: none). Each reading holds until the next one,
    at most `gap_s`: time nobody measured is in no zone."""
    seconds = [0.0] * (len(ZONES) + 1)
    for i in range(len(times) - 1):
        t, bpm, t_next = times[i], bpms[i], times[i + 1]
        if not (math.isnan(t) or math.isnan(bpm) or math.isnan(t_next)):
            seconds[zone_of(bpm, max_hr)] += min(t_next - t, gap_s)
    return seconds

"""When each rep happens: a seeded schedule that varies tempo and depth from
rep to rep like a real person, turned into one pose per frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from repcoach.stages.synthetic.body import key_index, pose_vector
from repcoach.stages.synthetic.exercises import Exercise
from repcoach.stages.synthetic.faults import FaultPlan

LEAD_IN_S = (0.4, 0.8)  # standing still before the first rep
TAIL_S = 0.5  # standing still after the last rep of the slowest athlete
_IDLE = {"trunk": 0.7, "neck": 2.0}  # breathing and balance: amplitude in degrees
_REST_SWAY = {"trunk": 2.5, "neck": 5.0}  # resting between reps: looser, slower sway
_REST_PERIOD_S = 2.9


@dataclass(frozen=True)
class RestPlan:
    """`rest=S@N-M`: stand still `seconds` after each rep from `first` to `last`."""

    seconds: float
    first: int
    last: int

    def after(self, rep: int) -> float:
        return self.seconds if self.first <= rep <= self.last else 0.0


@dataclass(frozen=True)
class Rest:
    """A rest after rep `after_rep`: from its `start_frame` (the rep's end
    frame) to `end_frame` (the next rep's start frame) the athlete stands in
    the start pose; the frames carry `rep` = 0."""

    after_rep: int
    start_frame: int
    end_frame: int


@dataclass(frozen=True)
class Rep:
    """One repetition and the faults injected into it. `start_frame` is the
    last frame still in the start pose, `bottom_frame` the middle of the
    turning point (deepest squat, top of a curl), `end_frame` the first frame
    back in the start pose; the frames in between carry `rep` = index."""

    index: int  # 1-based
    start_frame: int
    bottom_frame: int
    end_frame: int
    faults: tuple[str, ...]
    depth: float  # fraction of the exercise's full range reached


@dataclass(frozen=True)
class _RepTiming:
    start: float  # seconds
    bottom_start: float
    bottom_end: float
    end: float
    depth: float


@dataclass(frozen=True)
class Schedule:
    """An athlete's reps in seconds, before the clip length is known."""

    exercise: Exercise
    timings: tuple[_RepTiming, ...]
    plans: tuple[FaultPlan, ...]
    idle_phase: tuple[float, ...]  # random phase per idle key
    rested: tuple[int, ...] = ()  # reps followed by a rest

    @property
    def duration(self) -> float:
        return self.timings[-1].end if self.timings else 0.0

    @classmethod
    def plan(
        cls,
        exercise: Exercise,
        reps: int,
        fps: float,
        plans: tuple[FaultPlan, ...],
        rng: np.random.Generator,
        rest: RestPlan | None = None,
    ) -> Schedule:
        timings = []
        min_part = 2.0 / fps  # every part lasts at least two frames
        t = float(rng.uniform(*LEAD_IN_S))
        if exercise.tempo is not None:
            tempo = exercise.tempo
            for index in range(1, reps + 1):
                pace = float(rng.uniform(0.86, 1.16))
                down = max(tempo.down * pace * rng.uniform(0.94, 1.06), min_part)
                hold = max(tempo.hold * pace * rng.uniform(0.7, 1.3), 0.0)
                up = max(tempo.up * pace * rng.uniform(0.94, 1.06), min_part)
                pause = max(tempo.pause * rng.uniform(0.7, 1.4), min_part)
                depth = float(rng.uniform(0.9, 1.0))
                timings.append(
                    _RepTiming(t, t + down, t + down + hold, t + down + hold + up, depth)
                )
                # A rest lengthens the pause without drawing from `rng`, so
                # the reps themselves stay as they are without it.
                t += down + hold + up + pause + (rest.after(index) if rest else 0.0)
        own = tuple(p for p in plans if exercise.name in p.fault.exercises)
        rested = tuple(i for i in range(1, len(timings)) if rest is not None and rest.after(i) > 0)
        return cls(exercise, tuple(timings), own, tuple(rng.uniform(0, 2 * math.pi, 8)), rested)

    def rests(self, fps: float) -> tuple[Rest, ...]:
        reps = self.reps(fps)
        return tuple(Rest(i, reps[i - 1].end_frame, reps[i].start_frame) for i in self.rested)

    def reps(self, fps: float) -> tuple[Rep, ...]:
        out = []
        for i, r in enumerate(self.timings, start=1):
            start = math.floor(r.start * fps)
            end = max(math.ceil(r.end * fps), start + 2)
            bottom = min(
                max(round((r.bottom_start + r.bottom_end) * 0.5 * fps), start + 1), end - 1
            )
            faults = tuple(p.fault.name for p in self.plans if p.covers(i))
            out.append(Rep(i, start, bottom, end, tuple(dict.fromkeys(faults)), r.depth))
        return tuple(out)

    def poses(self, total_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """Pose vector per frame (frames, keys) and the rep number per frame (0: none)."""
        ex = self.exercise
        top = pose_vector(ex.top)
        bottom = pose_vector(ex.bottom)
        times = np.arange(total_frames) / fps
        poses = np.repeat(top[None, :], total_frames, axis=0)
        rep_of_frame = np.zeros(total_frames, dtype=np.int32)
        if ex.is_hold:
            during = sum((pose_vector(p.fault.during) for p in self.plans), np.zeros_like(top))
            poses += during
        for i, r in enumerate(self.timings, start=1):
            plans = [p for p in self.plans if p.covers(i)]
            depth = r.depth * min((p.fault.depth for p in plans), default=1.0)
            turn = bottom + sum((pose_vector(p.fault.bottom) for p in plans), np.zeros_like(top))
            turn = top + (turn - top) * depth
            during = sum((pose_vector(p.fault.during) for p in plans), np.zeros_like(top))
            inside = (times >= r.start) & (times <= r.end)
            phase = _phase(times[inside], r)
            envelope = np.minimum(1.0, phase * 3.0)
            poses[inside] = (
                top + phase[:, None] * (turn - top)[None, :] + envelope[:, None] * during[None, :]
            )
            rep_of_frame[inside] = i
            if ex.hop:
                poses[inside, _LIFT] += ex.hop * 4.0 * _hop(phase)
        idle = dict(_IDLE)
        for key, amplitude in ex.breathing.items():
            idle[key] = idle.get(key, 0.0) + amplitude
        for (key, amplitude), offset in zip(sorted(idle.items()), self.idle_phase, strict=False):
            poses += np.outer(
                np.sin(times * 2 * math.pi / 3.7 + offset) * amplitude, pose_vector({key: 1.0})
            )
        for n, after in enumerate(self.rested):
            a, b = self.timings[after - 1].end, self.timings[after].start
            inside = (times > a) & (times < b)
            envelope = np.sin(np.pi * (times[inside] - a) / (b - a))
            for k, (key, amplitude) in enumerate(sorted(_REST_SWAY.items())):
                wave = np.sin(times[inside] * 2 * math.pi / _REST_PERIOD_S + n + k * 1.3)
                poses[inside] += np.outer(envelope * wave * amplitude, pose_vector({key: 1.0}))
        return poses, rep_of_frame


_LIFT = key_index("lift")


def _ease(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _phase(t: np.ndarray, r: _RepTiming) -> np.ndarray:
    down = _ease((t - r.start) / max(r.bottom_start - r.start, 1e-6))
    up = 1.0 - _ease((t - r.bottom_end) / max(r.end - r.bottom_end, 1e-6))
    return np.where(t < r.bottom_start, down, np.where(t <= r.bottom_end, 1.0, up))


def _hop(phase: np.ndarray) -> np.ndarray:
    """Off the floor halfway through opening and closing, on it at both ends."""
    return phase * (1.0 - phase)

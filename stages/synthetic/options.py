"""The `synthetic:` source spec: `EXERCISE[+EXERCISE...],key=value,...`.

    squat,reps=5,view=side,seed=3
    squat+pushup,people=3,fault=torso_lean@2     (squat, pushup, pushup: people=N
                                                  repeats the last exercise named)
Options:
    reps=N        reps per athlete (1-50, default 3); ignored by holds
    view=V        side or front (default: each exercise's own, e.g. front for
                  jumping_jack); must suit every exercise
    fault=F       see `faults` (NAME, NAME@N, NAME@N-M, joined with +)
    people=N      1-3 athletes side by side (default: one per exercise named)
    fps=F         frames per second (5-120, default 30)
    size=WxH      frame size in pixels (default 640x480)
    seed=N        random seed (default 0): same seed, byte-identical frames
    seconds=S     length of a clip of holds only (plank; default 4)

Exercises and their views (the first is the default):
    squat, lunge, bicep_curl   side, front
    pushup                     side, front (a three-quarter view from the
                               front-right: BlazePose finds no prone body head-on)
    shoulder_press, lateral_raise, jumping_jack   front
    plank                      side (a hold: no reps)
Side views look at the athlete's right side, athlete facing image right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from repcoach.common.errors import UserError
from repcoach.common.specs import Spec
from repcoach.stages.synthetic.camera import VIEWS
from repcoach.stages.synthetic.exercises import EXERCISE_NAMES, EXERCISES
from repcoach.stages.synthetic.faults import FaultPlan, check_plans, parse_faults

OPTIONS = ("reps", "view", "fault", "people", "fps", "size", "seed", "seconds")
MAX_PEOPLE = 3


@dataclass(frozen=True)
class SyntheticConfig:
    """A parsed and checked `synthetic:` spec."""

    text: str
    exercises: tuple[str, ...]  # one per athlete, left to right
    views: tuple[str, ...]  # one per athlete
    reps: int
    faults: tuple[FaultPlan, ...]
    fps: float
    width: int
    height: int
    seed: int
    hold_seconds: float


def _integer(spec: Spec, key: str, default: int, lo: int, hi: int) -> int:
    raw = spec.options.get(key)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise UserError(f"synthetic: {key}={raw!r} is not a whole number in [{lo}, {hi}]")
    value = int(raw)
    if not lo <= value <= hi:
        raise UserError(f"synthetic: {key}={raw} is outside [{lo}, {hi}]")
    return value


def parse_spec(text: str) -> SyntheticConfig:
    """Parses the text after `synthetic:`; raises UserError naming what is valid."""
    head, _, rest = text.strip().partition(",")
    if not head or "=" in head:
        raise UserError(
            f"synthetic: spec {text!r} must start with an exercise, e.g. "
            f"'squat,reps=5'; exercises: {', '.join(EXERCISE_NAMES)}"
        )
    spec = Spec.parse(f"synthetic:{rest}", "synthetic source")
    spec.check_known(set(OPTIONS))
    named = [name.strip() for name in head.split("+")]
    for name in named:
        if name not in EXERCISES:
            raise UserError(
                f"synthetic: unknown exercise {name!r}; valid: {', '.join(EXERCISE_NAMES)}"
            )
    people = _integer(spec, "people", len(named), 1, MAX_PEOPLE)
    if people < len(named):
        raise UserError(f"synthetic: people={people} but {len(named)} exercises were named")
    exercises = tuple(named + [named[-1]] * (people - len(named)))
    view = spec.options.get("view")
    if view is not None and view not in VIEWS:
        raise UserError(f"synthetic: view={view!r} is not one of {', '.join(VIEWS)}")
    views = []
    for name in exercises:
        allowed = EXERCISES[name].views
        if view is not None and view not in allowed:
            raise UserError(
                f"synthetic: view={view} does not suit {name}; its views: {', '.join(allowed)}"
            )
        views.append(view or EXERCISES[name].default_view)
    reps = _integer(spec, "reps", 3, 1, 50)
    faults = parse_faults(spec.options.get("fault", ""))
    check_plans(faults, list(exercises), reps)
    size = spec.options.get("size", "640x480")
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if match is None:
        raise UserError(f"synthetic: size={size!r} is not WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(match[1]), int(match[2])
    if not (64 <= width <= 3840 and 64 <= height <= 2160):
        raise UserError(f"synthetic: size={size} is outside 64x64..3840x2160")
    return SyntheticConfig(
        text=text,
        exercises=exercises,
        views=tuple(views),
        reps=reps,
        faults=faults,
        fps=spec.take_number("fps", 30.0, 5.0, 120.0),
        width=width,
        height=height,
        seed=_integer(spec, "seed", 0, 0, 2**32 - 1),
        hold_seconds=spec.take_number("seconds", 4.0, 0.5, 600.0),
    )

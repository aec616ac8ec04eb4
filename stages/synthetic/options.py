"""The `synthetic:` source spec: `EXERCISE[+EXERCISE...],key=value,...`.

    squat,reps=5,view=side,seed=3
    squat+pushup,people=3,fault=torso_lean@2     (squat, pushup, pushup: people=N
                                                  repeats the last exercise named)
Options:
    reps=N        reps per athlete (1-50, default 3); ignored by holds
    view=V        side, front or back (default: each exercise's own, e.g.
                  front for jumping_jack); must suit every exercise
    fault=F       see `faults` (NAME, NAME@N, NAME@N-M, joined with +)
    people=N      1-3 athletes side by side (default: one per exercise named)
    fps=F         frames per second (5-120, default 30)
    size=WxH      frame size in pixels (default 640x480)
    seed=N        random seed (default 0): same seed, byte-identical frames
    seconds=S     length of a clip of holds only (plank; default 4)
    extra=F[+F..] people who do not exercise, in this order (at most 3):
                  bystander   stands to one side, arms crossed, hands on hips or
                              hanging, swaying a little
                  walker      walks across the frame behind the athletes, in at
                              one edge and out at the other
                  spotter     stands right behind the first athlete, off their
                              middle, partly hidden by them, watching
    rest=S[@N|@N-M]  the athletes stand still S seconds (0.5-60) after rep N
                  (or reps N..M; default: after every rep but the last)
    mirror=N      a mirror twin of athlete N (1-based; 0: none, the default):
                  the athlete flipped left-right, smaller and dimmer, beside
                  them in a wall mirror, moving in sync
    elevation=DEG the camera looks down DEG degrees (0-60) at everyone, as one
                  mounted high on a gym wall does (default: each view's
                  own, 4 standing, 12 for floor exercises)
    checkin=NAME[@N]  athlete N (default 1) holds up member NAME's check-in
                  code beside their chest for the first 1.5 s (a code this
                  box issued: `pipeline members qr NAME`)

Truth marks each person's `role` (athlete, bystander, walker, spotter,
mirror) and whether they exercise; non-exercisers have no reps. Person
indexes: the athletes first, then the extras in the order named, then the
mirror twin.

Exercises and their views (the first is the default):
    squat                      side, front, back
    lunge, bicep_curl          side, front (from behind, the bending knee or
                               elbow points along the camera's axis)
    pushup                     side, front (a three-quarter view from the
                               front-right: BlazePose finds no prone body head-on)
    shoulder_press, lateral_raise, jumping_jack   front, back
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
from repcoach.stages.synthetic.timeline import RestPlan

OPTIONS = (
    "reps",
    "view",
    "fault",
    "people",
    "fps",
    "size",
    "seed",
    "seconds",
    "extra",
    "rest",
    "mirror",
    "checkin",
    "elevation",
)
MAX_PEOPLE = 3
EXTRAS = ("bystander", "walker", "spotter")
MAX_EXTRAS = 3
# A camera on a gym wall looks down 20-45 degrees; past 60 the body is seen
# from above, which no pose model here is trained for.
MAX_ELEVATION = 60.0
MAX_SIDE_BY_SIDE = 4  # athletes, bystanders and a mirror twin share the width


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
    extras: tuple[str, ...] = ()  # EXTRAS, in the order named
    rest: RestPlan | None = None
    mirror_of: int | None = None  # 0-based athlete mirrored, None: no mirror
    checkin: tuple[str, int] | None = None  # (member, 0-based athlete) showing a code
    elevation: float | None = None  # degrees the camera looks down; None: each view's own


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


def _extras(spec: Spec) -> tuple[str, ...]:
    raw = spec.options.get("extra", "")
    names = tuple(name.strip() for name in raw.split("+")) if raw else ()
    for name in names:
        if name not in EXTRAS:
            raise UserError(
                f"synthetic: extra={raw!r}: unknown figure {name!r}; valid: {', '.join(EXTRAS)}"
            )
    if len(names) > MAX_EXTRAS:
        raise UserError(
            f"synthetic: extra={raw!r} names {len(names)} figures; at most {MAX_EXTRAS}"
        )
    return names


_REST = re.compile(r"(?P<seconds>\d+(?:\.\d+)?)(?:@(?P<first>\d+)(?:-(?P<last>\d+))?)?")


def _rest(spec: Spec, reps: int, exercises: tuple[str, ...]) -> RestPlan | None:
    raw = spec.options.get("rest")
    if raw is None:
        return None
    match = _REST.fullmatch(raw)
    if match is None:
        raise UserError(f"synthetic: rest={raw!r} is not S, S@N or S@N-M (seconds after rep N)")
    seconds = float(match["seconds"])
    if not 0.5 <= seconds <= 60.0:
        raise UserError(f"synthetic: rest={raw}: {seconds:g} seconds is outside [0.5, 60]")
    if all(EXERCISES[name].is_hold for name in exercises):
        raise UserError(f"synthetic: rest={raw}: a hold ({'+'.join(exercises)}) has no reps")
    if reps < 2:
        raise UserError(f"synthetic: rest={raw} needs reps=2 or more (rests fall between reps)")
    first = int(match["first"]) if match["first"] else 1
    last = int(match["last"]) if match["last"] else (first if match["first"] else reps - 1)
    if not 1 <= first <= last < reps:
        raise UserError(
            f"synthetic: rest={raw}: rests come after reps 1..{reps - 1} (reps={reps}), N <= M"
        )
    return RestPlan(seconds, first, last)


def _checkin(spec: Spec, athletes: int) -> tuple[str, int] | None:
    raw = spec.options.get("checkin")
    if raw is None:
        return None
    member, _, number = raw.partition("@")
    if not re.fullmatch(r"[^:@]{1,64}", member) or not re.fullmatch(r"\d*", number):
        raise UserError(f"synthetic: checkin={raw!r} is not NAME or NAME@N")
    athlete = int(number or 1)
    if not 1 <= athlete <= athletes:
        raise UserError(f"synthetic: checkin={raw}: athlete {athlete} of {athletes}")
    return member, athlete - 1


def _elevation(spec: Spec) -> float | None:
    if "elevation" not in spec.options:
        return None
    return spec.take_number("elevation", 0.0, 0.0, MAX_ELEVATION)


def _mirror(spec: Spec, exercises: tuple[str, ...]) -> int | None:
    athlete = _integer(spec, "mirror", 0, 0, len(exercises))
    return athlete - 1 if athlete else None


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
    extras = _extras(spec)
    mirror_of = _mirror(spec, exercises)
    side_by_side = len(exercises) + extras.count("bystander") + (mirror_of is not None)
    if side_by_side > MAX_SIDE_BY_SIDE:
        raise UserError(
            f"synthetic: {side_by_side} figures side by side (athletes, bystanders, mirror); "
            f"at most {MAX_SIDE_BY_SIDE}"
        )
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
        extras=extras,
        rest=_rest(spec, reps, exercises),
        mirror_of=mirror_of,
        checkin=_checkin(spec, len(exercises)),
        elevation=_elevation(spec),
    )

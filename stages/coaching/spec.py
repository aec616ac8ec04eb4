"""An exercise, as data: what is measured, how reps are counted, which form
rules apply. One JSON file per exercise in `exercises/` (see
`exercises/README.md` for the format); `load_exercise` turns a file into an
`ExerciseSpec` or raises `UserError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from repcoach.common.errors import UserError
from repcoach.common.landmarks import Landmark
from repcoach.common.messages import Severity

VIEWS = ("side", "oblique", "front")  # see `athlete.VIEW_BOUNDS`
SEVERITIES = tuple(s.value for s in Severity)
# How a measure picks the body side it reads.
SIDE_MODES = ("near", "left", "right", "mean", "min", "max", "lead", "none")
# What a measure computes from its joints (see `measures.py`).
MEASURE_KINDS = {
    "angle": 3,  # joint angle at the middle joint, degrees [0, 180]
    "tilt": 2,  # segment (top, bottom) from image vertical, degrees [0, 180]
    "height": 2,  # how far the first joint is above the second, per reference length
    "spread": 2,  # horizontal gap between two joints, per reference length
    "line_offset": 3,  # middle joint's distance below the line through the others, per its length
    "ahead": 2,  # how far the first joint is ahead of the second (the way the feet point)
}
DEGREE_KINDS = ("angle", "tilt")
# Per-rep summaries a rule can test (see `rules.py`).
AGGREGATES = ("min", "max", "mean", "turn", "start", "rise", "drop", "range")
# The half of a rep that works against the load: on the way away from rest
# (a curl, a raise, a press) or on the way back to it (a squat, a push-up).
LIFTS = ("away", "back")
_SIDED = {lm.name.lower().removeprefix("left_") for lm in Landmark if lm.name.startswith("LEFT_")}


@dataclass(frozen=True)
class JointRef:
    """A joint as an exercise names it: `left_knee` (fixed), `knee` (the side
    the measure reads), `other_knee` (the opposite side), `mid_hip` (halfway
    between both), `nose` (unsided)."""

    text: str
    base: str  # landmark name without side, or the unsided landmark's name
    mode: str  # "fixed" | "side" | "other" | "mid"

    def landmarks(self, side: str) -> tuple[Landmark, ...]:
        """The landmark(s) this names for a measure reading `side` ("left" or
        "right"); two for `mid_`, whose position is their mean."""
        if self.mode == "fixed":
            return (Landmark[self.base.upper()],)
        if self.mode == "mid":
            return (Landmark[f"LEFT_{self.base.upper()}"], Landmark[f"RIGHT_{self.base.upper()}"])
        use = side if self.mode == "side" else ("right" if side == "left" else "left")
        return (Landmark[f"{use.upper()}_{self.base.upper()}"],)

    @property
    def sided(self) -> bool:
        return self.mode in ("side", "other")


def parse_joint(text: str) -> JointRef | None:
    """The `JointRef` for a joint name, or None if it names no joint."""
    name = text.strip().lower()
    if name.upper() in Landmark.__members__:
        return JointRef(name, name, "fixed")
    for prefix, mode in (("other_", "other"), ("mid_", "mid")):
        if name.startswith(prefix) and name[len(prefix) :] in _SIDED:
            return JointRef(name, name[len(prefix) :], mode)
    if name in _SIDED:
        return JointRef(name, name, "side")
    return None


@dataclass(frozen=True)
class Measure:
    """A number read from one frame's joints (see `MEASURE_KINDS`).

    `per`: the reference length (two joints) that distances are divided by,
    so they do not depend on how far away the person stands; `side`: which
    body side is read (`SIDE_MODES`)."""

    name: str
    kind: str
    joints: tuple[JointRef, ...]
    side: str
    per: tuple[JointRef, JointRef] | None = None

    @property
    def unit(self) -> str:
        return "deg" if self.kind in DEGREE_KINDS else "ratio"


@dataclass(frozen=True)
class Counting:
    """How reps are counted from one measure in some views.

    A rep leaves the rest position when the measure passes `start`, counts as
    full if it passes `full`, and ends when it comes back past `end`; `end`
    lies on the rest side of `start` (the hysteresis band), so noise around
    one threshold cannot produce a rep. A movement that came back without
    reaching `full` but went at least `min_partial` past `start` is a partial
    rep. `min_seconds` is the shortest real rep. `lift`: the half of the rep
    that works against the load (`LIFTS`); a rep whose lift is the way back
    is not done until it came back (see `reps.py` on the stream's end)."""

    views: tuple[str, ...]
    measure: str
    start: float
    full: float
    end: float
    min_partial: float
    min_seconds: float
    lift: str = "away"

    @property
    def rising(self) -> bool:
        """True when a rep moves the measure up (a lateral raise), False when down."""
        return self.full > self.start

    def past(self, value: float, threshold: float) -> bool:
        """Whether `value` lies beyond `threshold` in the rep's direction."""
        return value > threshold if self.rising else value < threshold


@dataclass(frozen=True)
class Rule:
    """A form rule: summarise `measure` over a rep with `at` (`AGGREGATES`);
    it is a fault when the summary is below `below` or above `above`.
    Judged only in `views` (2D angles mean nothing out of their plane)."""

    id: str
    measure: str
    at: str
    views: tuple[str, ...]
    severity: Severity
    cue: str
    below: float | None = None
    above: float | None = None
    praise: str | None = None
    penalty: float = 0.0
    skip_on_partial: bool = False  # a depth rule says nothing new about a partial rep
    slack: float | None = None  # how far one strictness level moves the threshold

    def faulty(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return (self.below is not None and value < self.below) or (
            self.above is not None and value > self.above
        )


@dataclass(frozen=True)
class Hold:
    """A held position (plank): the person is holding while `measure` is
    beyond `enter` (`above` or `below` it); rules are judged over the last
    `window_s` seconds of the hold."""

    measure: str
    enter: float
    above: bool
    window_s: float

    def holding(self, value: float) -> bool:
        return value > self.enter if self.above else value < self.enter


@dataclass(frozen=True)
class Phases:
    """What a person is doing, in the exercise's own words."""

    rest: str
    away: str
    turn: str
    back: str


@dataclass(frozen=True)
class ExerciseSpec:
    name: str
    title: str
    views: tuple[str, ...]
    measures: Mapping[str, Measure]
    counting: tuple[Counting, ...]  # empty for a hold
    hold: Hold | None
    phases: Phases
    rules: tuple[Rule, ...]
    side_joints: tuple[str, ...]  # sided joint names that pick the near side
    required: tuple[JointRef, ...]  # must be visible to count at all
    cues: Mapping[str, str]  # "out_of_view", "turn_side", "turn_front", "partial", "short"
    # Body sizes (torso length or shoulder width) a rep lowers the hips by,
    # at least; 0: no such check. A rep that does not is no evidence that
    # the person trains (see `activity`).
    hips_drop: float
    source: str  # the file it came from

    @property
    def is_hold(self) -> bool:
        return self.hold is not None

    def counting_for(self, view: str) -> Counting | None:
        return next((c for c in self.counting if view in c.views), None)


# --- loading


class _Field:
    """Reads one JSON object, naming file and field in every error."""

    def __init__(self, source: str, path: str, value: Any):
        self.source = source
        self.path = path
        self.value = value

    def fail(self, what: str) -> UserError:
        where = f"field '{self.path}'" if self.path else "top level"
        return UserError(f"exercise file {self.source}: {where}: {what}")

    def child(self, key: str | int) -> _Field:
        if isinstance(key, int):
            return _Field(self.source, f"{self.path}[{key}]", self.value[key])
        return _Field(self.source, self._sub(key), self.value[key])

    def obj(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> _Field:
        if not isinstance(self.value, dict):
            raise self.fail(f"must be an object, got {_kind(self.value)}")
        for key in required:
            if key not in self.value:
                raise _Field(self.source, self._sub(key), None).fail("is missing")
        unknown = sorted(set(self.value) - set(required) - set(optional))
        if unknown:
            known = ", ".join(required + optional)
            raise _Field(self.source, self._sub(unknown[0]), None).fail(
                f"is not a known field (known here: {known})"
            )
        return self

    def _sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> _Field | None:
        return self.child(key) if key in self.value else None

    def text(self) -> str:
        if not isinstance(self.value, str):
            raise self.fail(f"must be a string, got {_kind(self.value)}")
        if not self.value.strip():
            raise self.fail("must not be empty")
        return self.value.strip()

    def number(self) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.fail(f"must be a number, got {_kind(self.value)}")
        if not math.isfinite(self.value):
            raise self.fail("must be a finite number")
        return float(self.value)

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"must be true or false, got {_kind(self.value)}")
        return self.value

    def choice(self, allowed: tuple[str, ...]) -> str:
        value = self.text()
        if value not in allowed:
            raise self.fail(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def items(self) -> list[_Field]:
        if not isinstance(self.value, list) or not self.value:
            raise self.fail(f"must be a non-empty list, got {_kind(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    def views(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.choice(VIEWS) for item in self.items()))

    def joint(self) -> JointRef:
        ref = parse_joint(self.text())
        if ref is None:
            raise self.fail(
                f"unknown joint {self.value!r}; use a landmark name (left_knee, nose), "
                f"a side-free one ({', '.join(sorted(_SIDED))}), or other_/mid_ before one"
            )
        return ref


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _measure(name: str, f: _Field) -> Measure:
    f.obj(("kind", "joints"), ("side", "per"))
    kind = f.child("kind").choice(tuple(MEASURE_KINDS))
    joints = tuple(j.joint() for j in f.child("joints").items())
    if len(joints) != MEASURE_KINDS[kind]:
        raise f.child("joints").fail(
            f"a {kind} measure takes {MEASURE_KINDS[kind]} joints, got {len(joints)}"
        )
    per_field = f.get("per")
    per = None
    if per_field is not None:
        refs = tuple(j.joint() for j in per_field.items())
        if len(refs) != 2:
            raise per_field.fail(f"must name 2 joints, got {len(refs)}")
        per = (refs[0], refs[1])
    elif kind in ("height", "spread", "ahead"):
        raise _Field(f.source, f"{f.path}.per", None).fail(
            f"is missing (a {kind} measure is divided by a reference length)"
        )
    side_field = f.get("side")
    sided = any(j.sided for j in joints + (per or ()))
    side = side_field.choice(SIDE_MODES) if side_field else ("near" if sided else "none")
    if sided and side == "none":
        raise side_field.fail("is 'none' but the joints name a side-free joint like 'knee'")
    return Measure(name, kind, joints, side, per)


def _counting(
    f: _Field, measures: Mapping[str, Measure], views: tuple[str, ...], lift: str
) -> Counting:
    f.obj(("views", "measure", "start", "full", "end"), ("min_partial", "min_seconds"))
    count_views = f.child("views").views()
    for i, view in enumerate(count_views):
        if view not in views:
            raise f.child("views").child(i).fail(f"view {view!r} is not in the exercise's views")
    measure = f.child("measure").text()
    if measure not in measures:
        raise f.child("measure").fail(f"no measure {measure!r}; measures: {', '.join(measures)}")
    start, full, end = (f.child(k).number() for k in ("start", "full", "end"))
    rising = full > start
    if full == start or (end > start) == rising or end == start:
        raise f.child("end").fail(
            "thresholds must go end -> start -> full in the rep's direction "
            f"(got end {end:g}, start {start:g}, full {full:g})"
        )
    min_partial = f.child("min_partial").number() if f.get("min_partial") else abs(full - start) / 2
    min_seconds = f.child("min_seconds").number() if f.get("min_seconds") else 0.3
    if min_partial < 0 or min_seconds < 0:
        raise f.fail("min_partial and min_seconds must be 0 or more")
    return Counting(count_views, measure, start, full, end, min_partial, min_seconds, lift)


def _rule(f: _Field, measures: Mapping[str, Measure], views: tuple[str, ...]) -> Rule:
    f.obj(
        ("id", "measure", "at", "views", "severity", "cue"),
        ("below", "above", "praise", "penalty", "skip_on_partial", "slack"),
    )
    measure = f.child("measure").text()
    if measure not in measures:
        raise f.child("measure").fail(f"no measure {measure!r}; measures: {', '.join(measures)}")
    rule_views = f.child("views").views()
    for i, view in enumerate(rule_views):
        if view not in views:
            raise f.child("views").child(i).fail(f"view {view!r} is not in the exercise's views")
    below = f.child("below").number() if f.get("below") else None
    above = f.child("above").number() if f.get("above") else None
    if below is None and above is None:
        raise _Field(f.source, f"{f.path}.below", None).fail("is missing (give below or above)")
    if f.get("slack") and f.child("slack").number() < 0:
        raise f.child("slack").fail("must be 0 or more")
    severity = Severity(f.child("severity").choice(SEVERITIES))
    penalty = f.child("penalty").number() if f.get("penalty") else _PENALTY[severity]
    return Rule(
        id=f.child("id").text(),
        measure=measure,
        at=f.child("at").choice(AGGREGATES),
        views=rule_views,
        severity=severity,
        cue=f.child("cue").text(),
        below=below,
        above=above,
        praise=f.child("praise").text() if f.get("praise") else None,
        penalty=penalty,
        skip_on_partial=f.child("skip_on_partial").flag() if f.get("skip_on_partial") else False,
        slack=f.child("slack").number() if f.get("slack") else None,
    )


_PENALTY = {Severity.INFO: 5.0, Severity.WARN: 15.0, Severity.FAULT: 30.0}
_DEFAULT_CUES = {
    "out_of_view": "Step into view so I can see your whole body",
    "turn_side": "Turn side-on to the camera",
    "turn_front": "Face the camera",
    "partial": "Go through the full range of motion",
    # a rep past the exercise's threshold but short of the person's own range
    "short": "Shorter than your first reps: use your full range",
}


def parse_exercise(data: Any, source: str) -> ExerciseSpec:
    """An `ExerciseSpec` from a decoded JSON document; `source` names it in errors."""
    f = _Field(source, "", data).obj(
        ("name", "title", "views", "measures", "phases", "required_joints"),
        ("counting", "lift", "hold", "rules", "side_joints", "cues", "hips_drop", "notes"),
    )
    name = f.child("name").text()
    views = f.child("views").views()
    measures_field = f.child("measures")
    if not isinstance(measures_field.value, dict) or not measures_field.value:
        raise measures_field.fail(
            f"must be an object with at least one measure, got {_kind(measures_field.value)}"
        )
    measures = {key: _measure(key, measures_field.child(key)) for key in measures_field.value}
    has_counting, has_hold = f.get("counting") is not None, f.get("hold") is not None
    if has_counting == has_hold:
        raise _Field(source, "counting", None).fail(
            "give exactly one of 'counting' (an exercise with reps) or 'hold' (a held position)"
        )
    counting: tuple[Counting, ...] = ()
    hold = None
    if f.get("lift") is not None and not has_counting:
        raise f.child("lift").fail("only an exercise with reps ('counting') has a lift")
    if has_counting:
        lift = f.child("lift").choice(LIFTS) if f.get("lift") is not None else "away"
        counting = tuple(_counting(c, measures, views, lift) for c in f.child("counting").items())
    else:
        h = f.child("hold").obj(("measure", "window_s"), ("above", "below"))
        measure = h.child("measure").text()
        if measure not in measures:
            raise h.child("measure").fail(
                f"no measure {measure!r}; measures: {', '.join(measures)}"
            )
        if (h.get("above") is None) == (h.get("below") is None):
            raise _Field(source, "hold.above", None).fail("give exactly one of above or below")
        above = h.get("above") is not None
        enter = h.child("above" if above else "below").number()
        window = h.child("window_s").number()
        if window <= 0:
            raise h.child("window_s").fail(f"must be more than 0 seconds, got {window:g}")
        hold = Hold(measure, enter, above, window)
    p = f.child("phases").obj(("rest", "away", "turn", "back"))
    phases = Phases(*(p.child(k).text() for k in ("rest", "away", "turn", "back")))
    rules_field = f.get("rules")
    rules = ()
    if rules_field is not None and rules_field.value != []:  # [] : no form rules
        rules = tuple(_rule(r, measures, views) for r in rules_field.items())
    required = tuple(j.joint() for j in f.child("required_joints").items())
    side_joints = (
        tuple(j.joint().text for j in f.child("side_joints").items())
        if f.get("side_joints")
        else tuple(r.text for r in required if r.mode == "side")
    )
    for i, text in enumerate(side_joints):
        if parse_joint(text).mode != "side":  # type: ignore[union-attr]
            raise f.child("side_joints").child(i).fail(f"{text!r} must be side-free, like 'knee'")
    cues = dict(_DEFAULT_CUES)
    if f.get("cues"):
        c = f.child("cues").obj((), tuple(_DEFAULT_CUES))
        cues.update({k: c.child(k).text() for k in c.value})
    hips_drop = f.child("hips_drop").number() if f.get("hips_drop") is not None else 0.0
    if hips_drop < 0:
        raise f.child("hips_drop").fail(f"must be 0 or more, got {hips_drop:g}")
    return ExerciseSpec(
        name=name,
        title=f.child("title").text(),
        views=views,
        measures=MappingProxyType(measures),
        counting=counting,
        hold=hold,
        phases=phases,
        rules=rules,
        side_joints=side_joints,
        required=required,
        cues=MappingProxyType(cues),
        hips_drop=hips_drop,
        source=source,
    )


def load_exercise(path: Path) -> ExerciseSpec:
    """Reads and checks one exercise file; UserError names the file and field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"exercise file {path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UserError(
            f"exercise file {path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg})"
        ) from None
    spec = parse_exercise(data, str(path))
    if spec.name != path.stem:
        raise UserError(
            f"exercise file {path}: field 'name': {spec.name!r} must match the file name "
            f"({path.stem!r})"
        )
    return spec

"""Form faults as data, and the `fault=` option that injects them into chosen reps.

Syntax: `fault=NAME[@REPS][+NAME[@REPS]...]`, REPS being `N` or `N-M`
(1-based, inclusive); without `@REPS` the fault applies to every rep.
Examples: `fault=elbow_swing`, `fault=elbow_swing@1-3`,
`fault=torso_lean@2+shallow_depth@4`. A fault affects the people whose
exercise it belongs to; on a hold (plank) it lasts the whole clip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from repcoach.common.errors import UserError
from repcoach.stages.synthetic.exercises import EXERCISES

_REP_EXERCISES = tuple(name for name, ex in EXERCISES.items() if not ex.is_hold)


@dataclass(frozen=True)
class Fault:
    """How a fault bends a rep: `depth` scales the range reached; `bottom` is
    added at the turning point (growing with the movement); `during` is added
    through the whole rep (and the whole of a hold)."""

    name: str
    exercises: tuple[str, ...]
    description: str
    depth: float = 1.0
    bottom: Mapping[str, float] = field(default_factory=dict)
    during: Mapping[str, float] = field(default_factory=dict)


FAULTS: Mapping[str, Fault] = MappingProxyType(
    {
        f.name: f
        for f in (
            Fault("shallow_depth", ("squat",), "squat stops well above parallel", depth=0.55),
            Fault(
                "knees_caving",
                ("squat",),
                "knees drift inward on the way down (visible from the front)",
                bottom={"knee_out": -26},
            ),
            Fault(
                "torso_lean",
                ("squat",),
                "chest drops: the torso leans far forward",
                bottom={"trunk": 24, "neck": -16},
            ),
            Fault(
                "hip_sag",
                ("pushup", "plank"),
                "hips sag towards the floor",
                during={"trunk": -11, "thigh_flex": -13, "shin_flex": -13},
            ),
            Fault(
                "hip_pike",
                ("pushup", "plank"),
                "hips pike up towards the ceiling",
                during={"trunk": 15, "thigh_flex": 22, "shin_flex": 22},
            ),
            Fault(
                "elbow_flare",
                ("pushup",),
                "elbows flare out sideways (visible from the front)",
                bottom={"elbow_out": 50},
            ),
            Fault(
                "elbow_swing",
                ("bicep_curl",),
                "upper arm swings forward to heave the weight",
                bottom={"upperarm_flex": 38, "trunk": -4},
            ),
            Fault(
                "partial_range",
                _REP_EXERCISES,
                "only about half of the range of motion",
                depth=0.5,
            ),
            Fault(
                "knee_past_toes",
                ("lunge",),
                "front knee travels forward past the toes",
                bottom={"r_shin_flex": -36},
            ),
            Fault(
                "heels_lifting",
                ("squat",),
                "heels come off the floor at the bottom, weight on the toes (side view)",
                bottom={"foot_pitch": 24},
            ),
            Fault(
                "no_lockout",
                ("shoulder_press",),
                "arms stop well short of straight overhead (elbows about 140-150 degrees)",
                bottom={"upperarm_abd": -27},
            ),
            Fault(
                "arms_low",
                ("lateral_raise",),
                "arms stop well below shoulder height (about 65-70 degrees)",
                bottom={"upperarm_abd": -25, "forearm_abd": -25},
            ),
            Fault(
                "shrug",
                ("lateral_raise",),
                "shoulders hunch up towards the ears as the arms rise",
                bottom={"shrug": 0.08},
            ),
            Fault(
                "arms_not_overhead",
                ("jumping_jack",),
                "arms stop a little above shoulder height instead of overhead",
                bottom={"upperarm_abd": -52, "forearm_abd": -57},
            ),
            Fault(
                "feet_not_apart",
                ("jumping_jack",),
                "feet stay about hip width apart",
                bottom={"thigh_abd": -11, "shin_abd": -12},
            ),
        )
    }
)

FAULT_NAMES = tuple(FAULTS)
_ITEM = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<first>\d+)(?:-(?P<last>\d+))?)?$")


@dataclass(frozen=True)
class FaultPlan:
    """One fault injected into reps `first`..`last` (1-based; None: all reps)."""

    fault: Fault
    first: int | None = None
    last: int | None = None

    def covers(self, rep: int) -> bool:
        if self.first is None:
            return True
        return self.first <= rep <= (self.last if self.last is not None else self.first)


def parse_faults(text: str) -> tuple[FaultPlan, ...]:
    """Parses the `fault=` option (see the module docstring)."""
    plans = []
    for item in filter(None, (part.strip() for part in text.split("+"))):
        match = _ITEM.match(item)
        if match is None:
            raise UserError(
                f"synthetic: fault={item!r} is not NAME, NAME@N or NAME@N-M "
                f"(faults: {', '.join(FAULT_NAMES)})"
            )
        name = match["name"]
        if name not in FAULTS:
            raise UserError(f"synthetic: unknown fault {name!r}; valid: {', '.join(FAULT_NAMES)}")
        first = int(match["first"]) if match["first"] else None
        last = int(match["last"]) if match["last"] else first
        if first is not None and (first < 1 or last < first):
            raise UserError(f"synthetic: fault={item!r}: reps are 1-based and N-M needs N <= M")
        plans.append(FaultPlan(FAULTS[name], first, last))
    return tuple(plans)


def check_plans(plans: tuple[FaultPlan, ...], exercises: list[str], reps: int) -> None:
    """Every fault must fit at least one athlete's exercise and the rep count."""
    for plan in plans:
        fault = plan.fault
        if not set(fault.exercises) & set(exercises):
            raise UserError(
                f"synthetic: fault {fault.name!r} applies to {', '.join(fault.exercises)}, "
                f"not to {'+'.join(exercises)}"
            )
        holds_only = all(EXERCISES[name].is_hold for name in exercises if name in fault.exercises)
        if plan.first is not None and holds_only:
            raise UserError(
                f"synthetic: fault {fault.name!r}@reps: a hold has no reps; drop the @ part"
            )
        if plan.last is not None and plan.last > reps and not holds_only:
            raise UserError(
                f"synthetic: fault {fault.name!r}@{plan.first}-{plan.last} goes past reps={reps}"
            )

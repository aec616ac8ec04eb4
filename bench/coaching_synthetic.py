"""The synthetic half of `bench/coaching.py`: rendered athletes with exact
truth (`SyntheticSource`), each exercise clean and each fault the renderer
injects once, run through `Coach` in-process on cached joints
(`bench/clip_joints.py`).

Rep counts (full and partial, against the truth's reps without and with
`partial_range`), and fault detection per rep: recall = injected faults
flagged on their rep / injected, precision = flagged faults that were
injected / flagged (a partial rep counts as flagging `partial_range`; on a
plank, faults are per hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.clip_joints import ClipJoints, synthetic_joints
from bench.plain_counter import plain_count
from repcoach.stages.coaching import Coach

SYNTHETIC = (
    "squat,reps=4,view=side,seed=1",
    "squat,reps=4,view=front,seed=2",
    "pushup,reps=4,view=side,seed=3",
    "pushup,reps=4,view=front,seed=4",
    "lunge,reps=4,view=side,seed=5",
    "bicep_curl,reps=4,view=side,seed=6",
    "shoulder_press,reps=4,view=front,seed=7",
    "lateral_raise,reps=4,view=front,seed=8",
    "jumping_jack,reps=4,view=front,seed=9",
    "plank,view=side,seconds=5,seed=10",
    "squat,reps=4,view=side,fault=shallow_depth@2-3,seed=11",
    "squat,reps=4,view=side,fault=torso_lean@2,seed=12",
    "squat,reps=4,view=front,fault=knees_caving@1-2,seed=13",
    "pushup,reps=4,view=side,fault=hip_sag@2-3,seed=14",
    "pushup,reps=4,view=side,fault=hip_pike@1,seed=15",
    "pushup,reps=4,view=front,fault=elbow_flare@2-3,seed=16",
    "bicep_curl,reps=4,view=side,fault=elbow_swing@1-3,seed=17",
    "lateral_raise,reps=4,view=front,fault=partial_range@2,seed=18",
    "lunge,reps=4,view=side,fault=knee_past_toes@2-3,seed=19",
    "plank,view=side,seconds=5,fault=hip_sag,seed=20",
    "plank,view=side,seconds=5,fault=hip_pike,seed=21",
    "pushup,reps=4,view=side,fault=partial_range@3,seed=22",
    "squat,reps=4,view=side,fault=heels_lifting@2,seed=23",
    "shoulder_press,reps=4,view=front,fault=no_lockout@2-3,seed=24",
    "lateral_raise,reps=4,view=front,fault=arms_low@1-2,seed=25",
    "lateral_raise,reps=4,view=front,fault=shrug@3,seed=26",
    "jumping_jack,reps=4,view=front,fault=arms_not_overhead@2-3,seed=27",
    "jumping_jack,reps=4,view=front,fault=feet_not_apart@1+feet_not_apart@4,seed=28",
)

# Other seeds and fault mixes (`--more`), added after thresholds were set on
# SYNTHETIC; three fixes came from them (front-view squat counting on hip
# height, the counter's running median, no feet rule on partial jacks), so
# they are a second look, not a clean held-out set. The last three were added
# with the no_lockout, arms_low, arms_not_overhead and feet_not_apart faults.
MORE = (
    "pushup,reps=4,view=front,fault=elbow_flare@1+elbow_flare@4,seed=31",
    "pushup,reps=4,view=front,seed=32",
    "lunge,reps=4,view=side,fault=knee_past_toes@1-2,seed=33",
    "lunge,reps=4,view=side,seed=34",
    "bicep_curl,reps=4,view=side,fault=partial_range@2,seed=36",
    "squat,reps=4,view=front,fault=shallow_depth@1,seed=37",
    "jumping_jack,reps=5,view=front,fault=partial_range@3,seed=38",
    "shoulder_press,reps=4,view=front,fault=partial_range@1,seed=39",
    "pushup,reps=4,view=side,fault=hip_sag@1+hip_pike@3,seed=40",
    "plank,view=side,seconds=6,seed=41",
    "squat,reps=4,view=side,fault=torso_lean@3-4,seed=42",
    "shoulder_press,reps=4,view=front,fault=no_lockout@4,seed=43",
    "lateral_raise,reps=4,view=front,fault=arms_low@3,seed=44",
    "jumping_jack,reps=4,view=front,fault=arms_not_overhead@1+feet_not_apart@3,seed=45",
)

# Filmed from behind (the rear-view shoulder press was called a
# push-up; a rendered rear-view squat was called a lunge until the hips'
# split was measured in world coordinates). Run with the main set.
REAR = (
    "squat,reps=4,view=back,seed=50",
    "shoulder_press,reps=4,view=back,seed=53",
    "lateral_raise,reps=4,view=back,seed=54",
    "jumping_jack,reps=4,view=back,seed=55",
    "shoulder_press,reps=5,view=back,fault=no_lockout@2,seed=71",
    "squat,reps=4,view=back,fault=knees_caving@2,seed=72",
    "lateral_raise,reps=4,view=back,fault=arms_low@3,seed=73",
    "squat,reps=3,view=back,extra=walker,seed=75",
)


# Filmed by a camera up on a wall, 35 degrees down (where gym cameras hang).
# From there BlazePose reads locked arms and legs short of the rest the
# exercise files expect; the counter learns each person's own rest.
WALL = (
    "squat,reps=4,view=side,seed=41,elevation=35",
    "squat,reps=4,view=front,seed=42,elevation=35",
    "squat,reps=4,view=back,seed=43,elevation=35",
    "lunge,reps=4,view=side,seed=44,elevation=35",
    "pushup,reps=4,view=side,seed=46,elevation=35",
    "pushup,reps=4,view=front,seed=47,elevation=35",
    "bicep_curl,reps=4,view=side,seed=48,elevation=35",
    "bicep_curl,reps=4,view=front,seed=49,elevation=35",
    "shoulder_press,reps=4,view=front,seed=50,elevation=35",
    "lateral_raise,reps=4,view=front,seed=51,elevation=35",
    "jumping_jack,reps=4,view=front,seed=52,elevation=35",
    "squat,reps=4,view=side,extra=bystander,seed=53,elevation=35",
)


@dataclass
class Outcome:
    reps: int = 0
    partial: int = 0
    log: list[dict] = field(default_factory=list)


def coach_clip(clip: ClipJoints, exercise: str) -> Outcome:
    """The coach over a clip; the person with the most reps is reported."""
    coach = Coach(exercise)
    for packet in clip.packets():
        coach.process(packet)
    coach.end(clip.eos())
    people = coach.people()
    if not people:
        return Outcome()
    best = max(people, key=lambda p: (p.reps, p.partial_reps))
    return Outcome(best.reps, best.partial_reps, coach.rep_log()[best.track_id])


def auto_clip(clip: ClipJoints) -> tuple[str, int, int]:
    """`--exercise auto`: what the coach recognised for the person with the
    most reps, and how many reps and partial reps it counted."""
    coach = Coach("auto")
    for packet in clip.packets():
        coach.process(packet)
    coach.end(clip.eos())
    people = [p for p in coach.people() if p.exercise]
    if not people:
        return "-", 0, 0
    best = max(people, key=lambda p: p.reps)
    return best.exercise or "-", best.reps, best.partial_reps


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, truth: set[str], found: set[str]) -> None:
        self.tp += len(truth & found)
        self.fp += len(found - truth)
        self.fn += len(truth - found)

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0


def synthetic(specs: tuple[str, ...]) -> dict:
    """Prints one line per spec and the totals; returns the totals."""
    print("\nSynthetic athletes (BlazePose on rendered frames):")
    print(
        f"{'spec':52s} {'truth':>7s} {'plain':>5s} {'coach':>7s}  "
        f"{'injected (rep: fault)':26s} {'flagged':26s} tp fp fn"
    )
    total = Tally()
    exact = auto_exact = 0
    for spec in specs:
        clip, truth = synthetic_joints(spec)
        person = truth["people"][0]
        exercise = person["exercise"]
        outcome = coach_clip(clip, exercise)
        tally = Tally()
        if person["hold"]:
            found = {f for r in outcome.log for f in r["faults"]}
            tally.add(set(person["hold_faults"]), found)
            holds = [r for r in outcome.log if "hold" in r]
            ok = len(holds) == 1
            counts = f"{len(holds)} hold" if holds else "no hold"
            shown_truth, shown_found = "1 hold", counts
            injected = ",".join(person["hold_faults"]) or "-"
            flagged = ",".join(sorted(found)) or "-"
            plain = "-"
        else:
            reps = person["reps"]
            full = sum("partial_range" not in r["faults"] for r in reps)
            partial = len(reps) - full
            ok = outcome.reps == full and outcome.partial == partial
            shown_truth, shown_found = f"{full}+{partial}p", f"{outcome.reps}+{outcome.partial}p"
            injected_parts, flagged_parts = [], []
            for rep in reps:
                detected = [
                    r
                    for r in outcome.log
                    if rep["start_frame"] - 3 <= r["bottom_frame"] <= rep["end_frame"] + 3
                ]
                found = set()
                for r in detected:
                    found |= set(r["faults"]) | ({"partial_range"} if r["partial"] else set())
                tally.add(set(rep["faults"]), found)
                if rep["faults"]:
                    injected_parts.append(f"{rep['index']}:{'+'.join(rep['faults'])}")
                if found:
                    flagged_parts.append(f"{rep['index']}:{'+'.join(sorted(found))}")
            matched = {
                id(r)
                for rep in reps
                for r in outcome.log
                if rep["start_frame"] - 3 <= r["bottom_frame"] <= rep["end_frame"] + 3
            }
            for r in outcome.log:  # a rep the truth does not have
                if id(r) not in matched:
                    tally.fp += len(r["faults"]) + bool(r["partial"])
            injected = ",".join(injected_parts) or "-"
            flagged = ",".join(flagged_parts) or "-"
            plain_reps = plain_count(clip, exercise)
            plain = "-" if plain_reps is None else str(plain_reps)
        exact += ok
        auto, auto_reps, _ = auto_clip(clip)
        want = (
            0 if person["hold"] else sum("partial_range" not in r["faults"] for r in person["reps"])
        )
        auto_exact += auto == exercise and auto_reps == want
        total.tp, total.fp, total.fn = (
            total.tp + tally.tp,
            total.fp + tally.fp,
            total.fn + tally.fn,
        )
        print(
            f"{spec[:52]:52s} {shown_truth:>7s} {plain:>5s} {shown_found:>7s}  "
            f"{injected[:26]:26s} {flagged[:26]:26s} {tally.tp:2d} {tally.fp:2d} {tally.fn:2d}"
            f"{'' if ok else '  <- count'}"
        )
    n = len(specs)
    print(
        f"exact counts {exact}/{n}; faults: recall {total.recall:.2f}, "
        f"precision {total.precision:.2f} (tp {total.tp}, fp {total.fp}, fn {total.fn})"
    )
    print(f"auto: right exercise and exact reps {auto_exact}/{n}")
    return {
        "clips": n,
        "exact": exact,
        "auto_exact": auto_exact,
        "fault_recall": round(total.recall, 3),
        "fault_precision": round(total.precision, 3),
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
    }

"""The rendered gym floor of `bench/coaching.py`: athletes beside people who
do not exercise (a bystander standing, a walker crossing behind, rests
between reps, a mirror twin), each with exact truth, run through `Coach`
in-process on cached joints (`bench/clip_joints.py`), with the exercise
given and with `auto`.

Every rep, partial rep and cue the coach gives is attributed to the rendered
person it was about: over the rep's frames (a cue: its frame; a cue a rep
earned: that rep's person) the joints of the coached track, whichever ids it
had, lie nearest that person's torso in the truth. Per clip: each athlete's reps and partial reps against the truth
(auto: and the exercise named), reps, partial reps and cues given to people
who do not exercise, and the people the coach kept against the people
rendered (a mirror twin is rendered, and shown as a reflection).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bench.clip_joints import ClipJoints, synthetic_joints
from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import EventKind, FeedbackEvent
from repcoach.stages.coaching import Coach

# One case per way of being in view without training, across exercises and
# views; the last is the pipeline test's gym floor (tests/launch/test_gym_floor.py).
FLOOR = (
    "squat,reps=4,view=side,extra=bystander,seed=51",
    "pushup,reps=4,view=side,extra=walker,seed=52",
    "bicep_curl,reps=4,view=side,rest=2,seed=53",
    "lateral_raise,reps=4,view=front,mirror=1,seed=54",
    "lunge,reps=4,view=side,extra=bystander+walker,seed=55",
    "jumping_jack,reps=4,view=front,extra=walker,rest=3@2,seed=56",
    "shoulder_press,reps=4,view=front,extra=bystander,mirror=1,seed=57",
    "squat+bicep_curl,reps=3,extra=walker,seed=58",
    "squat,reps=3,extra=bystander+walker,rest=2@1,mirror=1,seed=3",
)
TORSO = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP]
COUNTED = (EventKind.REP, EventKind.PARTIAL_REP)


@dataclass
class Given:
    """What the coach gave one rendered person."""

    reps: int = 0
    partial: int = 0
    cues: int = 0
    exercise: str = ""


def _nearest(clip: ClipJoints, centres: list, tracks: set[int], frames: range) -> int | None:
    """The rendered person whose torso lies nearest the joints of `tracks`
    in most of `frames` (None when those tracks are in none of them)."""
    votes: Counter[int] = Counter()
    for f in frames:
        if not 0 <= f < len(clip.frames):
            continue
        for joints in clip.frames[f]:
            if joints.track_id not in tracks:
                continue
            here = joints.image_xy[TORSO].astype(np.float64).mean(axis=0)
            gaps = {
                person: float(np.hypot(*(here - np.asarray(track[f]))))
                for person, track in enumerate(centres)
                if track[f] is not None
            }
            if gaps:
                votes[min(gaps, key=gaps.__getitem__)] += 1
    return votes.most_common(1)[0][0] if votes else None


def _who(clip: ClipJoints, centres: list, event: FeedbackEvent) -> int | None:
    tracks = {event.track_id, *event.data.get("tracks", ())}
    start = event.data.get("start_frame", event.seq)
    end = event.data.get("end_frame", event.seq)
    return _nearest(clip, centres, tracks, range(start, end + 1))


def attribute(clip: ClipJoints, centres: list, events: list[FeedbackEvent]) -> list[Given]:
    """What each rendered person was given, from the coach's events."""
    given = [Given() for _ in centres]
    rep_of: dict[int, int | None] = {}  # who each track's last rep was about
    for event in events:
        if event.kind not in (*COUNTED, EventKind.CUE):
            continue
        if event.kind == EventKind.CUE and "rep" in event.data:
            person = rep_of.get(event.track_id)  # the cue a rep earned: that rep's person
        else:
            person = _who(clip, centres, event)
        if event.kind in COUNTED:
            rep_of[event.track_id] = person
        if person is None:
            continue
        record = given[person]
        if event.kind == EventKind.CUE:
            record.cues += 1
        elif event.kind == EventKind.REP:
            record.reps += 1
        else:
            record.partial += 1
        record.exercise = record.exercise or event.data.get("exercise", "")
    return given


def coach_floor(clip: ClipJoints, truth: dict, exercise: str) -> tuple[list[Given], int]:
    """The coach over a rendered floor: what each rendered person was given,
    and how many people the coach kept."""
    coach = Coach(exercise)
    events: list[FeedbackEvent] = []
    for packet in clip.packets():
        events.extend(coach.process(packet).events)
    end = coach.end(clip.eos())
    events.extend(end.events if end is not None else ())
    return attribute(clip, truth["centres"], events), len(coach.people())


def _truth_count(person: dict) -> tuple[int, int]:
    full = sum("partial_range" not in r["faults"] for r in person["reps"])
    return full, len(person["reps"]) - full


def floor(specs: tuple[str, ...]) -> dict:
    """Prints one line per spec and the totals; returns the totals."""
    print("\nGym floor, rendered (athletes among people who do not exercise; BlazePose):")
    print(
        f"{'spec':60s} {'truth':>9s} {'given':>9s} {'auto':>9s}  "
        f"{'to others (given/auto)':24s} {'people':>6s}"
    )
    exact = auto_exact = others_total = 0
    for spec in specs:
        clip, truth = synthetic_joints(spec)
        people = truth["people"]
        athletes = [p for p in people if p["exercising"]]
        runs = {}
        for mode in ("given", "auto"):
            exercise = athletes[0]["exercise"] if mode == "given" else "auto"
            if mode == "given" and len({a["exercise"] for a in athletes}) > 1:
                exercise = "auto"  # athletes on different exercises: only auto can coach both
            runs[mode] = coach_floor(clip, truth, exercise)
        counts = {}
        for mode, (given, kept) in runs.items():
            ok = all(
                (given[a["person"]].reps, given[a["person"]].partial) == _truth_count(a)
                and (mode == "given" or given[a["person"]].exercise == a["exercise"])
                for a in athletes
            )
            idle = [given[p["person"]] for p in people if not p["exercising"]]
            to_others = sum(g.reps + g.partial + g.cues for g in idle)
            counts[mode] = (ok, to_others, kept, given)
        exact += counts["given"][0]
        auto_exact += counts["auto"][0]
        others_total += counts["given"][1] + counts["auto"][1]

        def shown(given: list[Given]) -> str:
            return ",".join(f"{given[a['person']].reps}+{given[a['person']].partial}p" for a in athletes)

        truth_shown = ",".join(f"{f}+{p}p" for f, p in map(_truth_count, athletes))
        missed = [mode for mode in ("given", "auto") if not counts[mode][0]]
        print(
            f"{spec[:60]:60s} {truth_shown:>9s} {shown(counts['given'][3]):>9s} "
            f"{shown(counts['auto'][3]):>9s}  "
            f"{counts['given'][1]:>11d}/{counts['auto'][1]:<12d} "
            f"{counts['given'][2]:>2d}/{len(people)}"
            f"{'  <- ' + ','.join(missed) if missed else ''}"
        )
    n = len(specs)
    print(
        f"gym floor: athletes exact {exact}/{n} (exercise given), {auto_exact}/{n} (auto, and "
        f"the exercise named); reps, partial reps and cues to people not exercising: "
        f"{others_total}"
    )
    return {"clips": n, "exact": exact, "auto_exact": auto_exact, "to_others": others_total}

"""`--exercise auto`: which exercise a person is doing, from which joint
angles move most and how the body is held.

A deliberately simple decision over the last few seconds: the spread (5th
to 95th percentile) of a handful of 2D measures, and the torso's lean in
metric world coordinates (depth counts: a push-up filmed from the front
looks upright on screen; the screen must agree, see `LYING_DEG`). Lying
(torso near horizontal): push-up if the elbows move, plank if nothing does.
Standing: jumping jack if arms and feet both swing, squat or lunge if the
knees bend (lunge when the two hips are far apart in flexion, as in a split
stance, where both are clearly seen; measured in world coordinates, since on
screen a thigh pointing at or away from the camera folds), shoulder press
or lateral raise if both arms rise (press when the elbows also straighten;
one arm rising is a gesture), pec deck fly if the upper arms are held up
and the hands swing together and apart, bicep curl if only the elbows move
and the upper arms hang (someone talking with their hands bends the elbows
too, arms held out in front). An answer must hold for `STABLE_S` before it
is given.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import PersonJoints
from repcoach.stages.coaching.measures import MIN_VISIBILITY, SIDES, read, view_ratio
from repcoach.stages.coaching.spec import Measure, parse_joint

WINDOW_S = 4.0
STABLE_S = 1.0
EVALUATE_EVERY_S = 0.2  # the window changes slowly; judging it every frame costs ~1 ms
MIN_VALID = 0.5  # share of the window a measure must be readable in
# Lying needs the screen to agree with the world coordinates: the torso tilted
# on screen, or foreshortened (shorter than the shoulders are wide: a
# push-up filmed head-on; standing people measure 0.6-0.9). BlazePose's
# depth alone has tilted a rear-view shoulder press to "lying".
LYING_DEG = 50.0
FORESHORTENED = 1.2
# The hips' flexion is compared only where both sides are clearly seen: side
# on, the far hip is hidden and BlazePose guesses it, and a guessed hip made a
# side-view squat look like a split stance. It is compared in world
# coordinates: filmed from behind, a squatter's thighs point away from the
# camera and the screen angles of the two hips differed by up to 53 degrees
# (a rendered squat called a lunge); in the world they differ by under 30 in
# squats and reach 60-71 in lunges (rendered and real).
SPLIT_VISIBILITY = 0.8
SPLIT_SHARE = 0.3  # share of the window both sides must be clearly seen in
MOVING_DEG = 20.0  # a spread above this in any angle: the person is moving
# The upper arm's angle from the torso (median over the window): a curl's
# hangs (10-27 degrees on the shared curls, a swinging set included); a pec
# deck's is held up, and so is that of a coach gesturing beside one (55-81).
ARMS_HANG_DEG = 45.0
# A pec deck fly brings the hands from wide apart to together in front of the
# chest: the gap between the wrists swings by more than this many shoulder
# widths (0.7 to 2 on the shared pec deck; a curl's hands 0.3 to 0.6).
HANDS_SWING = 0.6


def _measure(name: str, kind: str, joints: tuple[str, ...], side: str, per=None) -> Measure:
    refs = tuple(parse_joint(j) for j in joints)
    per_refs = tuple(parse_joint(j) for j in per) if per else None
    return Measure(name, kind, refs, side, per_refs)  # type: ignore[arg-type]


FEATURES = (
    _measure("torso", "tilt", ("shoulder", "hip"), "mean"),
    _measure("knee", "angle", ("hip", "knee", "ankle"), "min"),
    _measure("elbow", "angle", ("shoulder", "elbow", "wrist"), "mean"),
    _measure("feet", "spread", ("left_ankle", "right_ankle"), "none", ("mid_shoulder", "mid_hip")),
    _measure(
        "hands",
        "spread",
        ("left_wrist", "right_wrist"),
        "none",
        ("left_shoulder", "right_shoulder"),
    ),
)

# Each upper arm's angle from the torso, read once a frame: "arm" is the
# higher one seen, "arms_both" the lower, read only where both are. A press or
# a raise lifts both arms, so the lower must rise too; a coach sweeping one
# arm through a fly beside the athlete, the other hanging or out of view,
# lifts only one.
_ARM_EACH_SIDE = tuple(
    _measure("arm", "angle", ("hip", "shoulder", "elbow"), side) for side in SIDES
)

_TORSO = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP]
_SPLIT_MARKS = [*_TORSO, L.LEFT_KNEE, L.RIGHT_KNEE]
_UP = np.array([0.0, -1.0, 0.0])  # BlazePose's world y points down, as the image's


def torso_lean_3d(joints: PersonJoints) -> float:
    """The torso's angle from upright in world coordinates, degrees (0
    standing, 90 lying); NaN unless shoulders and hips are visible. Measured
    on the shared clips: median 4-21 standing, 70-85 in push-ups, the
    front-view one included (5 degrees on screen)."""
    if float(joints.visibility[_TORSO].min()) < MIN_VISIBILITY:
        return float("nan")
    world = joints.world_xyz.astype(np.float64)
    shoulders, hips = world[_TORSO[:2]].mean(axis=0), world[_TORSO[2:]].mean(axis=0)
    return joint_angle(shoulders, hips, hips + _UP)


def hip_split_3d(joints: PersonJoints) -> float:
    """How differently the two hips are flexed (shoulder-hip-knee, degrees,
    world coordinates); NaN unless both sides are clearly seen."""
    if joints.visibility[_SPLIT_MARKS].min() < SPLIT_VISIBILITY:
        return float("nan")
    world = joints.world_xyz.astype(np.float64)
    left, right = (
        joint_angle(world[shoulder], world[hip], world[knee])
        for shoulder, hip, knee in (
            (L.LEFT_SHOULDER, L.LEFT_HIP, L.LEFT_KNEE),
            (L.RIGHT_SHOULDER, L.RIGHT_HIP, L.RIGHT_KNEE),
        )
    )
    return abs(left - right)


class Recognizer:
    """Feed one person's joints frame by frame; `update` returns an exercise
    name once it is sure, else None."""

    def __init__(self, known: tuple[str, ...]):
        self.known = set(known)
        self._frames: deque[tuple[float, dict[str, float]]] = deque()
        self._candidate: str | None = None
        self._since = 0.0
        self._evaluated = -float("inf")

    def update(self, joints: PersonJoints, pts: float) -> str | None:
        values = {m.name: read(m, joints, "left") for m in FEATURES}
        values["torso_3d"] = torso_lean_3d(joints)
        values["ratio"] = view_ratio(joints)
        values["split"] = hip_split_3d(joints)
        left, right = (read(m, joints, "left") for m in _ARM_EACH_SIDE)
        values["arm"] = float(np.fmax(left, right))  # the side read, when only one is
        values["arms_both"] = float(np.minimum(left, right))  # NaN unless both are read
        self._frames.append((pts, values))
        while self._frames and pts - self._frames[0][0] > WINDOW_S:
            self._frames.popleft()
        if pts - self._evaluated < EVALUATE_EVERY_S:
            return None
        self._evaluated = pts
        guess = self.guess()
        if guess != self._candidate:
            self._candidate, self._since = guess, pts
            return None
        if guess is not None and pts - self._since >= STABLE_S and guess in self.known:
            return guess
        return None

    def moving(self) -> bool:
        """Whether anything the recogniser watches moves (else the person
        stands or sits still)."""
        return any(self._spread(m) > MOVING_DEG for m in ("knee", "arm", "elbow", "torso"))

    def _series(self, name: str) -> np.ndarray | None:
        values = np.array([v[name] for _, v in self._frames], dtype=np.float64)
        valid = values[~np.isnan(values)]
        return valid if valid.size >= MIN_VALID * max(len(values), 1) and valid.size else None

    def _median(self, name: str) -> float:
        """The measure's median over the window; NaN if too rarely read."""
        values = self._series(name)
        return float("nan") if values is None else float(np.median(values))

    def _spread(self, name: str) -> float:
        values = self._series(name)
        if values is None:
            return 0.0
        low, high = np.percentile(values, (5, 95))
        return float(high - low)

    def guess(self) -> str | None:
        """The exercise the current window looks like, or None."""
        if not self._frames or self._frames[-1][0] - self._frames[0][0] < 1.5:
            return None
        torso_3d, torso_2d = self._series("torso_3d"), self._series("torso")
        if torso_3d is None and torso_2d is None:
            return None
        ratio = self._series("ratio")
        on_screen = (torso_2d is not None and float(np.median(torso_2d)) > LYING_DEG) or (
            ratio is not None and float(np.median(ratio)) > FORESHORTENED
        )
        lying = on_screen and (torso_3d is None or float(np.median(torso_3d)) > LYING_DEG)
        elbow, arm, knee = self._spread("elbow"), self._spread("arm"), self._spread("knee")
        if lying:
            if elbow > 35:
                return "pushup"
            held = self._frames[-1][0] - self._frames[0][0] >= 3.0
            return "plank" if held and elbow < 15 and knee < 20 else None
        if arm > 60 and self._spread("feet") > 0.6:
            return "jumping_jack"
        if knee > 45:
            return "lunge" if self._hip_split() > 40 else "squat"
        if arm > 40:
            if self._spread("arms_both") <= 40:
                return None  # one arm rises: a gesture (or the other arm is not seen)
            return "shoulder_press" if elbow > 45 else "lateral_raise"
        arms_up = self._median("arm") >= ARMS_HANG_DEG  # False when unread (hips out of view)
        if arms_up and self._spread("hands") > HANDS_SWING:
            return "pec_deck_fly"
        if elbow > 50 and not arms_up:
            return "bicep_curl"
        return None

    def _hip_split(self) -> float:
        """How far apart the two hips' flexion gets in the window (90th
        percentile: a split stance holds it, a one-frame glitch does not);
        0 unless both sides were clearly seen in `SPLIT_SHARE` of it."""
        diffs = np.array([v["split"] for _, v in self._frames])
        seen = diffs[~np.isnan(diffs)]
        if seen.size < SPLIT_SHARE * len(diffs) or not seen.size:
            return 0.0
        return float(np.percentile(seen, 90))

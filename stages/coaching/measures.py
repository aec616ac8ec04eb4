"""Reading an exercise's measures from one frame's joints, and estimating
which way the person faces the camera.

Everything here is 2D, in image pixels (y grows downwards): an angle is only
meaningful in the plane the camera sees, which is why rules name the views
they hold in.
"""

from __future__ import annotations

import math

import numpy as np

from repcoach.common.geometry import joint_angle, segment_tilt
from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import PersonJoints
from repcoach.stages.coaching.spec import JointRef, Measure

MIN_VISIBILITY = 0.5
NAN = float("nan")
SIDES = ("left", "right")


def point(joints: PersonJoints, ref: JointRef, side: str) -> tuple[np.ndarray, float]:
    """Where `ref` is for a measure reading `side`, and how visible it is
    (the least visible of the landmarks it averages)."""
    marks = ref.landmarks(side)
    xy = joints.image_xy[list(marks)].astype(np.float64).mean(axis=0)
    return xy, float(min(joints.visibility[m] for m in marks))


def facing(joints: PersonJoints) -> float:
    """+1 if the feet point to image right, -1 to the left, 0 if unknown."""
    total = 0.0
    for side in ("LEFT", "RIGHT"):
        heel, toe = L[f"{side}_HEEL"], L[f"{side}_FOOT_INDEX"]
        if min(joints.visibility[heel], joints.visibility[toe]) >= MIN_VISIBILITY:
            total += float(joints.image_xy[toe, 0] - joints.image_xy[heel, 0])
    return float(np.sign(total))


def _length(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))


def _value(measure: Measure, joints: PersonJoints, side: str) -> float:
    """The measure on one side; NaN when a joint it needs is not visible."""
    located = [point(joints, ref, side) for ref in measure.joints + (measure.per or ())]
    if min(vis for _, vis in located) < MIN_VISIBILITY:
        return NAN
    p = [xy for xy, _ in located]
    kind = measure.kind
    if kind == "angle":
        return joint_angle(p[0], p[1], p[2])
    if kind == "tilt":
        return segment_tilt(p[0], p[1])
    if kind == "line_offset":
        ends = p[2] - p[0]
        span = _length(p[2], p[0])
        if span < 1e-6:
            return NAN
        normal = np.array([-ends[1], ends[0]]) / span
        if normal[1] < 0:  # measure towards image bottom (the floor)
            normal = -normal
        return float(np.dot(p[1] - p[0], normal) / span)
    per = _length(p[-2], p[-1])
    if per < 1e-6:
        return NAN
    if kind == "height":
        return float(p[1][1] - p[0][1]) / per
    if kind == "spread":
        return abs(float(p[0][0] - p[1][0])) / per
    if kind == "ahead":
        direction = facing(joints)
        return NAN if direction == 0 else direction * float(p[0][0] - p[1][0]) / per
    raise ValueError(f"unknown measure kind {kind!r}")


def lead_side(joints: PersonJoints) -> str | None:
    """The side whose foot is further forward (the front leg of a lunge)."""
    direction = facing(joints)
    ankles = (L.LEFT_ANKLE, L.RIGHT_ANKLE)
    if direction == 0 or min(joints.visibility[a] for a in ankles) < MIN_VISIBILITY:
        return None
    left, right = (float(joints.image_xy[a, 0]) * direction for a in ankles)
    return "left" if left > right else "right"


def read(measure: Measure, joints: PersonJoints, near: str) -> float:
    """The measure's value in this frame (NaN if it cannot be read).

    `near` is the side facing the camera, used by `side: near` measures."""
    mode = measure.side
    if mode in SIDES:
        return _value(measure, joints, mode)
    if mode in ("near", "none"):
        return _value(measure, joints, near)
    if mode == "lead":
        side = lead_side(joints)
        return NAN if side is None else _value(measure, joints, side)
    values = [v for v in (_value(measure, joints, s) for s in SIDES) if not math.isnan(v)]
    if not values:
        return NAN
    if mode == "mean":
        return float(np.mean(values))
    return float(min(values) if mode == "min" else max(values))


def side_visibility(joints: PersonJoints, names: tuple[str, ...]) -> dict[str, float]:
    """Mean visibility of the side-free joints `names` on each side."""
    out = {}
    for side in SIDES:
        marks = [L[f"{side.upper()}_{name.upper()}"] for name in names]
        out[side] = float(np.mean(joints.visibility[marks])) if marks else 0.0
    return out


def view_ratio(joints: PersonJoints) -> float:
    """Shoulder width over torso length in the image: near 0 side-on, about
    0.6-0.9 facing the camera standing, larger head-on to a push-up (the torso
    is foreshortened). 0 when one side's shoulder and hip are visible and the
    other side's are hidden (the body hides them: side-on); NaN when unknown."""
    vis = joints.visibility
    left = min(vis[L.LEFT_SHOULDER], vis[L.LEFT_HIP]) >= MIN_VISIBILITY
    right = min(vis[L.RIGHT_SHOULDER], vis[L.RIGHT_HIP]) >= MIN_VISIBILITY
    if left != right:
        hidden = (L.RIGHT_SHOULDER, L.RIGHT_HIP) if left else (L.LEFT_SHOULDER, L.LEFT_HIP)
        return 0.0 if max(vis[m] for m in hidden) < MIN_VISIBILITY else NAN
    if not left:
        return NAN
    xy = joints.image_xy.astype(np.float64)
    shoulders = _length(xy[L.LEFT_SHOULDER], xy[L.RIGHT_SHOULDER])
    torso = _length(
        (xy[L.LEFT_SHOULDER] + xy[L.RIGHT_SHOULDER]) / 2, (xy[L.LEFT_HIP] + xy[L.RIGHT_HIP]) / 2
    )
    return shoulders / max(torso, 1e-6)

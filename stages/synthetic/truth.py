"""Ground truth of a rendered frame: the 33 BlazePose landmarks of every
athlete, which of them a camera could see, and the joint angles the coaching
rules use, measured on the projected 2D truth."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import NUM_LANDMARKS, Landmark
from repcoach.stages.synthetic.body import BodyShape
from repcoach.stages.synthetic.drawing import PARTS_PER_PERSON, Part, part_label
from repcoach.stages.synthetic.head import face_index, face_points
from repcoach.stages.synthetic.kinematics import SIDE_SIGN, Point, Skeleton

L = Landmark

# Angle name -> (a, vertex, c), measured with `joint_angle` on the 2D truth.
ANGLES: Mapping[str, tuple[Landmark, Landmark, Landmark]] = {
    f"{side}_{name}": tuple(L[f"{side.upper()}_{j}"] for j in joints)  # type: ignore[misc]
    for side in ("left", "right")
    for name, joints in (
        ("knee", ("HIP", "KNEE", "ANKLE")),
        ("hip", ("SHOULDER", "HIP", "KNEE")),
        ("elbow", ("SHOULDER", "ELBOW", "WRIST")),
        ("shoulder", ("HIP", "SHOULDER", "ELBOW")),
    )
}
ANGLE_NAMES = tuple(ANGLES)

_FACE = {
    L.NOSE: "nose",
    L.LEFT_EYE_INNER: "l_eye_inner",
    L.LEFT_EYE: "l_eye",
    L.LEFT_EYE_OUTER: "l_eye_outer",
    L.RIGHT_EYE_INNER: "r_eye_inner",
    L.RIGHT_EYE: "r_eye",
    L.RIGHT_EYE_OUTER: "r_eye_outer",
    L.LEFT_EAR: "l_ear",
    L.RIGHT_EAR: "r_ear",
    L.MOUTH_LEFT: "l_mouth",
    L.MOUTH_RIGHT: "r_mouth",
}
_BODY = {
    f"{side}_{name}": Point[f"{s}_{name}"]
    for side, s in (("LEFT", "L"), ("RIGHT", "R"))
    for name in ("SHOULDER", "ELBOW", "WRIST", "HIP", "KNEE", "ANKLE", "HEEL")
}
_BODY_POINTS = [(L[name], point) for name, point in _BODY.items()] + [
    (L.LEFT_FOOT_INDEX, Point.L_TOE),
    (L.RIGHT_FOOT_INDEX, Point.R_TOE),
]

# Parts a landmark belongs to: when one of them is the front-most thing drawn
# at the landmark's pixel, the landmark is visible. Torso, pelvis and head
# count only when the landmark is on their camera side (a far hip is hidden
# by the pelvis in a side view, a near one is not).
_CENTRAL = {Part.HEAD, Part.NECK, Part.SHIRT, Part.SHORTS}
_CENTRAL_TOLERANCE = 0.03  # metres


def _owners() -> dict[Landmark, tuple[Part, ...]]:
    owners: dict[Landmark, tuple[Part, ...]] = {lm: (Part.HEAD,) for lm in _FACE}
    for side, s in (("LEFT", "L"), ("RIGHT", "R")):
        part = {
            name: Part[f"{s}_{name}"]
            for name in ("UPPER_ARM", "FOREARM", "HAND", "THIGH", "SHIN", "FOOT")
        }
        owners[L[f"{side}_SHOULDER"]] = (part["UPPER_ARM"], Part.SHIRT)
        owners[L[f"{side}_ELBOW"]] = (part["UPPER_ARM"], part["FOREARM"])
        owners[L[f"{side}_WRIST"]] = (part["FOREARM"], part["HAND"])
        for finger in ("PINKY", "INDEX", "THUMB"):
            owners[L[f"{side}_{finger}"]] = (part["HAND"], part["FOREARM"])
        owners[L[f"{side}_HIP"]] = (part["THIGH"], Part.SHORTS, Part.SHIRT)
        owners[L[f"{side}_KNEE"]] = (part["THIGH"], part["SHIN"])
        owners[L[f"{side}_ANKLE"]] = (part["SHIN"], part["FOOT"])
        owners[L[f"{side}_HEEL"]] = (part["FOOT"], part["SHIN"])
        owners[L[f"{side}_FOOT_INDEX"]] = (part["FOOT"], part["SHIN"])
    return owners


_OWNERS = _owners()


# Who a rendered person is; only athletes exercise.
ROLES: Mapping[str, str] = {
    "athlete": "does the exercise: reps, rests and faults are in the truth",
    "bystander": "stands to one side and watches, swaying a little; no reps",
    "walker": "walks across the frame behind the athletes; no reps",
    "spotter": "stands right behind the first athlete, partly hidden, and watches; no reps",
    "mirror": "an athlete's reflection in a wall mirror, in sync; not a person, no reps",
}


def _mirror_swap() -> np.ndarray:
    """Landmark order with left and right exchanged."""
    names = [lm.name for lm in Landmark]
    swapped = [
        n.replace("LEFT", "\0").replace("RIGHT", "LEFT").replace("\0", "RIGHT") for n in names
    ]
    return np.array([Landmark[n] for n in swapped])


MIRROR_SWAP = _mirror_swap()


@dataclass(frozen=True)
class PersonTruth:
    """One person in one frame. The joints of a mirror twin are labelled as a
    pose model sees a person facing out of the mirror: left and right swapped."""

    person: int  # 0-based: athletes left to right, then extras as named, then the mirror
    exercise: str | None  # None for people who do not exercise
    view: str
    joints_xy: np.ndarray  # (33, 2) float pixels, BlazePose order
    visible: np.ndarray  # (33,) bool: inside the frame and not hidden by anything
    hidden_by: np.ndarray  # (33,) int8: index of another athlete covering the joint, else -1
    angles: Mapping[str, float]  # ANGLE_NAMES -> degrees (2D truth)
    rep: int  # rep in progress (1-based), 0 between reps, in a hold or not exercising
    role: str = "athlete"  # see ROLES

    def to_json(self) -> dict:
        return {
            "person": self.person,
            "role": self.role,
            "rep": self.rep,
            "joints_xy": np.round(self.joints_xy, 2).tolist(),
            "visible": self.visible.astype(int).tolist(),
            "hidden_by": self.hidden_by.tolist(),
            "angles": {k: _finite(v) for k, v in self.angles.items()},
        }


@dataclass(frozen=True)
class FrameTruth:
    frame_index: int
    people: tuple[PersonTruth, ...]

    def to_json(self) -> dict:
        return {"frame_index": self.frame_index, "people": [p.to_json() for p in self.people]}


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


_FACE_LANDMARKS = np.array(list(_FACE))
_FACE_SOURCES = np.array([face_index(name) for name in _FACE.values()])
_BODY_LANDMARKS = np.array([lm for lm, _ in _BODY_POINTS])
_BODY_SOURCES = np.array([point for _, point in _BODY_POINTS])
# Finger landmarks from the wrist: metres along the fist and towards the thumb side.
_FINGERS = (("INDEX", 0.085, 0.012), ("PINKY", 0.07, -0.028), ("THUMB", 0.04, 0.04))


def landmarks_3d(skeleton: Skeleton, body: BodyShape) -> np.ndarray:
    """World positions of the 33 landmarks: body joints directly, face points
    from the head, finger points from the wrist and the fist."""
    p = skeleton.points
    out = np.empty((NUM_LANDMARKS, 3))
    out[_FACE_LANDMARKS] = face_points(skeleton, body)[_FACE_SOURCES]
    out[_BODY_LANDMARKS] = p[_BODY_SOURCES]
    for side, s in (("LEFT", "l"), ("RIGHT", "r")):
        wrist = p[Point[f"{s.upper()}_WRIST"]]
        along = p[Point[f"{s.upper()}_KNUCKLE"]] - wrist
        along /= max(float(np.linalg.norm(along)), 1e-9)
        thumb_side = np.array([0.0, 0.0, SIDE_SIGN[s]]) - along * along[2] * SIDE_SIGN[s]
        thumb_side /= max(float(np.linalg.norm(thumb_side)), 1e-9)
        for finger, ahead, aside in _FINGERS:
            out[L[f"{side}_{finger}"]] = wrist + (along * ahead + thumb_side * aside) * body.size
    return out


def _owner_table() -> tuple[np.ndarray, np.ndarray]:
    """(33, parts) bool: part owns landmark; (parts,) bool: part is central."""
    owns = np.zeros((NUM_LANDMARKS, len(Part)), dtype=bool)
    for lm, parts in _OWNERS.items():
        owns[lm, list(parts)] = True
    central = np.zeros(len(Part), dtype=bool)
    central[list(_CENTRAL)] = True
    return owns, central


_OWNS, _IS_CENTRAL = _owner_table()


def visibility(
    xy: np.ndarray,
    near: np.ndarray,
    labels: np.ndarray,
    person: int,
    central_near: Mapping[Part, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Which landmarks are inside the frame and in front of whatever is drawn
    there, and which other athlete (index, else -1) covers each landmark."""
    h, w = labels.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    cols = np.clip(xy[:, 0].astype(np.int64), 0, w - 1)
    rows = np.clip(xy[:, 1].astype(np.int64), 0, h - 1)
    label = labels[rows, cols].astype(np.int64)
    part = label - part_label(person, Part.HEAD)
    own = (part >= 0) & (part < len(Part))
    part = np.where(own, part, 0)
    owner = _OWNS[np.arange(NUM_LANDMARKS), part] & own
    part_near = np.array([central_near.get(Part(p), 0.0) for p in range(len(Part))])[part]
    in_front = ~_IS_CENTRAL[part] | (near >= part_near - _CENTRAL_TOLERANCE)
    visible = inside & ((label == 0) | (owner & in_front))
    other = inside & (label > 0) & ~own
    hidden_by = np.where(other, (label - 1) // PARTS_PER_PERSON, -1).astype(np.int8)
    return visible, hidden_by


def angles(xy: np.ndarray) -> dict[str, float]:
    return {name: joint_angle(xy[a], xy[b], xy[c]) for name, (a, b, c) in ANGLES.items()}

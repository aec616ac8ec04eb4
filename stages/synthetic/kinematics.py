"""From pose parameters to 3D joint positions: forward kinematics, then the
constraints that keep a body on the floor (anchors) and hands or feet still
(pins, solved with two-link IK), then knee/elbow swivels.

World frame of one athlete: X forward, Y up, Z to the athlete's right, metres,
floor at Y=0, feet (or toes) around X=0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from repcoach.stages.synthetic.body import SIDES, BodyShape, key_index


class Point(IntEnum):
    """Body points the renderer and the landmark truth are built from."""

    PELVIS = 0
    NECK = 1  # shoulder centre
    SKULL = 2  # base of the skull
    HEAD = 3  # head ellipsoid centre
    L_SHOULDER = 4
    R_SHOULDER = 5
    L_ELBOW = 6
    R_ELBOW = 7
    L_WRIST = 8
    R_WRIST = 9
    L_KNUCKLE = 10
    R_KNUCKLE = 11
    L_HIP = 12
    R_HIP = 13
    L_KNEE = 14
    R_KNEE = 15
    L_ANKLE = 16
    R_ANKLE = 17
    L_HEEL = 18
    R_HEEL = 19
    L_TOE = 20
    R_TOE = 21


NUM_POINTS = len(Point)
SIDE_SIGN = {"l": -1.0, "r": 1.0}  # +Z is the athlete's right
SHOE_RADIUS = 0.034  # the sole sits this far below the heel/toe points


# Absolute segment directions read per side (see body.POSE_KEYS).
_LIMB_NAMES = (
    "upperarm_flex",
    "upperarm_abd",
    "forearm_flex",
    "forearm_abd",
    "thigh_flex",
    "thigh_abd",
    "shin_flex",
    "shin_abd",
    "foot_pitch",
    "toe_out",
)


def _side_point(name: str, side: str) -> Point:
    return Point[f"{side.upper()}_{name}"]


@dataclass(frozen=True)
class Pin:
    """Keeps a limb's end fixed in the world while the body moves (hands of a
    push-up, back foot of a lunge). The target is set from the top pose: `dx`
    metres forward of the limb's root joint, `height` above the floor, `dz`
    metres further out to the side."""

    limb: str  # "arm" or "leg"
    side: str  # "l" or "r"
    dx: float
    height: float
    dz: float = 0.0
    bend: tuple[float, float, float] = (0.0, -1.0, 0.0)  # where the elbow/knee points


@dataclass(frozen=True)
class Rig:
    """How an exercise holds the body in place."""

    anchor: str = "feet"  # "feet", "toes", "l_foot" or "r_foot"
    pins: tuple[Pin, ...] = ()
    hands_flat: bool = False  # hands lie flat on the floor pointing forward


@dataclass(frozen=True)
class Skeleton:
    """One athlete's body points in the world frame and the head's axes
    (rows: forward, up, right)."""

    points: np.ndarray  # (NUM_POINTS, 3)
    head_axes: np.ndarray  # (3, 3)


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _limb_dir(flex: float, abd: float, sign: float) -> np.ndarray:
    f, a = math.radians(flex), math.radians(abd)
    return np.array([math.cos(a) * math.sin(f), -math.cos(a) * math.cos(f), sign * math.sin(a)])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def two_link(root, target, a: float, b: float, bend) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joint of a two-segment limb reaching for `target`, the
    middle joint bent towards `bend`. An unreachable target is approached
    along the straight line."""
    offset = target - root
    dist = float(np.linalg.norm(offset))
    axis = offset / dist if dist > 1e-9 else np.array([0.0, -1.0, 0.0])
    dist = min(max(dist, abs(a - b) + 1e-4), a + b - 1e-4)
    along = (a * a - b * b + dist * dist) / (2 * dist)
    across = math.sqrt(max(a * a - along * along, 0.0))
    pole = _unit(np.asarray(bend, dtype=float) - axis * float(np.dot(bend, axis)))
    middle = root + axis * along + pole * across
    return middle, root + axis * dist


def swivel(root, middle, end, degrees: float, outward) -> np.ndarray:
    """The middle joint rotated about the root-end line; positive is outward."""
    if abs(degrees) < 1e-6:
        return middle
    k = _unit(end - root)
    v = middle - root
    tangent = np.cross(k, v)
    sign = 1.0 if float(np.dot(tangent, outward)) >= 0 else -1.0
    t = math.radians(degrees) * sign
    c, s = math.cos(t), math.sin(t)
    return root + v * c + np.cross(k, v) * s + k * float(np.dot(k, v)) * (1 - c)


class Kinematics:
    """Turns pose vectors into skeletons for one body and one rig."""

    def __init__(self, body: BodyShape, rig: Rig):
        self.body = body
        self.rig = rig
        self._targets: dict[tuple[str, str], np.ndarray] = {}

    def set_pins(self, top_pose: np.ndarray) -> None:
        """Fix every pin's world target from the exercise's starting pose."""
        self._targets = {}
        skeleton = self.solve(top_pose)
        for pin in self.rig.pins:
            root = skeleton.points[
                _side_point("SHOULDER" if pin.limb == "arm" else "HIP", pin.side)
            ]
            sign = SIDE_SIGN[pin.side]
            size = self.body.size
            self._targets[(pin.limb, pin.side)] = np.array(
                [root[0] + pin.dx * size, pin.height * size, root[2] + sign * pin.dz * size]
            )

    def solve(self, pose: np.ndarray) -> Skeleton:
        """Forward kinematics in the body frame, whole-body pitch, anchoring on
        the floor, then pins and swivels."""
        b = self.body
        g = pose.__getitem__
        trunk = g(key_index("trunk"))
        neck_flex = g(key_index("neck"))
        p = np.zeros((NUM_POINTS, 3))
        # The pelvis is the origin of the body frame; anchors place it later.
        t = math.radians(trunk)
        up = np.array([math.sin(t), math.cos(t), 0.0])
        p[Point.NECK] = p[Point.PELVIS] + up * b.trunk
        h = math.radians(trunk + neck_flex)
        head_up = np.array([math.sin(h), math.cos(h), 0.0])
        head_fwd = np.array([math.cos(h), -math.sin(h), 0.0])
        p[Point.SKULL] = p[Point.NECK] + (up + head_up) * 0.5 * b.neck
        p[Point.HEAD] = p[Point.SKULL] + head_up * 0.78 * b.head_u + head_fwd * 0.012
        shrug = up * g(key_index("shrug"))
        for side in SIDES:
            sign = SIDE_SIGN[side]
            k = {name: g(key_index(f"{side}_{name}")) for name in _LIMB_NAMES}
            shoulder = p[Point.NECK] + shrug + (0.0, 0.0, sign * b.shoulder_half)
            elbow = shoulder + _limb_dir(k["upperarm_flex"], k["upperarm_abd"], sign) * b.upper_arm
            forearm = _limb_dir(k["forearm_flex"], k["forearm_abd"], sign)
            wrist = elbow + forearm * b.forearm
            hip = p[Point.PELVIS] + (0.0, 0.0, sign * b.hip_half)
            knee = hip + _limb_dir(k["thigh_flex"], k["thigh_abd"], sign) * b.thigh
            ankle = knee + _limb_dir(k["shin_flex"], k["shin_abd"], sign) * b.shin
            fp, to = math.radians(k["foot_pitch"]), math.radians(k["toe_out"])
            fwd = np.array(
                [math.cos(fp) * math.cos(to), -math.sin(fp), sign * math.cos(fp) * math.sin(to)]
            )
            down = np.array([-math.sin(fp), -math.cos(fp), 0.0])
            for name, value in (
                ("SHOULDER", shoulder),
                ("ELBOW", elbow),
                ("WRIST", wrist),
                ("KNUCKLE", wrist + forearm * b.hand),
                ("HIP", hip),
                ("KNEE", knee),
                ("ANKLE", ankle),
                ("HEEL", ankle - fwd * b.heel_back + down * b.ankle_h * 0.72),
                ("TOE", ankle + fwd * b.toe_front + down * b.ankle_h * 0.6),
            ):
                p[_side_point(name, side)] = value
        head_axes = np.stack([head_fwd, head_up, np.array([0.0, 0.0, 1.0])])
        pitch = g(key_index("pitch"))
        if g(key_index("shoulder_h")) > 0:
            pitch = self._pitch_for_shoulder_height(p, g(key_index("shoulder_h")))
        rot = _rot_z(-pitch)
        p = p @ rot.T
        head_axes = head_axes @ rot.T
        p += self._anchor_offset(p, g(key_index("lift")))
        self._apply_pins(p)
        self._apply_swivels(p, pose)
        return Skeleton(p, head_axes)

    def _pitch_for_shoulder_height(self, p: np.ndarray, reaches: float) -> float:
        """Forward tilt about the toes that puts the shoulders at the wanted height."""
        toes = (p[Point.L_TOE] + p[Point.R_TOE]) * 0.5
        v = p[Point.NECK] - toes
        heights = [pin.height * self.body.size for pin in self.rig.pins if pin.limb == "arm"]
        hands = min(heights, default=0.0)
        rise = hands + reaches * self.body.arm_reach - SHOE_RADIUS
        radius = math.hypot(v[0], v[1])
        alpha = math.atan2(v[0], v[1])
        return math.degrees(math.acos(max(-1.0, min(1.0, rise / radius))) - alpha)

    def _anchor_offset(self, p: np.ndarray, lift: float) -> np.ndarray:
        anchor = self.rig.anchor
        if anchor == "toes":
            toes = (p[Point.L_TOE] + p[Point.R_TOE]) * 0.5
            sole = min(p[Point.L_TOE][1], p[Point.R_TOE][1])
            return np.array([-toes[0], SHOE_RADIUS - sole, -p[Point.PELVIS][2]])
        if anchor in ("l_foot", "r_foot"):
            side = anchor[0]
            ankle = p[_side_point("ANKLE", side)]
            sole = min(p[_side_point("HEEL", side)][1], p[_side_point("TOE", side)][1])
            return np.array([-ankle[0], SHOE_RADIUS - sole, -p[Point.PELVIS][2]])
        ankles_x = (p[Point.L_ANKLE][0] + p[Point.R_ANKLE][0]) * 0.5
        sole = min(p[Point.L_HEEL][1], p[Point.R_HEEL][1], p[Point.L_TOE][1], p[Point.R_TOE][1])
        return np.array([-ankles_x, SHOE_RADIUS - sole + lift, -p[Point.PELVIS][2]])

    def _apply_pins(self, p: np.ndarray) -> None:
        b = self.body
        for pin in self.rig.pins:
            target = self._targets.get((pin.limb, pin.side))
            if target is None:
                continue
            s = pin.side
            if pin.limb == "arm":
                root, mid, end = (_side_point(n, s) for n in ("SHOULDER", "ELBOW", "WRIST"))
                a, c = b.upper_arm, b.forearm
            else:
                root, mid, end = (_side_point(n, s) for n in ("HIP", "KNEE", "ANKLE"))
                a, c = b.thigh, b.shin
            middle, reached = two_link(p[root], target, a, c, pin.bend)
            moved = reached - p[end]
            p[mid], p[end] = middle, reached
            if pin.limb == "arm":
                direction = (
                    np.array([1.0, 0.0, 0.0]) if self.rig.hands_flat else _unit(reached - middle)
                )
                p[_side_point("KNUCKLE", s)] = reached + direction * b.hand
            else:
                p[_side_point("HEEL", s)] += moved
                p[_side_point("TOE", s)] += moved

    def _apply_swivels(self, p: np.ndarray, pose: np.ndarray) -> None:
        for side in SIDES:
            outward = np.array([0.0, 0.0, SIDE_SIGN[side]])
            for joints, key in (
                (("SHOULDER", "ELBOW", "WRIST"), "elbow_out"),
                (("HIP", "KNEE", "ANKLE"), "knee_out"),
            ):
                root, mid, end = (_side_point(n, side) for n in joints)
                degrees = float(pose[key_index(f"{side}_{key}")])
                p[mid] = swivel(p[root], p[mid], p[end], degrees, outward)

"""Body proportions and the pose parameters that drive a synthetic athlete.

A pose is a flat float vector (`POSE_KEYS`), so keyframes interpolate with one
`lerp`. Limb angles are absolute directions in the body frame (X forward, Y up,
Z to the athlete's right), before the whole-body `pitch` tilts it: a segment at
flex=0, abd=0 hangs straight down; `flex` swings it forward, `abd` sideways
away from the body. That keeps exercise keyframes readable ("thigh 95 deg
forward") and makes the joint angles a consequence of the geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SIDES = ("l", "r")

_BODY_KEYS = (
    "pitch",  # deg: whole body tilted forward about the pelvis (90 = lying face down)
    "shoulder_h",  # >0: solve pitch so the shoulders stand this high (arm reaches) above the hands
    "trunk",  # deg: hip->shoulder axis leaning forward from vertical
    "neck",  # deg: head nodding forward relative to the trunk
    "lift",  # m: feet off the floor (jumps)
    "shrug",  # m: both shoulders raised along the trunk, towards the ears
)
_LIMB_KEYS = (
    "upperarm_flex",
    "upperarm_abd",
    "forearm_flex",
    "forearm_abd",
    "elbow_out",  # deg: elbow rotated outward about the shoulder-wrist line (flare)
    "thigh_flex",
    "thigh_abd",
    "shin_flex",
    "shin_abd",
    "knee_out",  # deg: knee rotated outward about the hip-ankle line (negative: caving in)
    "foot_pitch",  # deg: toes down relative to a flat foot
    "toe_out",  # deg: foot turned outward
)
POSE_KEYS: tuple[str, ...] = _BODY_KEYS + tuple(f"{s}_{k}" for s in SIDES for k in _LIMB_KEYS)
_INDEX = {name: i for i, name in enumerate(POSE_KEYS)}
LIMB_KEYS = frozenset(_LIMB_KEYS)


def key_index(name: str) -> int:
    return _INDEX[name]


def pose_vector(values: Mapping[str, float], base: np.ndarray | None = None) -> np.ndarray:
    """A pose from named values; a limb key without `l_`/`r_` sets both sides."""
    pose = np.zeros(len(POSE_KEYS)) if base is None else base.copy()
    for name, value in values.items():
        if name in LIMB_KEYS:
            for side in SIDES:
                pose[_INDEX[f"{side}_{name}"]] = value
        elif name in _INDEX:
            pose[_INDEX[name]] = value
        else:
            raise KeyError(f"unknown pose key {name!r}")
    return pose


@dataclass(frozen=True)
class BodyShape:
    """Segment lengths and girths in metres (adult, ~1.75 m; Winter's proportions)."""

    trunk: float = 0.50  # hip centre -> shoulder centre
    neck: float = 0.09  # shoulder centre -> base of the skull
    shoulder_half: float = 0.175  # shoulder joint from the midline
    hip_half: float = 0.095
    upper_arm: float = 0.30
    forearm: float = 0.255
    hand: float = 0.095  # wrist -> knuckles of a fist
    thigh: float = 0.43
    shin: float = 0.42
    ankle_h: float = 0.075  # ankle joint above the sole
    heel_back: float = 0.055
    toe_front: float = 0.19  # ankle -> toe tip along the foot
    head_f: float = 0.102  # head ellipsoid semi-axes: front-back, up, side
    head_u: float = 0.125
    head_l: float = 0.082
    girth: float = 1.0  # multiplies limb and torso widths

    @classmethod
    def sample(cls, rng: np.random.Generator) -> BodyShape:
        """A person of random size and build (heights ~1.62-1.88 m)."""
        size = float(rng.uniform(0.93, 1.07))
        girth = float(rng.uniform(0.92, 1.12))
        base = cls()
        scaled = {
            name: getattr(base, name) * size
            for name in base.__dataclass_fields__
            if name != "girth"
        }
        return cls(**scaled, girth=girth)

    @property
    def size(self) -> float:
        """Length scale relative to the reference body (1.0 ~ 1.75 m tall)."""
        return self.trunk / 0.50

    @property
    def arm_reach(self) -> float:
        return self.upper_arm + self.forearm

    @property
    def leg_length(self) -> float:
        return self.thigh + self.shin

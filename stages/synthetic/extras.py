"""People in the gym who do not exercise: a bystander standing to one side
and a walker crossing the room. Each is a pose per frame (`body.POSE_KEYS`)
plus, for the walker, where along its path the body is; both are seeded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from repcoach.stages.synthetic.body import pose_vector
from repcoach.stages.synthetic.exercises import CameraAngle

_LEGS = {"thigh_abd": 5, "shin_abd": 3, "toe_out": 12}
# How a bystander holds the arms. Angles as in `body` (absolute directions).
STANCES: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "arms_crossed": {
            **_LEGS,
            "upperarm_flex": 22,
            "upperarm_abd": 12,
            "forearm_flex": 80,
            "l_forearm_abd": -76,
            "r_forearm_abd": -84,
        },
        "hands_on_hips": {
            **_LEGS,
            "upperarm_flex": -12,
            "upperarm_abd": 45,
            "forearm_flex": 8,
            "forearm_abd": -50,
        },
        "arms_down": {
            **_LEGS,
            "upperarm_flex": 4,
            "upperarm_abd": 7,
            "forearm_flex": 12,
            "forearm_abd": 6,
        },
    }
)
STANCE_NAMES = tuple(STANCES)
# Slow sway of someone standing and watching: (key, degrees, period in seconds).
_SWAY = (("trunk", 1.8, 4.1), ("neck", 5.0, 5.3), ("l_thigh_abd", 1.5, 4.1))

# Side views: yaw 0 sees the right side (walking towards image right), 180 the left.
WALK_RIGHT = CameraAngle(yaw=0, elevation=4)
WALK_LEFT = CameraAngle(yaw=180, elevation=4)
STRIDE_LEGS = 1.35  # metres per gait cycle for each metre of leg (hip to ankle)


@dataclass(frozen=True)
class Bystander:
    stance: str
    angle: CameraAngle  # front view, turned a little
    phase: tuple[float, ...]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Bystander:
        stance = STANCE_NAMES[int(rng.integers(len(STANCE_NAMES)))]
        angle = CameraAngle(yaw=float(rng.uniform(-30, 30)), elevation=4)
        return cls(stance, angle, tuple(rng.uniform(0, 2 * math.pi, len(_SWAY))))

    def poses(self, frames: int, fps: float) -> np.ndarray:
        times = np.arange(frames) / fps
        poses = np.repeat(pose_vector(STANCES[self.stance])[None, :], frames, axis=0)
        for (key, amplitude, period), phase in zip(_SWAY, self.phase, strict=True):
            wave = np.sin(times * 2 * math.pi / period + phase) * amplitude
            poses += np.outer(wave, pose_vector({key: 1.0}))
        return poses


@dataclass(frozen=True)
class Walk:
    """One crossing: direction, pace, and when it starts (a fraction of the
    slack the clip leaves; the path's length is known only after layout)."""

    rightwards: bool
    speed: float  # metres per second for the reference body
    start: float  # 0-1: where in the clip's slack the walker sets off
    phase: float  # gait phase at the first frame

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Walk:
        return cls(
            bool(rng.integers(2)),
            float(rng.uniform(1.15, 1.45)),
            float(rng.uniform(0.0, 1.0)),
            float(rng.uniform(0.0, 2 * math.pi)),
        )

    @property
    def angle(self) -> CameraAngle:
        return WALK_RIGHT if self.rightwards else WALK_LEFT

    def poses(self, times: np.ndarray, leg: float) -> np.ndarray:
        """Gait pose at each time (seconds since setting off): hips swing
        opposite each other, knees bend in the swing, arms swing against the legs."""
        cycle = 2 * math.pi * self.speed / (STRIDE_LEGS * leg)  # radians per second
        right = times * cycle + self.phase
        poses = np.repeat(pose_vector({**_LEGS, "trunk": 4, "neck": -4})[None], len(times), 0)
        for side, phase in (("r", right), ("l", right + math.pi)):
            thigh = 7 + 21 * np.sin(phase)
            knee = 6 + 55 * np.maximum(np.cos(phase + 0.6), 0.0) ** 2
            arm = 3 - 17 * np.sin(phase)  # against the leg of the same side
            for key, value in (
                ("thigh_flex", thigh),
                ("shin_flex", thigh - knee),
                ("foot_pitch", 18 * np.maximum(np.cos(phase + 1.3), 0.0) ** 3),
                ("upperarm_flex", arm),
                ("upperarm_abd", np.full_like(phase, 7.0)),
                ("forearm_flex", arm + 22 + 6 * np.sin(phase)),
                ("forearm_abd", np.full_like(phase, 6.0)),
            ):
                poses += np.outer(value, pose_vector({f"{side}_{key}": 1.0}))
        return poses

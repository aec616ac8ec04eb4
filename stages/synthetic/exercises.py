"""Every exercise as data: the pose at the start of a rep (`top`), the pose at
its turning point (`bottom`: deepest squat, top of a curl, arms overhead), how
the body is held (`rig`), its tempo and the camera views it can be filmed from.

A rep moves the pose from `top` to `bottom` and back; a hold (plank) stays at
`top` and breathes. Angles follow `body.POSE_KEYS` (degrees, absolute segment
directions: flex forward, abd sideways, 0 = hanging straight down).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from repcoach.stages.synthetic.kinematics import Pin, Rig


@dataclass(frozen=True)
class Tempo:
    """Seconds for each part of a rep at the athlete's average pace."""

    down: float
    hold: float
    up: float
    pause: float


@dataclass(frozen=True)
class CameraAngle:
    """Where the camera stands: `yaw` degrees from the pure side/front
    direction towards the athlete's front-right, `elevation` degrees above the
    horizon, `distance` metres away (perspective grows as it shrinks)."""

    yaw: float = 0.0
    elevation: float = 0.0
    distance: float = 5.0  # metres from the camera to the middle of the motion


@dataclass(frozen=True)
class Exercise:
    name: str
    views: Mapping[str, CameraAngle]  # the first one is the default
    top: Mapping[str, float]
    bottom: Mapping[str, float]
    tempo: Tempo | None  # None: a hold without reps
    rig: Rig = field(default_factory=Rig)
    hop: float = 0.0  # m: jump height reached halfway through each transition
    breathing: Mapping[str, float] = field(default_factory=dict)  # amplitude per key

    @property
    def is_hold(self) -> bool:
        return self.tempo is None

    @property
    def default_view(self) -> str:
        return next(iter(self.views))


def _views(**views: CameraAngle) -> Mapping[str, CameraAngle]:
    return MappingProxyType(views)


# Standing with arms hanging: the start of most standing exercises.
_STAND = {
    "upperarm_flex": 3,
    "upperarm_abd": 7,
    "forearm_flex": 10,
    "forearm_abd": 6,
    "thigh_abd": 4,
    "shin_abd": 3,
    "toe_out": 10,
}
# Hands held together in front of the chest (bodyweight squats and lunges).
_GUARD = {"upperarm_flex": 30, "upperarm_abd": 15, "forearm_flex": 125, "forearm_abd": -40}
_SIDE = CameraAngle(yaw=0, elevation=4)
_FRONT = CameraAngle(yaw=8, elevation=4)
# From behind the knees and elbows of a lunge or a curl bend along the
# camera's axis, out of the picture: those two are not offered from the back.
_BACK = CameraAngle(yaw=8, elevation=4)
_FLOOR_SIDE = CameraAngle(yaw=10, elevation=12)
# "Front" for floor exercises is three-quarter: BlazePose finds no prone body
# seen head-on (0 of 96 frames of a push-up), and flared elbows still show.
_FLOOR_FRONT = CameraAngle(yaw=60, elevation=12, distance=3.5)

_PUSHUP_RIG = Rig(
    anchor="toes",
    pins=(
        Pin("arm", "l", dx=0.03, height=0.045, dz=0.06, bend=(-1.0, 0.6, 0.0)),
        Pin("arm", "r", dx=0.03, height=0.045, dz=0.06, bend=(-1.0, 0.6, 0.0)),
    ),
    hands_flat=True,
)
_PLANK_RIG = Rig(
    anchor="toes",
    pins=(
        Pin("arm", "l", dx=0.255, height=0.045, dz=0.03, bend=(-0.3, -1.0, 0.0)),
        Pin("arm", "r", dx=0.255, height=0.045, dz=0.03, bend=(-0.3, -1.0, 0.0)),
    ),
    hands_flat=True,
)
_PRONE = {
    "thigh_abd": 3,
    "shin_abd": 2,
    "neck": -30,
    "foot_pitch": -8,
    "thigh_flex": 4,
    "shin_flex": -4,
}

EXERCISES: Mapping[str, Exercise] = MappingProxyType(
    {
        ex.name: ex
        for ex in (
            Exercise(
                "squat",
                _views(side=_SIDE, front=_FRONT, back=_BACK),
                top={**_STAND, **_GUARD, "thigh_abd": 9, "shin_abd": 4, "toe_out": 18},
                bottom={
                    **_STAND,
                    "thigh_abd": 9,
                    "shin_abd": 4,
                    "toe_out": 18,
                    "trunk": 38,
                    "neck": -26,
                    "thigh_flex": 95,
                    "shin_flex": -32,
                    "knee_out": 10,
                    **_GUARD,
                },
                tempo=Tempo(down=1.1, hold=0.2, up=1.0, pause=0.4),
            ),
            Exercise(
                "pushup",
                _views(side=_FLOOR_SIDE, front=_FLOOR_FRONT),
                top={**_PRONE, "shoulder_h": 0.97, "elbow_out": 20},
                bottom={**_PRONE, "shoulder_h": 0.42, "elbow_out": 25, "neck": -25},
                tempo=Tempo(down=0.9, hold=0.15, up=0.8, pause=0.35),
                rig=_PUSHUP_RIG,
            ),
            Exercise(
                "lunge",
                _views(side=_SIDE, front=_FRONT),
                top={
                    **_STAND,
                    **_GUARD,
                    "trunk": 2,
                    "r_thigh_flex": 40,
                    "r_shin_flex": -5,
                    "l_foot_pitch": 58,
                    "thigh_abd": 5,
                    "shin_abd": 2,
                    "toe_out": 6,
                },
                bottom={
                    **_STAND,
                    **_GUARD,
                    "trunk": 6,
                    "r_thigh_flex": 74,
                    "r_shin_flex": -12,
                    "l_foot_pitch": 58,
                    "thigh_abd": 5,
                    "shin_abd": 2,
                    "toe_out": 6,
                },
                tempo=Tempo(down=1.0, hold=0.2, up=1.0, pause=0.4),
                rig=Rig(
                    anchor="r_foot",
                    pins=(Pin("leg", "l", dx=-0.5, height=0.2, dz=0.02, bend=(1.0, -0.2, 0.0)),),
                ),
            ),
            Exercise(
                "bicep_curl",
                _views(side=_SIDE, front=_FRONT),
                top={**_STAND, "upperarm_abd": 6, "forearm_flex": 8},
                bottom={**_STAND, "upperarm_abd": 6, "upperarm_flex": 4, "forearm_flex": 140},
                tempo=Tempo(down=0.9, hold=0.2, up=1.0, pause=0.3),
            ),
            Exercise(
                "shoulder_press",
                _views(front=_FRONT, back=_BACK),
                top={
                    **_STAND,
                    "upperarm_flex": 25,
                    "upperarm_abd": 78,
                    "forearm_flex": 0,
                    "forearm_abd": 176,
                },
                bottom={
                    **_STAND,
                    "upperarm_flex": 8,
                    "upperarm_abd": 166,
                    "forearm_flex": 0,
                    "forearm_abd": 174,
                },
                tempo=Tempo(down=0.9, hold=0.2, up=0.9, pause=0.3),
            ),
            Exercise(
                "lateral_raise",
                _views(front=_FRONT, back=_BACK),
                top={**_STAND, "upperarm_abd": 8, "forearm_abd": 10, "forearm_flex": 14},
                bottom={**_STAND, "upperarm_abd": 86, "forearm_abd": 84, "forearm_flex": 14},
                tempo=Tempo(down=1.0, hold=0.25, up=1.0, pause=0.3),
            ),
            Exercise(
                "jumping_jack",
                _views(front=_FRONT, back=_BACK),
                top={**_STAND, "thigh_abd": 2, "shin_abd": 1, "upperarm_abd": 8},
                bottom={
                    **_STAND,
                    "thigh_abd": 15,
                    "shin_abd": 15,
                    "toe_out": 20,
                    "upperarm_abd": 168,
                    "forearm_abd": 172,
                    "forearm_flex": 0,
                },
                tempo=Tempo(down=0.38, hold=0.06, up=0.38, pause=0.1),
                hop=0.06,
            ),
            Exercise(
                "plank",
                _views(side=_FLOOR_SIDE),
                top={**_PRONE, "shoulder_h": 0.54, "elbow_out": 10},
                bottom={**_PRONE, "shoulder_h": 0.54, "elbow_out": 10},
                tempo=None,
                rig=_PLANK_RIG,
                breathing={"trunk": 1.2, "neck": 3.0},
            ),
        )
    }
)

EXERCISE_NAMES = tuple(EXERCISES)

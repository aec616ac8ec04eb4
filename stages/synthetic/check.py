"""How well a real pose model sees the rendered athletes: BlazePose
(mediapipe, `model_complexity=1`, video mode, the model the wheel ships)
run over a synthetic clip and compared with its truth. Used by the tests
and by bench/synthetic.py; mediapipe is imported only when called."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repcoach.common.geometry import joint_angle
from repcoach.stages.synthetic.source import SyntheticSource
from repcoach.stages.synthetic.truth import ANGLES

JOINTS = ("knee", "hip", "elbow", "shoulder")


@dataclass(frozen=True)
class ModelReport:
    """Detection rate and angle errors of the model on one clip."""

    spec: str
    view: str
    frames: int
    found: int
    errors: dict[str, list[float]] = field(default_factory=dict)  # joint -> |error| degrees

    @property
    def rate(self) -> float:
        return self.found / self.frames if self.frames else 0.0

    def median(self, joint: str) -> float:
        values = self.errors.get(joint, [])
        return float(np.median(values)) if values else float("nan")


def measure_blazepose(spec: str, person: int = 0) -> ModelReport:
    """Runs BlazePose over every frame of `spec` and compares the angles of
    each side whose three joints the truth marks visible."""
    import cv2
    import mediapipe as mp

    source = SyntheticSource.from_spec(spec)
    errors: dict[str, list[float]] = {joint: [] for joint in JOINTS}
    found = 0
    view = ""
    size = np.array([source.width, source.height], dtype=np.float64)
    with mp.solutions.pose.Pose(model_complexity=1, static_image_mode=False) as pose:
        for frame, truth in source.frames():
            athlete = truth.people[person]
            view = athlete.view
            result = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if result.pose_landmarks is None:
                continue
            found += 1
            seen = np.array([(p.x, p.y) for p in result.pose_landmarks.landmark]) * size
            for name, (a, b, c) in ANGLES.items():
                if athlete.visible[[a, b, c]].all():
                    error = abs(joint_angle(seen[a], seen[b], seen[c]) - athlete.angles[name])
                    errors[name.split("_", 1)[1]].append(error)
    return ModelReport(spec, view, source.total_frames, found, errors)

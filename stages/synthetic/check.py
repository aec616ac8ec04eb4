"""How well a real pose model sees the rendered people: BlazePose
(mediapipe, `model_complexity=1`, video mode, the model the wheel ships)
run over a synthetic clip and compared with its truth (`measure_blazepose`),
and the pipeline's multi-person `BlazePoseSegmenter` finding every figure,
athletes, bystanders, walkers and mirror twins (`measure_people`). Used by
the tests and by bench/synthetic.py; the models are imported only when called."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import NUM_LANDMARKS, Landmark
from repcoach.stages.synthetic.source import SyntheticSource
from repcoach.stages.synthetic.truth import ANGLES, MIRROR_SWAP, PersonTruth

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


# Body joints that must all be in the frame and uncovered for a person to
# count as fully visible (the face and fingers may hide).
_KEY_JOINTS = np.array(
    [
        Landmark[f"{side}_{joint}"]
        for side in ("LEFT", "RIGHT")
        for joint in ("SHOULDER", "ELBOW", "WRIST", "HIP", "KNEE", "ANKLE")
    ]
)
MATCH_FRACTION = 0.1  # a found person's key joints lie within this share of body height


@dataclass
class PersonFinds:
    """How often a pose model found one rendered person."""

    person: int
    role: str
    shown: int = 0  # sampled frames where the person is fully visible
    found: int = 0  # of those, frames where some detection matched them
    clear: int = 0  # fully visible and overlapping nobody (see `apart`)
    clear_found: int = 0

    @property
    def rate(self) -> float:
        return self.found / self.shown if self.shown else float("nan")

    @property
    def clear_rate(self) -> float:
        return self.clear_found / self.clear if self.clear else float("nan")


def fully_visible(truth: PersonTruth, width: int, height: int) -> bool:
    """Every key joint inside the frame and covered by nobody else."""
    xy = truth.joints_xy[_KEY_JOINTS]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    return bool(inside.all() and (truth.hidden_by[_KEY_JOINTS] < 0).all())


def _box(truth: PersonTruth) -> np.ndarray:
    xy = truth.joints_xy
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def apart(truth: PersonTruth, others: list[PersonTruth], width: int) -> bool:
    """No other person in the frame overlaps this one's joint box (people
    drawn over or behind each other are the hard case for any detector)."""
    box = _box(truth)
    for other in others:
        b = _box(other)
        if b[2] < 0 or b[0] >= width:  # out of the frame
            continue
        if b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3]:
            return False
    return True


def match_error(seen_xy: np.ndarray, truth: PersonTruth) -> float:
    """Median key-joint distance over body height, whichever way left and
    right are read (a model may take a side view's far limbs for the near ones)."""
    height = max(float(np.ptp(truth.joints_xy[:, 1])), 1.0)
    errors = []
    for order in (np.arange(NUM_LANDMARKS), MIRROR_SWAP):
        miss = seen_xy[order][_KEY_JOINTS] - truth.joints_xy[_KEY_JOINTS]
        errors.append(float(np.median(np.hypot(miss[:, 0], miss[:, 1]))) / height)
    return min(errors)


def measure_people(spec: str, frames: list[int] | None = None) -> list[PersonFinds]:
    """Runs the pipeline's `BlazePoseSegmenter(landmarks=True)` on sampled
    frames of `spec` (every 4th by default; each sampled frame is far enough
    from the last for a fresh detection) and counts, per rendered person,
    the frames where they are fully visible and where a detection's
    landmarks match them (each detection matches at most one person)."""
    from repcoach.stages.blazepose import BlazePoseSegmenter

    source = SyntheticSource.from_spec(spec)
    wanted = set(frames if frames is not None else range(0, source.total_frames, 4))
    segmenter = BlazePoseSegmenter(landmarks=True)
    finds = [PersonFinds(p.index, p.role) for p in source.people]
    for index, (image, truth) in enumerate(source.frames()):
        if index not in wanted:
            continue
        instances = segmenter.segment(image, index / source.fps)
        seen = [i.landmarks.image_xy for i in instances if i.landmarks is not None]
        pairs = sorted(
            (match_error(xy, person), k, person.person)
            for k, xy in enumerate(seen)
            for person in truth.people
            if fully_visible(person, source.width, source.height)
        )
        used, matched = set(), set()
        for _error, k, person in (p for p in pairs if p[0] < MATCH_FRACTION):
            if k not in used and person not in matched:
                used.add(k)
                matched.add(person)
        for person in truth.people:
            if not fully_visible(person, source.width, source.height):
                continue
            find = finds[person.person]
            hit = person.person in matched
            find.shown += 1
            find.found += hit
            others = [p for p in truth.people if p is not person]
            if apart(person, others, source.width):
                find.clear += 1
                find.clear_found += hit
    return finds

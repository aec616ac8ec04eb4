"""HaarJoints, the paper's cascade-and-mask joints, against BlazePose on real
front-view frames, and its geometry on drawn masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from repcoach.common.clips import clips_dir
from repcoach.common.landmarks import NUM_LANDMARKS, Landmark
from repcoach.common.messages import PersonInstance, PersonJoints
from repcoach.stages.blazepose import import_pose_solution
from repcoach.stages.haar import MASK_VISIBILITY, HaarJoints

# Front-view frames with the arms below the shoulders: where the method is
# meant to work. Measured errors there: at most 0.19 torso lengths.
FRONT_FRAMES = [
    ("lateral_raise_front_4reps_sports2d.mp4", (0, 30, 150, 240)),
    ("jumping_jacks_front_7reps_wahoo.mp4", (0, 90)),
]
TOLERANCE = 0.35  # torso lengths
CHECKED = {
    "nose": [Landmark.NOSE],
    "shoulders": [Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER],
    "hips": [Landmark.LEFT_HIP, Landmark.RIGHT_HIP],
}


def frames_at(name: str, indices: tuple[int, ...], width: int = 640) -> list[np.ndarray]:
    path = clips_dir() / name
    if not path.is_file():
        pytest.skip(f"shared clip {path} is absent (../shared/clips holds the evaluation clips)")
    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in range(max(indices) + 1):
        ok, frame = cap.read()
        assert ok, f"{name} ends before frame {index}"
        if index in indices:
            height = round(frame.shape[0] * width / frame.shape[1])
            frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


def person_from_mask(mask: np.ndarray) -> PersonInstance:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return PersonInstance((float(x0), float(y0), float(x1), float(y1)), 1.0, mask[y0:y1, x0:x1])


@pytest.fixture(scope="module")
def estimator() -> HaarJoints:
    return HaarJoints()


@pytest.fixture(scope="module")
def pose():
    with import_pose_solution().Pose(
        static_image_mode=True, model_complexity=1, enable_segmentation=True
    ) as model:
        yield model


@pytest.mark.clips
@pytest.mark.parametrize(("clip", "indices"), FRONT_FRAMES)
def test_close_to_blazepose_on_front_view(estimator, pose, clip, indices):
    for frame in frames_at(clip, indices):
        height, width = frame.shape[:2]
        reference = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        assert reference.pose_landmarks is not None
        ref = np.array([(m.x * width, m.y * height) for m in reference.pose_landmarks.landmark])
        torso = np.linalg.norm(
            (ref[Landmark.LEFT_SHOULDER] + ref[Landmark.RIGHT_SHOULDER]) / 2
            - (ref[Landmark.LEFT_HIP] + ref[Landmark.RIGHT_HIP]) / 2
        )
        person = person_from_mask(reference.segmentation_mask > 0.5).with_track(7)
        [joints] = estimator.estimate(frame, [person], 0.0)
        assert joints.track_id == 7
        for group, members in CHECKED.items():
            # Sides as labelled: the person faces the camera, left is image right.
            errors = np.linalg.norm(joints.image_xy[members] - ref[members], axis=1) / torso
            assert np.all(joints.visibility[members] > 0), group
            assert np.all(errors < TOLERANCE), f"{clip}: {group} off by {errors} torso lengths"


def drawn_person(lying: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A black frame and the mask of a crude standing figure (arms out to the
    sides at chest height), or the same figure turned to lie head-left."""
    mask = np.zeros((480, 640), np.uint8)
    cv2.circle(mask, (320, 70), 28, 1, -1)  # head
    cv2.rectangle(mask, (280, 100), (360, 250), 1, -1)  # torso
    cv2.line(mask, (280, 130), (190, 150), 1, 16)  # arm to the image left
    cv2.line(mask, (360, 130), (450, 150), 1, 16)  # arm to the image right
    cv2.line(mask, (300, 245), (285, 440), 1, 26)  # legs
    cv2.line(mask, (340, 245), (355, 440), 1, 26)
    if lying:
        mask = cv2.rotate(mask, cv2.ROTATE_90_COUNTERCLOCKWISE)[80:560, :]
        mask = cv2.copyMakeBorder(mask, 0, 0, 80, 80, cv2.BORDER_CONSTANT, value=0)
    frame = np.zeros((*mask.shape, 3), np.uint8)
    return frame, mask.astype(bool)


def test_drawn_standing_figure(estimator):
    frame, mask = drawn_person()
    [joints] = estimator.estimate(frame, [person_from_mask(mask)], 0.0)
    assert isinstance(joints, PersonJoints)
    assert joints.image_xy.shape == (NUM_LANDMARKS, 2)
    assert np.all(joints.world_xyz == 0)
    xy = joints.image_xy
    # Top to bottom along the body, every level lower than the one before.
    levels = [
        xy[Landmark.NOSE, 1],
        xy[[Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER], 1].mean(),
        xy[[Landmark.LEFT_HIP, Landmark.RIGHT_HIP], 1].mean(),
        xy[[Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE], 1].mean(),
        xy[[Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE], 1].mean(),
    ]
    assert levels == sorted(levels)
    assert abs(xy[Landmark.NOSE, 0] - 320) < 10
    # Facing the camera: the person's left is the image's right.
    for left, right in [
        (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER),
        (Landmark.LEFT_WRIST, Landmark.RIGHT_WRIST),
        (Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE),
    ]:
        assert xy[left, 0] > 320 > xy[right, 0]
    # The stretched arms end at the mask's sideways extremes.
    assert xy[Landmark.LEFT_WRIST, 0] > 440 and xy[Landmark.RIGHT_WRIST, 0] < 200
    assert np.all(joints.visibility[[Landmark.LEFT_PINKY, Landmark.RIGHT_HEEL]] == 0)
    assert joints.visibility[Landmark.LEFT_KNEE] == MASK_VISIBILITY


def test_drawn_lying_figure_finds_the_head_end(estimator):
    frame, mask = drawn_person(lying=True)
    [joints] = estimator.estimate(frame, [person_from_mask(mask)], 0.0)
    xy = joints.image_xy
    # Rotated counter-clockwise the head is at the left, the feet at the right.
    assert xy[Landmark.NOSE, 0] < xy[Landmark.LEFT_HIP, 0] < xy[Landmark.LEFT_ANKLE, 0]


def test_person_without_mask_and_no_person(estimator):
    frame, _ = drawn_person()
    [joints] = estimator.estimate(frame, [PersonInstance((280, 40, 360, 440), 0.9)], 0.0)
    assert joints.visibility[Landmark.NOSE] > 0
    assert 40 <= joints.image_xy[Landmark.NOSE, 1] < joints.image_xy[Landmark.LEFT_HIP, 1]
    assert estimator.estimate(frame, [], 0.0) == []

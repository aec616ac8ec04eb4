"""BlazePose segmenter and joint estimator on real clip frames (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from repcoach.common.clips import clips_dir
from repcoach.common.errors import UserError
from repcoach.common.landmarks import Landmark
from repcoach.common.messages import EndOfStream, FrameMeta, FramePacket, PersonInstance
from repcoach.stages.blazepose import BlazePoseJoints, BlazePoseSegmenter
from repcoach.stages.joints import JointsStage
from repcoach.stages.pose_detector import mediapipe_model
from repcoach.stages.tracking import Tracker

HIPS = [Landmark.LEFT_HIP, Landmark.RIGHT_HIP]


def clip_frames(
    name: str, step: int, count: int, width: int = 640
) -> list[tuple[float, np.ndarray]]:
    """(pts, frame) for every `step`-th frame of a shared clip, resized."""
    path = clips_dir() / name
    if not path.is_file():
        pytest.skip(f"shared clip {path} is absent (../shared/clips holds the evaluation clips)")
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames, index = [], 0
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            height = round(frame.shape[0] * width / frame.shape[1])
            frames.append(
                (index / fps, cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
            )
        index += 1
    cap.release()
    return frames


def square_middle(frame: np.ndarray, side: int) -> np.ndarray:
    """The central square of a landscape frame, resized (aspect kept)."""
    height, width = frame.shape[:2]
    x0 = (width - height) // 2
    return cv2.resize(frame[:, x0 : x0 + height], (side, side), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def segmenter() -> BlazePoseSegmenter:
    return BlazePoseSegmenter()


@pytest.fixture(scope="module")
def finder() -> BlazePoseSegmenter:
    """The default pipeline's segmenter: it finds the landmarks too."""
    return BlazePoseSegmenter(landmarks=True)


@pytest.fixture(scope="module")
def estimator() -> Iterator[BlazePoseJoints]:
    joints = BlazePoseJoints()
    yield joints
    joints.close()


def packet(seq: int, pts: float, frame: np.ndarray, persons) -> FramePacket:
    height, width = frame.shape[:2]
    meta = FrameMeta("test", seq, seq - 1, 0, 0.0, pts, width, height)
    return FramePacket(meta, frame, persons=tuple(persons))


# Clips where one person is fully visible in every frame (see labels.json notes).
@pytest.mark.clips
@pytest.mark.parametrize(
    "clip",
    [
        "squat_side_4reps_wahoo.mp4",
        "jumping_jacks_front_7reps_wahoo.mp4",
        "pushup_side_5reps_gym_letterboxed.mp4",
    ],
)
@pytest.mark.parametrize("landmarks_from", ["segmenter", "joints stage"])
def test_one_visible_person_is_found_and_tracked(
    clip, landmarks_from, segmenter, finder, estimator
):
    """Both ways the pipeline finds joints: in the segment workers (the
    default), or per track in the joints stage (behind Mask R-CNN)."""
    frames = clip_frames(clip, step=4, count=36)
    if landmarks_from == "segmenter":
        segmenter, stage = finder, JointsStage(None, Tracker())
    else:
        stage = JointsStage(estimator, Tracker())
    found = single = with_joints = inside = visible = 0
    ids = set()
    for seq, (pts, frame) in enumerate(frames):
        persons = segmenter.segment(frame, pts if landmarks_from == "segmenter" else None)
        found += len(persons) >= 1
        single += len(persons) == 1
        out = stage.process(packet(seq, pts, frame, persons))
        ids.update(p.track_id for p in out.persons)
        if out.joints:
            with_joints += 1
            joints, person = out.joints[0], out.persons[0]
            x0, y0, x1, y1 = person.box
            pad = 0.15 * max(x1 - x0, y1 - y0)
            seen = joints.visibility > 0.5
            xy = joints.image_xy[seen]
            visible += int(seen.sum())
            in_x = (xy[:, 0] >= x0 - pad) & (xy[:, 0] <= x1 + pad)
            in_y = (xy[:, 1] >= y0 - pad) & (xy[:, 1] <= y1 + pad)
            inside += int((in_x & in_y).sum())
    stage.end(EndOfStream("test", len(frames) - 1, len(frames), 0, "end of file"))
    n = len(frames)
    assert n >= 30
    assert found / n >= 0.95, f"person found in {found}/{n} frames"
    assert single / n >= 0.95, f"exactly one person in only {single}/{n} frames"
    assert with_joints / n >= 0.90, f"joints in {with_joints}/{n} frames"
    assert inside / visible >= 0.95, "visible landmarks must lie on the segmented person"
    assert len(ids) == 1, f"one person must keep one track id, got {sorted(ids)}"
    assert estimator.active_tracks() == []  # end() dropped the per-track models
    assert all(p.landmarks is None for p in out.persons), "joints travel once, in packet.joints"


@pytest.fixture(scope="module")
def two_people() -> np.ndarray:
    """Two real clip frames side by side: a squat and a standing lunge start."""
    (_, squat), *_ = clip_frames("squat_side_4reps_wahoo.mp4", step=1, count=1, width=1920)
    lunge = clip_frames("lunge_forward_side_8reps_wahoo.mp4", step=100, count=2, width=1920)[1][1]
    return np.hstack([square_middle(squat, 360), square_middle(lunge, 360)])


@pytest.mark.clips
def test_two_people_side_by_side_get_separate_masks(segmenter, two_people):
    height, width = two_people.shape[:2]
    persons = sorted(segmenter.segment(two_people), key=lambda p: p.box[0])
    assert len(persons) == 2
    left, right = (p.full_mask(width, height) for p in persons)
    assert not (left & right).any(), "masks must not overlap"
    half = width // 2
    for mask, own in ((left, slice(0, half)), (right, slice(half, width))):
        assert mask.sum() > 0.02 * height * half, "a person's mask is far too small"
        assert mask[:, own].sum() / mask.sum() >= 0.98, "a mask spills onto the other person"
    assert persons[0].box[2] <= half + 5 and persons[1].box[0] >= half - 5
    for p in persons:
        mx0, my0, mx1, my1 = p.mask_box()
        assert p.mask.shape == (my1 - my0, mx1 - mx0)


@pytest.mark.clips
def test_two_people_get_their_own_joints(segmenter, estimator, two_people):
    height, width = two_people.shape[:2]
    persons = sorted(segmenter.segment(two_people), key=lambda p: p.box[0])
    tracked = [p.with_track(i + 1) for i, p in enumerate(persons)]
    try:
        joints = {j.track_id: j for j in estimator.estimate(two_people, tracked, 0.0)}
    finally:
        estimator.retire([1, 2])
    assert sorted(joints) == [1, 2]
    for track_id, own_half in ((1, (0, width / 2)), (2, (width / 2, width))):
        hips = joints[track_id].image_xy[HIPS]
        assert ((hips[:, 0] > own_half[0]) & (hips[:, 0] < own_half[1])).all()
        assert joints[track_id].world_xyz.shape == (33, 3)
        assert np.abs(joints[track_id].world_xyz).max() < 2.0  # metres around the hips


@pytest.mark.clips
def test_segmenter_finds_each_persons_own_landmarks(finder, two_people):
    height, width = two_people.shape[:2]
    persons = sorted(finder.segment(two_people, 0.0), key=lambda p: p.box[0])
    assert len(persons) == 2
    for person, own_half in zip(persons, ((0, width / 2), (width / 2, width)), strict=True):
        landmarks = person.landmarks
        assert landmarks is not None and landmarks.track_id == -1
        hips = landmarks.image_xy[HIPS]
        assert ((hips[:, 0] > own_half[0]) & (hips[:, 0] < own_half[1])).all()
        seen = landmarks.visibility > 0.5
        assert seen.sum() >= 20
        x0, y0, x1, y1 = person.box
        pad = 0.15 * max(x1 - x0, y1 - y0)
        xy = landmarks.image_xy[seen]
        on_person = (xy >= (x0 - pad, y0 - pad)) & (xy <= (x1 + pad, y1 + pad))
        assert on_person.all(axis=1).mean() > 0.9
        assert np.abs(landmarks.world_xyz).max() < 2.0  # metres around the hips
        assert np.abs(landmarks.world_xyz[HIPS].mean(axis=0)).max() < 0.1


@pytest.mark.clips
def test_untracked_person_uses_still_image_mode(segmenter, estimator, two_people):
    persons = segmenter.segment(two_people)[:1]
    joints = estimator.estimate(two_people, persons, 0.0)
    assert [j.track_id for j in joints] == [-1]
    assert estimator.active_tracks() == []


@pytest.mark.clips
def test_retire_drops_only_the_named_tracks(estimator, two_people):
    height, width = two_people.shape[:2]
    boxes = [(20.0, 20.0, 340.0, 350.0), (380.0, 20.0, 700.0, 350.0)]
    persons = [PersonInstance(b, 0.9, track_id=i + 1) for i, b in enumerate(boxes)]
    estimator.estimate(two_people, persons, 0.0)
    assert estimator.active_tracks() == [1, 2]
    estimator.retire([1, 99])
    assert estimator.active_tracks() == [2]
    estimator.reset()
    assert estimator.active_tracks() == []


@pytest.mark.clips
def test_a_recycled_model_finds_the_next_person(segmenter, estimator, two_people):
    """A retired track's model becomes the next newcomer's: it must forget
    where the previous person was."""
    height, width = two_people.shape[:2]
    left, right = sorted(segmenter.segment(two_people), key=lambda p: p.box[0])
    (first,) = estimator.estimate(two_people, [left.with_track(7)], 0.0)
    estimator.retire([7])
    (second,) = estimator.estimate(two_people, [right.with_track(8)], 0.1)
    estimator.retire([8])
    assert first.image_xy[HIPS, 0].max() < width / 2 < second.image_xy[HIPS, 0].min()


def test_empty_frame_finds_nobody(segmenter):
    assert segmenter.segment(np.full((480, 640, 3), 90, np.uint8)) == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640), np.uint8),
        np.zeros((480, 640, 3), np.float32),
        np.zeros((4, 4, 4), np.uint8),
    ],
)
def test_bad_frames_raise_user_error(segmenter, estimator, frame):
    with pytest.raises(UserError):
        segmenter.segment(frame)
    with pytest.raises(UserError):
        estimator.estimate(frame, [], 0.0)


def test_missing_model_file_is_a_user_error():
    with pytest.raises(UserError, match="missing"):
        mediapipe_model("pose_detection/not_shipped.tflite")


@pytest.mark.parametrize("kwargs", [{"max_people": 0}, {"min_score": 1.5}, {"mask_threshold": 0.0}])
def test_bad_segmenter_options_raise_user_error(kwargs):
    with pytest.raises(UserError):
        BlazePoseSegmenter(**kwargs)

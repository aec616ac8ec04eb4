"""Joint backend registry and the JointsStage's handling of odd packets."""

from __future__ import annotations

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import FrameMeta, FramePacket, PersonInstance, PersonJoints
from repcoach.stages.joints import JOINT_ESTIMATORS, JointsStage, make_joint_estimator
from repcoach.stages.tracking import Tracker


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid: blazepose, haar"):
        make_joint_estimator("openpose")


def test_default_is_blazepose():
    from repcoach.stages.blazepose import BlazePoseJoints

    assert isinstance(make_joint_estimator(), BlazePoseJoints)
    assert set(JOINT_ESTIMATORS.names) == {"blazepose", "haar"}


def test_haar_slot_builds_the_haar_backend():
    from repcoach.stages.haar import HaarJoints

    assert isinstance(make_joint_estimator("haar"), HaarJoints)


class _LineEstimator:
    """A stand-in backend (the stage, not the estimator, is under test): puts
    every landmark of a person on its box centre, with noise."""

    def __init__(self) -> None:
        self.retired: list[int] = []
        self._rng = np.random.default_rng(0)

    def estimate(self, frame, persons, pts):
        out = []
        for p in persons:
            cx, cy = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
            xy = np.array([cx, cy]) + self._rng.normal(0, 2.0, (33, 2))
            xy[0] += (0, -100)  # give the skeleton some extent
            out.append(PersonJoints(p.track_id, xy, np.ones(33), np.zeros((33, 3))))
        return out

    def retire(self, track_ids):
        self.retired.extend(track_ids)


def _packet(seq: int, persons, tombstone: bool = False) -> FramePacket:
    meta = FrameMeta("t", seq, seq - 1, 0, 0.0, seq / 30.0, 64, 48)
    pixels = None if tombstone else np.zeros((48, 64, 3), np.uint8)
    return FramePacket(meta, pixels, persons=tuple(persons), tombstone=tombstone)


def test_stage_tracks_smooths_and_retires():
    backend = _LineEstimator()
    stage = JointsStage(backend, Tracker(max_lost_s=0.5, min_hits=1))
    person = PersonInstance((10.0, 10.0, 30.0, 40.0), 0.9)
    raw_jitter, smooth_jitter = [], []
    previous = None
    for seq in range(30):
        out = stage.process(_packet(seq, [person]))
        assert [p.track_id for p in out.persons] == [1]
        xy = out.joints[0].image_xy
        if previous is not None:
            smooth_jitter.append(np.abs(xy - previous).mean())
        previous = xy
    raw = JointsStage(_LineEstimator(), Tracker(min_hits=1), smoothing=False)
    previous = None
    for seq in range(30):
        xy = raw.process(_packet(seq, [person])).joints[0].image_xy
        if previous is not None:
            raw_jitter.append(np.abs(xy - previous).mean())
        previous = xy
    assert np.mean(smooth_jitter[10:]) < 0.6 * np.mean(raw_jitter[10:])
    for seq in range(30, 50):  # the person leaves
        stage.process(_packet(seq, []))
    assert backend.retired == [1]


def test_tombstones_pass_through_untouched():
    stage = JointsStage(_LineEstimator())
    tomb = _packet(3, [], tombstone=True)
    assert stage.process(tomb) is tomb


def _with_landmarks(box, score=0.9) -> PersonInstance:
    x0, y0, x1, y1 = box
    grid = np.linspace(0.1, 0.9, 33)
    xy = np.stack([x0 + (x1 - x0) * grid, y0 + (y1 - y0) * grid[::-1]], axis=1)
    return PersonInstance(
        box, score, landmarks=PersonJoints(-1, xy, np.ones(33), np.zeros((33, 3)))
    )


def test_only_tracked_persons_pass_and_duplicates_never():
    """The segmenter's landmarks pass through with the track id once the
    tracker confirms the person; a second detection of the same body never
    reaches downstream."""
    stage = JointsStage(None, Tracker(min_hits=3))
    body = _with_landmarks((10.0, 5.0, 30.0, 45.0))
    echo = _with_landmarks((11.0, 6.0, 30.0, 44.0), score=0.5)
    seen = []
    for seq in range(5):
        out = stage.process(_packet(seq, [echo, body]))
        assert [p.box for p in out.persons] == ([body.box] if seq >= 2 else [])
        assert all(p.landmarks is None for p in out.persons)
        seen.append([j.track_id for j in out.joints])
    assert seen == [[], [], [1], [1], [1]]

"""Two rendered athletes through segmenter, tracker and joints, against the
renderer's exact truth."""

from __future__ import annotations

import numpy as np
import pytest

from repcoach.common.landmarks import Landmark
from repcoach.common.messages import EndOfStream, FrameMeta, FramePacket
from repcoach.stages.blazepose import BlazePoseJoints, BlazePoseSegmenter
from repcoach.stages.joints import JointsStage
from repcoach.stages.tracking import Tracker

synthetic = pytest.importorskip("repcoach.stages.synthetic")

KEY_JOINTS = [
    Landmark.LEFT_SHOULDER,
    Landmark.RIGHT_SHOULDER,
    Landmark.LEFT_HIP,
    Landmark.RIGHT_HIP,
    Landmark.LEFT_KNEE,
    Landmark.RIGHT_KNEE,
    Landmark.LEFT_ANKLE,
    Landmark.RIGHT_ANKLE,
]
HIPS = [Landmark.LEFT_HIP, Landmark.RIGHT_HIP]


def test_two_rendered_squatters_get_two_stable_ids_and_accurate_joints():
    source = synthetic.SyntheticSource.from_spec("squat,people=2,reps=1,seed=0")
    segmenter = BlazePoseSegmenter()
    stage = JointsStage(BlazePoseJoints(), Tracker())
    counts, ids, errors = [], set(), []
    sampled = 0
    for index, (image, truth) in enumerate(source.frames()):
        if index % 3:
            continue
        sampled += 1
        height, width = image.shape[:2]
        meta = FrameMeta("synthetic", index, index - 3, 0, 0.0, index / source.fps, width, height)
        persons = segmenter.segment(image)
        out = stage.process(FramePacket(meta, image, persons=tuple(persons)))
        counts.append(len(persons))
        ids.update(p.track_id for p in out.persons)
        for joints in out.joints:
            hip_x = joints.image_xy[HIPS, 0].mean()
            person = min(truth.people, key=lambda t: abs(t.joints_xy[HIPS, 0].mean() - hip_x))
            seen = person.visible[KEY_JOINTS]
            miss = np.linalg.norm(
                joints.image_xy[KEY_JOINTS] - person.joints_xy[KEY_JOINTS], axis=1
            )
            body_height = np.ptp(person.joints_xy[:, 1])
            errors.append(np.median(miss[seen]) / body_height)
    stage.end(EndOfStream("synthetic", index, index + 1, 0, "end of file"))

    counts = np.array(counts)
    # Measured: both found in 80-97% of sampled frames depending on seed and
    # reps (the detector is weaker on cartoons than on video), never a third;
    # median key-joint error 1.3-1.6% of body height.
    assert (counts == 2).mean() >= 0.65, np.bincount(counts)
    assert counts.max() <= 2
    assert ids == {1, 2}, f"expected two stable ids, got {sorted(ids)}"
    assert len(errors) >= sampled
    assert np.median(errors) < 0.04, np.median(errors)

"""The joints stage: track ids, landmarks per person, smoothing per track.

`JointsStage` is the packet logic the ordered runner feeds (it sees every
frame in order, which tracking and smoothing need); `make_joint_estimator`
builds a landmark backend by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from repcoach.common.filters import OneEuroFilter
from repcoach.common.messages import EndOfStream, FramePacket, PersonJoints
from repcoach.common.registry import Registry
from repcoach.stages.base import JointEstimator
from repcoach.stages.tracking import Tracker

JOINT_ESTIMATORS = Registry(
    "joint estimator",
    {
        "blazepose": "repcoach.stages.blazepose:BlazePoseJoints",
        "haar": "repcoach.stages.haar:HaarJoints",
    },
)
DEFAULT_JOINT_ESTIMATOR = "blazepose"


def make_joint_estimator(name: str = DEFAULT_JOINT_ESTIMATOR) -> JointEstimator:
    """The landmark backend called `name` (loads its models once)."""
    return JOINT_ESTIMATORS.factory(name.strip().lower())()


@dataclass
class _TrackSmoother:
    """One Euro filters for one track. Image speed is measured in person
    heights per second, world speed in metres per second."""

    image: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(1.0, 10.0))
    world: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(1.0, 10.0))

    def __call__(self, joints: PersonJoints, pts: float) -> PersonJoints:
        extent = float(np.ptp(joints.image_xy, axis=0).max())
        image_xy = self.image(joints.image_xy, pts, value_scale=1.0 / max(extent, 1.0))
        world_xyz = self.world(joints.world_xyz, pts)
        return PersonJoints(
            joints.track_id,
            image_xy.astype(np.float32),
            joints.visibility,
            world_xyz.astype(np.float32),
        )


class JointsStage:
    """Assigns track ids, estimates joints, smooths them per track.

    Persons keep their order; only those the tracker gave an id pass (a
    newcomer after `Tracker.min_hits` frames; a second detection of one
    body never).

    `estimator`: the landmark backend, or None when the segmentation stage
    attaches each person's landmarks itself (the BlazePose default does, in
    its parallel workers); `tracker`: `Tracker()` when None; `smoothing`: One
    Euro filtering of image and world coordinates (visibility passes through
    unfiltered).
    """

    def __init__(
        self,
        estimator: JointEstimator | None,
        tracker: Tracker | None = None,
        smoothing: bool = True,
    ):
        self.estimator = estimator
        self.tracker = tracker if tracker is not None else Tracker()
        self.smoothing = smoothing
        self._smoothers: dict[int, _TrackSmoother] = {}

    def process(self, packet: FramePacket) -> FramePacket:
        if packet.tombstone or (self.estimator is not None and packet.pixels is None):
            return packet
        pts = packet.meta.pts
        # The segment workers measured each person's clothing colours; pixels
        # (when they came) serve a person without them.
        persons = self.tracker.update(list(packet.persons), pts, packet.pixels)
        self._forget(self.tracker.pop_retired())
        # A detection without an id yet (seen too briefly) may be a ghost of
        # the segmenter: it is nobody downstream until the tracker confirms it.
        persons = [p for p in persons if p.track_id >= 0]
        if self.estimator is None:
            joints = [
                dataclasses.replace(p.landmarks, track_id=p.track_id)
                for p in persons
                if p.landmarks is not None
            ]
            # Downstream reads the joints; the copy inside each person is spent.
            persons = [dataclasses.replace(p, landmarks=None) for p in persons]
        else:
            joints = self.estimator.estimate(packet.pixels, persons, pts)
        if self.smoothing:
            joints = [self._smooth(j, pts) for j in joints]
        return packet.replace(persons=tuple(persons), joints=tuple(joints))

    def end(self, eos: EndOfStream) -> None:
        self.tracker.reset()
        self._forget(self.tracker.pop_retired())
        self._smoothers.clear()
        if self.estimator is not None:
            self.estimator.reset()

    def _smooth(self, joints: PersonJoints, pts: float) -> PersonJoints:
        if joints.track_id < 0:
            return joints
        smoother = self._smoothers.setdefault(joints.track_id, _TrackSmoother())
        return smoother(joints, pts)

    def _forget(self, track_ids: list[int]) -> None:
        for track_id in track_ids:
            self._smoothers.pop(track_id, None)
        if self.estimator is not None and track_ids:
            self.estimator.retire(track_ids)

"""Score stage: joint angles per tracked person, and people entering/leaving.

The coaching engine (reps, form rules, cues) plugs in here; until then each
person's score carries the angles the rules will use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import EndOfStream, FeedbackEvent, FramePacket, PersonScore

MIN_VISIBILITY = 0.5
LEAVE_AFTER_S = 2.0

# name -> (a, vertex, c), each side separately.
ANGLES: dict[str, tuple[L, L, L]] = {
    "left_knee": (L.LEFT_HIP, L.LEFT_KNEE, L.LEFT_ANKLE),
    "right_knee": (L.RIGHT_HIP, L.RIGHT_KNEE, L.RIGHT_ANKLE),
    "left_hip": (L.LEFT_SHOULDER, L.LEFT_HIP, L.LEFT_KNEE),
    "right_hip": (L.RIGHT_SHOULDER, L.RIGHT_HIP, L.RIGHT_KNEE),
    "left_elbow": (L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST),
    "right_elbow": (L.RIGHT_SHOULDER, L.RIGHT_ELBOW, L.RIGHT_WRIST),
    "left_shoulder": (L.LEFT_HIP, L.LEFT_SHOULDER, L.LEFT_ELBOW),
    "right_shoulder": (L.RIGHT_HIP, L.RIGHT_SHOULDER, L.RIGHT_ELBOW),
}


def visible_angles(image_xy: np.ndarray, visibility: np.ndarray) -> dict[str, float]:
    """The 2D angles whose three joints are all visible enough to trust."""
    angles = {}
    for name, (a, b, c) in ANGLES.items():
        if min(visibility[a], visibility[b], visibility[c]) >= MIN_VISIBILITY:
            value = joint_angle(image_xy[a], image_xy[b], image_xy[c])
            if not np.isnan(value):
                angles[name] = round(value, 2)
    return angles


@dataclass
class _Person:
    score: PersonScore
    last_pts: float


class AngleScorer:
    """Keeps each person's latest score; reports arrivals and departures."""

    def __init__(self, exercise: str = "auto"):
        self.exercise = None if exercise == "auto" else exercise
        self._people: dict[int, _Person] = {}  # everyone seen this session
        self._present: set[int] = set()
        self._events = 0

    def _event(self, packet: FramePacket, kind: str, track: int, text: str) -> FeedbackEvent:
        self._events += 1
        meta = packet.meta
        return FeedbackEvent(
            event_id=f"{meta.source_id}:{meta.seq}:{self._events}",
            kind=kind,
            track_id=track,
            seq=meta.seq,
            pts=meta.pts,
            text=text,
        )

    def process(self, packet: FramePacket) -> FramePacket:
        pts = packet.meta.pts
        events = []
        scores = []
        for joints in packet.joints:
            score = PersonScore(
                track_id=joints.track_id,
                angles=visible_angles(joints.image_xy, joints.visibility),
                exercise=self.exercise,
            )
            if joints.track_id not in self._present:
                self._present.add(joints.track_id)
                events.append(
                    self._event(packet, "person_enter", joints.track_id, "Welcome! Step in.")
                )
            self._people[joints.track_id] = _Person(score, pts)
            scores.append(score)
        gone = [t for t in self._present if pts - self._people[t].last_pts > LEAVE_AFTER_S]
        for track in sorted(gone):
            self._present.discard(track)
            events.append(self._event(packet, "person_leave", track, "See you next set."))
        return packet.replace(scores=tuple(scores), events=tuple(events))

    def end(self, eos: EndOfStream) -> None:
        pass

    def people(self) -> tuple[PersonScore, ...]:
        """Latest score of everyone seen this session, by track id."""
        return tuple(p.score for _, p in sorted(self._people.items()))

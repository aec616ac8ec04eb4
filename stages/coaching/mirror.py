"""Mirror reflections: a person seen in a gym mirror is detected as a second
person, doing every rep in perfect sync. A reflection is not coached.

Test, for two people in the same frames over `WINDOW_S`: the pose of one,
normalised (hips at the origin, torso length 1) and flipped left-right (x
negated, left and right landmarks swapped), matches the other's normalised
pose frame by frame (mean landmark distance under `SHAPE_MATCH` torso
lengths) while they move (`MIN_TRAVEL`: two people standing still look
alike and are both real), and it matches best with no delay: shifting one
series by up to `LAG_FRAMES` frames either way only makes the match worse.
Matching poses frame by frame, rather than correlating frame-to-frame
motion, keeps landmark jitter out of it: positions are steady where their
differences are mostly noise. People moving together in a class or a team
exercise lag each other by a few frames and are not mirror images of each
other's whole pose. The smaller of the pair (a reflection is further away)
is the reflection, and stays one while both are in view (a reflection also
rests between reps, when there is no motion to compare), through frames
where either pose cannot be read.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import PersonJoints
from repcoach.stages.coaching.measures import MIN_VISIBILITY

WINDOW_S = 2.0
MIN_FRAMES = 20
SHAPE_MATCH = 0.35
LAG_FRAMES = 4
MIN_TRAVEL = 0.3  # torso lengths some landmark must move across the window

_PAIRS = (
    (L.LEFT_SHOULDER, L.RIGHT_SHOULDER),
    (L.LEFT_ELBOW, L.RIGHT_ELBOW),
    (L.LEFT_WRIST, L.RIGHT_WRIST),
    (L.LEFT_HIP, L.RIGHT_HIP),
)
_MARKS = [m for pair in _PAIRS for m in pair]
_SWAPPED = [m for a, b in _PAIRS for m in (b, a)]  # left and right exchanged


def shape(joints: PersonJoints) -> np.ndarray | None:
    """Upper-body landmarks relative to the mid-hip, in torso lengths; None
    unless shoulders and hips are visible. Rows follow `_MARKS`."""
    vis = joints.visibility
    if min(vis[m] for m in (*_PAIRS[0], *_PAIRS[3])) < MIN_VISIBILITY:
        return None
    xy = joints.image_xy.astype(np.float64)
    hip = xy[[L.LEFT_HIP, L.RIGHT_HIP]].mean(axis=0)
    torso = float(np.linalg.norm(xy[[L.LEFT_SHOULDER, L.RIGHT_SHOULDER]].mean(axis=0) - hip))
    if torso < 1e-6:
        return None
    return (xy[_MARKS] - hip) / torso


def flipped(joints: PersonJoints) -> np.ndarray | None:
    """`shape` of the mirror image: x negated, left and right exchanged."""
    mirrored = PersonJoints(
        joints.track_id,
        joints.image_xy * np.array([-1.0, 1.0], dtype=joints.image_xy.dtype),
        joints.visibility,
        joints.world_xyz,
    )
    out = shape(mirrored)
    if out is None:
        return None
    order = [_MARKS.index(m) for m in _SWAPPED]
    return out[order]


class MirrorWatch:
    """Feed every frame's people; `update` returns the track ids that are
    reflections of another person in this frame."""

    def __init__(self) -> None:
        # per track: (pts, shape, flipped shape, torso length in pixels)
        self._seen: dict[int, deque[tuple[float, np.ndarray, np.ndarray, float]]] = {}
        self._of: dict[int, int] = {}  # reflection -> the person it reflects

    def update(self, people: tuple[PersonJoints, ...], pts: float) -> set[int]:
        present = set()
        for joints in people:
            s, f = shape(joints), flipped(joints)
            if s is None or f is None:
                continue
            xy = joints.image_xy
            torso = float(
                np.linalg.norm(
                    xy[[L.LEFT_SHOULDER, L.RIGHT_SHOULDER]].mean(axis=0)
                    - xy[[L.LEFT_HIP, L.RIGHT_HIP]].mean(axis=0)
                )
            )
            history = self._seen.setdefault(joints.track_id, deque())
            history.append((pts, s, f, torso))
            present.add(joints.track_id)
        # A frame or two without a readable pose (a landmark glitch) forgets
        # nobody: a track goes once it has been unseen for the whole window.
        for track, history in list(self._seen.items()):
            while history and pts - history[0][0] > WINDOW_S:
                history.popleft()
            if not history:
                del self._seen[track]
        self._of = {r: p for r, p in self._of.items() if r in self._seen and p in self._seen}
        tracks = sorted(present)
        for i, a in enumerate(tracks):
            for b in tracks[i + 1 :]:
                if a not in self._of and b not in self._of and self.mirrored(a, b):
                    smaller, larger = (a, b) if self._size(a) < self._size(b) else (b, a)
                    self._of[smaller] = larger
        return set(self._of)

    def _size(self, track: int) -> float:
        return float(np.median([t for *_, t in self._seen[track]]))

    def mirrored(self, a: int, b: int) -> bool:
        """Whether `a` and `b` are each other's mirror image over the window."""
        ha = {round(p, 4): (s, f) for p, s, f, _ in self._seen[a]}
        hb = {round(p, 4): s for p, s, _, _ in self._seen[b]}
        common = sorted(set(ha) & set(hb))
        if len(common) < MIN_FRAMES:
            return False
        fa = np.array([ha[p][1] for p in common])  # a flipped
        sb = np.array([hb[p] for p in common])
        if _distance(fa, sb, 0) > SHAPE_MATCH:
            return False
        travel = min(_travel(fa), _travel(sb))
        if travel < MIN_TRAVEL:
            return False
        at = {lag: _distance(fa, sb, lag) for lag in range(-LAG_FRAMES, LAG_FRAMES + 1)}
        return at[0] <= min(at.values())


def _travel(shapes: np.ndarray) -> float:
    """How far the landmark that moves most gets across the window."""
    span = shapes.max(axis=0) - shapes.min(axis=0)
    return float(np.linalg.norm(span, axis=1).max())


def _distance(fa: np.ndarray, sb: np.ndarray, lag: int) -> float:
    """Mean landmark distance between two pose series, `sb` shifted by `lag`
    frames."""
    if lag > 0:
        fa, sb = fa[lag:], sb[:-lag]
    elif lag < 0:
        fa, sb = fa[:lag], sb[-lag:]
    return float(np.linalg.norm(fa - sb, axis=2).mean())

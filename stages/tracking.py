"""Stable person ids across frames.

Each track remembers its last box and a centre velocity; at a new frame the
tracks' boxes are moved forward by that velocity and matched to the new
persons by one optimal assignment (`scipy.optimize.linear_sum_assignment`) on
box overlap plus centre distance. The velocity is what keeps two people who
cross paths from swapping ids. A track that finds no match keeps its id for
`max_age_s` of media time (short occlusions), then retires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance

_NO_MATCH = 1e6


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # x0, y0, x1, y1 at `seen_pts`
    seen_pts: float
    velocity: np.ndarray  # centre px/s
    hits: int = 1

    def predicted(self, pts: float, max_extrapolation_s: float) -> np.ndarray:
        dt = min(max(pts - self.seen_pts, 0.0), max_extrapolation_s)
        return self.box + np.tile(self.velocity * dt, 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4): (N, M)."""
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class Tracker:
    """Assigns stable `track_id`s to the persons of successive frames.

    `max_age_s`: media time a track keeps its id without a match;
    `min_iou`: overlap below which a pair only matches if the centres are
    close; `max_centre_dist`: centre distance, in track-box diagonals, beyond
    which a pair never matches; `velocity_smoothing`: weight of the newest
    velocity measurement (0..1); `max_extrapolation_s`: how far a lost track
    is moved forward by its velocity.
    """

    def __init__(
        self,
        max_age_s: float = 1.0,
        min_iou: float = 0.1,
        max_centre_dist: float = 0.75,
        velocity_smoothing: float = 0.5,
        max_extrapolation_s: float = 0.5,
    ):
        if max_age_s <= 0:
            raise UserError(f"max_age_s must be positive, got {max_age_s}")
        if not 0.0 <= min_iou < 1.0:
            raise UserError(f"min_iou must be in [0, 1), got {min_iou}")
        if max_centre_dist <= 0:
            raise UserError(f"max_centre_dist must be positive, got {max_centre_dist}")
        if not 0.0 < velocity_smoothing <= 1.0:
            raise UserError(f"velocity_smoothing must be in (0, 1], got {velocity_smoothing}")
        self.max_age_s = max_age_s
        self.min_iou = min_iou
        self.max_centre_dist = max_centre_dist
        self.velocity_smoothing = velocity_smoothing
        self.max_extrapolation_s = max_extrapolation_s
        self._tracks: list[_Track] = []
        self._retired: list[int] = []
        self._next_id = 1
        self._last_pts: float | None = None

    @property
    def active_ids(self) -> list[int]:
        """Ids currently held, matched this frame or waiting out an occlusion."""
        return [t.track_id for t in self._tracks]

    def pop_retired(self) -> list[int]:
        """Ids retired since the last call (so per-track state can be freed)."""
        retired, self._retired = self._retired, []
        return retired

    def reset(self) -> None:
        """Forget every track (their ids go to `pop_retired`); ids keep counting."""
        self._retired.extend(t.track_id for t in self._tracks)
        self._tracks = []
        self._last_pts = None

    def update(self, persons: list[PersonInstance], pts: float) -> list[PersonInstance]:
        """The same persons, in the same order, with their track ids set."""
        if self._last_pts is not None and pts < self._last_pts:
            self.reset()  # time went backwards: a new stream
        self._last_pts = pts

        boxes = np.array([p.box for p in persons], dtype=np.float64).reshape(-1, 4)
        assigned = [-1] * len(persons)
        matched_tracks: set[int] = set()
        if self._tracks and len(persons):
            cost = self._cost(boxes, pts)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] >= _NO_MATCH:
                    continue
                track = self._tracks[r]
                self._follow(track, boxes[c], pts)
                assigned[c] = track.track_id
                matched_tracks.add(r)

        survivors = []
        for index, track in enumerate(self._tracks):
            if index in matched_tracks or pts - track.seen_pts <= self.max_age_s:
                survivors.append(track)
            else:
                self._retired.append(track.track_id)
        self._tracks = survivors

        for index, track_id in enumerate(assigned):
            if track_id < 0:
                track = _Track(self._next_id, boxes[index].copy(), pts, np.zeros(2))
                self._next_id += 1
                self._tracks.append(track)
                assigned[index] = track.track_id
        return [p.with_track(track_id) for p, track_id in zip(persons, assigned, strict=True)]

    def _cost(self, boxes: np.ndarray, pts: float) -> np.ndarray:
        """(tracks, persons) cost: 1 - IoU of the predicted track box, plus the
        centre distance in track diagonals; impossible pairs cost `_NO_MATCH`."""
        predicted = np.array([t.predicted(pts, self.max_extrapolation_s) for t in self._tracks])
        iou = box_iou(predicted, boxes)
        track_centres = (predicted[:, :2] + predicted[:, 2:]) / 2.0
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
        diag = np.hypot(predicted[:, 2] - predicted[:, 0], predicted[:, 3] - predicted[:, 1])
        dist = np.linalg.norm(track_centres[:, None, :] - centres[None, :, :], axis=2)
        dist /= np.maximum(diag[:, None], 1e-6)
        cost = (1.0 - iou) + dist
        impossible = (iou < self.min_iou) & (dist > self.max_centre_dist)
        impossible |= dist > 2.0 * self.max_centre_dist
        cost[impossible] = _NO_MATCH
        return cost

    def _follow(self, track: _Track, box: np.ndarray, pts: float) -> None:
        dt = pts - track.seen_pts
        if dt > 0:
            old_centre = (track.box[:2] + track.box[2:]) / 2.0
            new_centre = (box[:2] + box[2:]) / 2.0
            measured = (new_centre - old_centre) / dt
            w = self.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = w * measured + (1.0 - w) * track.velocity
            if not math.isfinite(float(track.velocity.sum())):
                track.velocity = np.zeros(2)
        track.box = box.copy()
        track.seen_pts = pts
        track.hits += 1

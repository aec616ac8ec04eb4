"""Stable person ids across frames: one id per real person.

Each detection is turned into an `Observation` (`person_features`): anchor
points (landmarks, else box corners), size, body proportions and clothing
colours. Every frame, the held tracks are matched to the detections by an
optimal assignment (`scipy.optimize.linear_sum_assignment`) whose cost is
how far the person moved from where their track predicts them (in body
sizes, so near and far people are treated alike), how different their
clothes and proportions look, and how long the track has been unseen:
first the tracks with an id, then the tentative ones (below) on the
detections left over.

- Motion: a track's points move forward by its centre velocity, which is
  what keeps two people who cross paths from swapping ids.
- Occlusions and short exits: a track that finds no match is kept, lost,
  for `max_lost_s`; the distance it may be found at grows with the time it
  has been unseen, and its colours and proportions must still fit, so the
  same person gets the old id back and a different-looking one does not.
  Only after that window is the id retired (`pop_retired`).
- Flicker: a new track gets an id only after `min_hits` frames in a row;
  until then its person carries track id -1 (a one-frame ghost of the
  segmenter never becomes a person).
- Duplicates: two detections of one frame whose boxes overlap and whose
  landmarks lie on each other are one body; the weaker is dropped.

Every table is bounded: at most `max_tracks` ids held, of which at most
`max_lost` lost, and tentative tracks only for this frame's detections. The
result is a pure function of the frames in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance
from repcoach.stages.person_features import (
    MIN_VISIBILITY,
    Observation,
    colour_distance,
    observe,
    proportion_distance,
)

_NO_MATCH = 1e6
# Fewest landmarks two observations must both see for a landmark comparison.
_MIN_SHARED = 6
# Typical body-proportion distance between two people (measured on the
# shared clips: same person ~0.05, two people ~0.13): the cost's unit.
_PROPORTION_SCALE = 0.1
# Weight of the newest observation in a track's running colours, sizes and
# proportions: slow enough that one odd frame (an arm across the body, a
# mask that bled into the bench) hardly moves them.
_MODEL_RATE = 0.1
_SIZE_RATE = 0.3
# A detection whose box shares more than this of its area with another's
# is partly someone else: it updates no colours.
_MAX_SHARED_AREA = 0.25
# A track seen in the previous frame, this little before, is being followed
# (a longer gap between two frames is a stalled stream: re-identification).
_FOLLOW_GAP_S = 0.2


@dataclass
class _Track:
    track_id: int  # -1 while tentative
    box: np.ndarray  # x0, y0, x1, y1 when last seen
    observation: Observation  # when last seen
    seen_pts: float
    size: float  # running person size, pixels
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre px/s
    hits: int = 1
    proportions: np.ndarray | None = None
    colours: np.ndarray | None = None

    def shift(self, pts: float, max_extrapolation_s: float) -> np.ndarray:
        """Where the track's motion has carried it since it was seen."""
        return self.velocity * min(max(pts - self.seen_pts, 0.0), max_extrapolation_s)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4): (N, M)."""
    inter = _intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)


def point_distance(a: Observation, b: Observation, shift: np.ndarray | None = None) -> float:
    """Mean distance in pixels between two observations' shared anchor points
    (`a`'s moved by `shift`): landmarks both saw when both have landmarks,
    box corners and centre when neither has, else the centres."""
    offset = np.zeros(2) if shift is None else shift
    if a.has_landmarks and b.has_landmarks:
        both = (a.weights >= MIN_VISIBILITY) & (b.weights >= MIN_VISIBILITY)
        if int(both.sum()) >= _MIN_SHARED:
            gaps = np.linalg.norm(a.points[both] + offset - b.points[both], axis=1)
            return float(gaps.mean())
    elif not a.has_landmarks and not b.has_landmarks:
        return float(np.linalg.norm(a.points + offset - b.points, axis=1).mean())
    return float(np.linalg.norm(a.centre + offset - b.centre))


class Tracker:
    """Assigns stable `track_id`s to the persons of successive frames.

    `max_lost_s`: media time an unseen track keeps its id (occlusions, short
    exits from view); `max_lost`: most unseen tracks kept (the oldest retire
    first); `max_tracks`: most ids held at once; `min_hits`: frames in a row
    a newcomer must be seen before getting an id; `max_shift`: how far (in
    person sizes) a track may be found from its prediction one frame later,
    growing by `lost_reach_per_s` per second unseen up to `max_reach`;
    `max_colour_distance`: clothing colours further apart than this (0..1)
    are never the same person; `velocity_smoothing`: weight of the newest
    velocity measurement (0..1]; `max_extrapolation_s`: how far an unseen
    track is carried forward by its velocity; `duplicate_distance`: landmarks
    of two detections closer than this (person sizes) are one body.
    """

    def __init__(
        self,
        max_lost_s: float = 3.0,
        max_lost: int = 8,
        max_tracks: int = 16,
        min_hits: int = 3,
        max_shift: float = 0.6,
        lost_reach_per_s: float = 1.0,
        max_reach: float = 2.0,
        max_colour_distance: float = 0.6,
        velocity_smoothing: float = 0.5,
        max_extrapolation_s: float = 0.5,
        duplicate_distance: float = 0.1,
    ):
        if max_lost_s <= 0:
            raise UserError(f"max_lost_s must be positive, got {max_lost_s}")
        if max_lost < 0:
            raise UserError(f"max_lost must be 0 or more, got {max_lost}")
        if max_tracks < 1:
            raise UserError(f"max_tracks must be at least 1, got {max_tracks}")
        if min_hits < 1:
            raise UserError(f"min_hits must be at least 1, got {min_hits}")
        if max_shift <= 0 or max_reach < max_shift or lost_reach_per_s < 0:
            raise UserError(
                "need max_shift > 0, max_reach >= max_shift and lost_reach_per_s >= 0, "
                f"got {max_shift}, {max_reach}, {lost_reach_per_s}"
            )
        if not 0.0 < max_colour_distance <= 1.0:
            raise UserError(f"max_colour_distance must be in (0, 1], got {max_colour_distance}")
        if not 0.0 < velocity_smoothing <= 1.0:
            raise UserError(f"velocity_smoothing must be in (0, 1], got {velocity_smoothing}")
        self.max_lost_s = max_lost_s
        self.max_lost = max_lost
        self.max_tracks = max_tracks
        self.min_hits = min_hits
        self.max_shift = max_shift
        self.lost_reach_per_s = lost_reach_per_s
        self.max_reach = max_reach
        self.max_colour_distance = max_colour_distance
        self.velocity_smoothing = velocity_smoothing
        self.max_extrapolation_s = max_extrapolation_s
        self.duplicate_distance = duplicate_distance
        self._tracks: list[_Track] = []
        self._retired: list[int] = []
        self._next_id = 1
        self._last_pts: float | None = None

    @property
    def active_ids(self) -> list[int]:
        """Ids currently held, seen this frame or lost and waiting."""
        return [t.track_id for t in self._tracks if t.track_id >= 0]

    @property
    def lost_ids(self) -> list[int]:
        """Ids held but not seen in the last frame."""
        return [
            t.track_id for t in self._tracks if t.track_id >= 0 and t.seen_pts != self._last_pts
        ]

    def pop_retired(self) -> list[int]:
        """Ids retired since the last call (so per-track state can be freed)."""
        retired, self._retired = self._retired, []
        return retired

    def reset(self) -> None:
        """Forget every track (their ids go to `pop_retired`); ids keep counting."""
        self._retired.extend(self.active_ids)
        self._tracks = []
        self._last_pts = None

    def update(
        self, persons: list[PersonInstance], pts: float, frame: np.ndarray | None = None
    ) -> list[PersonInstance]:
        """The persons, in their order, with track ids set (-1: not yet a
        person, see `min_hits`); a duplicate of another's body is left out.
        `frame` (BGR, the one the masks were cut from) adds clothing colours."""
        if self._last_pts is not None and pts < self._last_pts:
            self.reset()  # time went backwards: a new stream
        previous_pts, self._last_pts = self._last_pts, pts
        observations = [observe(p, frame) for p in persons]
        keep = self._not_duplicates(persons, observations)
        persons = [p for p, k in zip(persons, keep, strict=True) if k]
        observations = [o for o, k in zip(observations, keep, strict=True) if k]
        boxes = np.array([p.box for p in persons], dtype=np.float64).reshape(-1, 4)
        clean = self._clean(boxes)

        owners: list[_Track | None] = [None] * len(persons)  # each detection's track
        # People with an id are matched first; tentative tracks only take
        # what is left (see `_assign`).
        for tentative in (False, True):
            tracks = [t for t in self._tracks if (t.track_id < 0) == tentative]
            free = [c for c, owner in enumerate(owners) if owner is None]
            for r, c in self._assign(tracks, [observations[c] for c in free], pts, previous_pts):
                owners[free[c]] = tracks[r]
        for c, track in enumerate(owners):
            if track is not None:
                self._follow(track, boxes[c], observations[c], pts, bool(clean[c]))
        self._tracks = [t for t in self._tracks if t.seen_pts == pts or self._still_held(t, pts)]
        for c, track in enumerate(owners):
            if track is None:
                owners[c] = self._start(boxes[c], observations[c], pts)
                self._tracks.append(owners[c])
        self._bound(pts)
        self._confirm()
        return [
            p.with_track(t.track_id if t is not None else -1)
            for p, t in zip(persons, owners, strict=True)
        ]

    # --- matching

    def _assign(
        self,
        tracks: list[_Track],
        observations: list[Observation],
        pts: float,
        previous_pts: float | None,
    ) -> list[tuple[int, int]]:
        """(track, detection) index pairs: of the assignments that pair as
        many as can be paired, the cheapest.

        As many as can be paired: with a tentative track in the same round,
        a person with an id could be pushed onto a worse detection so that
        the newcomer got theirs (a second detection of a squatting body
        started a track beside the athlete; the athlete's id went to the
        double, and the athlete was given a new one). Hence the rounds."""
        if not tracks or not observations:
            return []
        cost = self._cost(tracks, observations, pts, previous_pts)
        rows, cols = linear_sum_assignment(cost)
        return [(r, c) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_MATCH]

    def _cost(
        self,
        tracks: list[_Track],
        observations: list[Observation],
        pts: float,
        previous_pts: float | None,
    ) -> np.ndarray:
        """(tracks, detections) cost; impossible pairs cost `_NO_MATCH`.

        Clothing colours only forbid a match for a track that missed a
        frame (re-identification): one followed frame to frame keeps its
        person through a change of light or an overlay fading in.
        """
        cost = np.full((len(tracks), len(observations)), _NO_MATCH)
        for r, track in enumerate(tracks):
            unseen = max(pts - track.seen_pts, 0.0)
            followed = track.seen_pts == previous_pts and unseen <= _FOLLOW_GAP_S
            reach = min(self.max_shift + self.lost_reach_per_s * unseen, self.max_reach)
            shift = track.shift(pts, self.max_extrapolation_s)
            for c, observation in enumerate(observations):
                moved = point_distance(track.observation, observation, shift) / track.size
                if moved > reach:
                    continue
                colours = colour_distance(track.colours, observation.colours)
                if colours > self.max_colour_distance and not followed:
                    continue
                body = proportion_distance(track.proportions, observation.proportions)
                total = moved / reach + unseen
                if not math.isnan(colours):
                    total += min(colours / self.max_colour_distance, 1.5)
                total += 0.0 if math.isnan(body) else min(body / _PROPORTION_SCALE, 2.0) * 0.5
                cost[r, c] = total
        return cost

    def _still_held(self, track: _Track, pts: float) -> bool:
        """Unmatched: a tentative track ends, an id waits out `max_lost_s`."""
        if track.track_id < 0:
            return False
        if pts - track.seen_pts <= self.max_lost_s:
            return True
        self._retired.append(track.track_id)
        return False

    def _not_duplicates(
        self, persons: list[PersonInstance], observations: list[Observation]
    ) -> list[bool]:
        """False for a detection whose body another, stronger one already is:
        overlapping boxes and landmarks lying on each other."""
        keep = [True] * len(persons)
        if len(persons) < 2:
            return keep
        boxes = np.array([p.box for p in persons], dtype=np.float64)
        inter = _intersection(boxes, boxes)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        shared = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
        order = sorted(range(len(persons)), key=lambda i: (-persons[i].score, i))
        for rank, i in enumerate(order):
            if not keep[i] or not observations[i].has_landmarks:
                continue
            for j in order[rank + 1 :]:
                if not keep[j] or not observations[j].has_landmarks or shared[i, j] < 0.5:
                    continue
                size = min(observations[i].size, observations[j].size)
                if (
                    point_distance(observations[i], observations[j])
                    < self.duplicate_distance * size
                ):
                    keep[j] = False
        return keep

    @staticmethod
    def _clean(boxes: np.ndarray) -> np.ndarray:
        """Detections that share little of their box with another: only their
        pixels describe one person's clothes."""
        if len(boxes) < 2:
            return np.ones(len(boxes), dtype=bool)
        inter = _intersection(boxes, boxes)
        np.fill_diagonal(inter, 0.0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return inter.sum(axis=1) <= _MAX_SHARED_AREA * np.maximum(area, 1e-9)

    # --- track life

    def _start(self, box: np.ndarray, observation: Observation, pts: float) -> _Track:
        return _Track(
            -1,
            box.copy(),
            observation,
            pts,
            observation.size,
            proportions=observation.proportions,
            colours=observation.colours,
        )

    def _follow(
        self, track: _Track, box: np.ndarray, observation: Observation, pts: float, clean: bool
    ) -> None:
        dt = pts - track.seen_pts
        if dt > 0:
            measured = (observation.centre - track.observation.centre) / dt
            w = self.velocity_smoothing if track.hits > 1 else 1.0
            track.velocity = w * measured + (1.0 - w) * track.velocity
            if not math.isfinite(float(track.velocity.sum())):
                track.velocity = np.zeros(2)
        track.size += _SIZE_RATE * (observation.size - track.size)
        track.proportions = _blend(track.proportions, observation.proportions)
        if clean:
            track.colours = _blend(track.colours, observation.colours)
        track.box = box.copy()
        track.observation = observation
        track.seen_pts = pts
        track.hits += 1

    def _confirm(self) -> None:
        """Tentative tracks seen `min_hits` frames in a row get their id
        (while fewer than `max_tracks` are held)."""
        held = len(self.active_ids)
        for track in self._tracks:
            if track.track_id < 0 and track.hits >= self.min_hits and held < self.max_tracks:
                track.track_id = self._next_id
                self._next_id += 1
                held += 1

    def _bound(self, pts: float) -> None:
        """Retire the longest-unseen ids beyond `max_lost` lost or
        `max_tracks` held."""
        held = [t for t in self._tracks if t.track_id >= 0]
        lost = sorted((t for t in held if t.seen_pts < pts), key=lambda t: (t.seen_pts, t.track_id))
        excess = lost[: max(len(lost) - self.max_lost, len(held) - self.max_tracks, 0)]
        self._retired.extend(t.track_id for t in excess)
        self._tracks = [t for t in self._tracks if all(t is not e for e in excess)]


def _blend(model: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
    """Running average of a track's signature; NaN parts (unseen) of either
    side leave the other's value."""
    if new is None:
        return model
    if model is None:
        return new.copy()
    out = np.where(np.isnan(model), new, model + _MODEL_RATE * (new - model))
    return np.where(np.isnan(new), model, out)

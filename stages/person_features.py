"""What tells one person from another, measured on one detection.

`Observation` holds, for one person in one frame: where they are (anchor
points: the visible landmarks, else the box corners and centre), how big
they are (their extent, so every distance is in body sizes and the tracker
is blind to scale), their body proportions (limb lengths over their sum,
from BlazePose's world landmarks, so the camera angle hardly changes them)
and the colour of their clothes (hue/grey histograms of the pixels under
their mask, upper and lower body apart). Each part is optional: the
tracker works from boxes alone (tests, Haar) and uses whatever else it gets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from repcoach.common.landmarks import Landmark
from repcoach.common.messages import PersonInstance, PersonJoints

# A landmark this visible counts as seen.
MIN_VISIBILITY = 0.5
# Fewer seen landmarks than this: place the person by their box instead.
_MIN_SEEN = 6

# Bones whose lengths make the body-proportion signature; left and right are
# averaged (BlazePose swaps sides in side views).
_BONES = (
    (
        (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW),
        (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW),
    ),
    ((Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST), (Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST)),
    ((Landmark.LEFT_HIP, Landmark.LEFT_KNEE), (Landmark.RIGHT_HIP, Landmark.RIGHT_KNEE)),
    ((Landmark.LEFT_KNEE, Landmark.LEFT_ANKLE), (Landmark.RIGHT_KNEE, Landmark.RIGHT_ANKLE)),
    ((Landmark.LEFT_SHOULDER, Landmark.LEFT_HIP), (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_HIP)),
    ((Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER),),
    ((Landmark.LEFT_HIP, Landmark.RIGHT_HIP),),
)
_BONE_ENDS = np.array([pair for sides in _BONES for pair in sides], dtype=np.intp)
_BONE_OF = np.array([i for i, sides in enumerate(_BONES) for _ in sides], dtype=np.intp)

# Colour histogram: pixels with enough saturation and light go to one of
# `_HUES` hue bins (x2 saturation levels); the rest (black, grey, white gym
# clothes) to one of `_GREYS` brightness bins.
_HUES = 8
_GREYS = 4
COLOUR_BINS = 2 * _HUES + _GREYS
_MIN_SAT = 50
_MIN_VAL = 50
# Pixels sampled across a person's height (the crop is strided down to this).
_SAMPLE_ROWS = 48
# A body part with fewer sampled mask pixels has no histogram.
_MIN_PART_PIXELS = 24


@dataclass(frozen=True)
class Observation:
    """One person in one frame, as the tracker compares them.

    `points` (K, 2) pixels with `weights` (K,) 0..1: landmarks (33, weighted
    by visibility) or, without landmarks, the box's two corners and centre;
    `has_landmarks` says which. `centre`: the torso centre (or box centre);
    `size`: the person's extent in pixels; `proportions` (7,) bone lengths
    over their sum, NaN where unseen, or None; `colours` (2, COLOUR_BINS)
    upper- and lower-body histograms (rows summing to 1, NaN where the part
    was not seen), or None.
    """

    points: np.ndarray
    weights: np.ndarray
    has_landmarks: bool
    centre: np.ndarray
    size: float
    proportions: np.ndarray | None = None
    colours: np.ndarray | None = None


def box_points(box: np.ndarray) -> np.ndarray:
    """The box's corners and centre as anchor points (3, 2)."""
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y1], [(x0 + x1) / 2.0, (y0 + y1) / 2.0]])


def observe(person: PersonInstance, frame: np.ndarray | None = None) -> Observation:
    """Everything the tracker can use about `person`; colours as measured
    where the person was found (`with_colours`), else from `frame` and the
    person's mask when both are given."""
    box = np.asarray(person.box, dtype=np.float64)
    box_size = float(max(box[2] - box[0], box[3] - box[1], 1.0))
    joints = person.landmarks
    seen = None if joints is None else joints.visibility >= MIN_VISIBILITY
    if joints is None or seen is None or int(seen.sum()) < _MIN_SEEN:
        points = box_points(box)
        observation = Observation(points, np.ones(3), False, points[2].copy(), box_size)
    else:
        xy = joints.image_xy.astype(np.float64)
        extent = float(np.ptp(xy[seen], axis=0).max())
        observation = Observation(
            xy,
            np.clip(joints.visibility.astype(np.float64), 0.0, 1.0),
            True,
            _torso_centre(xy, seen, box),
            max(extent, 0.5 * box_size, 1.0),
            proportions(joints),
        )
    if person.colours is not None:
        colours = person.colours
    elif frame is not None and person.mask is not None:
        colours = colour_histograms(frame, person, observation)
    else:
        return observation
    return Observation(**{**observation.__dict__, "colours": colours})


def with_colours(persons: list[PersonInstance], frame: np.ndarray) -> list[PersonInstance]:
    """The persons carrying their clothing colours (`PersonInstance.colours`),
    measured here on the frame they were found in: the segment workers do
    this, so the frame's pixels need not go on to the tracker."""
    return [
        dataclasses.replace(p, colours=colour_histograms(frame, p, observe(p)))
        if p.mask is not None
        else p
        for p in persons
    ]


def _torso_centre(xy: np.ndarray, seen: np.ndarray, box: np.ndarray) -> np.ndarray:
    torso = [Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER, Landmark.LEFT_HIP, Landmark.RIGHT_HIP]
    visible = [i for i in torso if seen[i]]
    if len(visible) >= 2:
        return xy[visible].mean(axis=0)
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def proportions(joints: PersonJoints) -> np.ndarray | None:
    """Bone lengths (metres, world landmarks) over their sum; NaN for bones
    whose ends were not seen; None when fewer than four bones were."""
    world = joints.world_xyz.astype(np.float64)
    seen = joints.visibility >= MIN_VISIBILITY
    lengths = np.linalg.norm(world[_BONE_ENDS[:, 0]] - world[_BONE_ENDS[:, 1]], axis=1)
    lengths = np.where(seen[_BONE_ENDS].all(axis=1), lengths, np.nan)
    per_bone = np.full(len(_BONES), np.nan)
    found = np.isfinite(lengths)
    sums = np.bincount(_BONE_OF[found], lengths[found], minlength=len(_BONES))
    counts = np.bincount(_BONE_OF[found], minlength=len(_BONES))
    per_bone[counts > 0] = sums[counts > 0] / counts[counts > 0]
    if (counts > 0).sum() < 4 or np.nansum(per_bone) <= 0:
        return None
    return per_bone / float(np.nansum(per_bone))


def proportion_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Mean absolute log-ratio of the bones both saw; NaN if fewer than four."""
    if a is None or b is None:
        return float("nan")
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if both.sum() < 4:
        return float("nan")
    ra, rb = a[both] / a[both].sum(), b[both] / b[both].sum()
    return float(np.mean(np.abs(np.log(ra / rb))))


def colour_histograms(
    frame: np.ndarray, person: PersonInstance, observation: Observation
) -> np.ndarray | None:
    """Upper- and lower-body colour histograms (2, COLOUR_BINS) of the
    frame's pixels under the person's mask; None when nothing was seen.

    The crop is sampled with a stride (about `_SAMPLE_ROWS` rows a person),
    which keeps the cost flat whatever the resolution and the histograms
    independent of the person's size. Upper and lower body are split by the
    landmarks (a pixel belongs to the nearer of the torso and the legs, so a
    lying push-up is split as well as a standing squat), else at the box's
    middle row.
    """
    if person.mask is None or not person.mask.any():
        return None
    height, width = frame.shape[:2]
    mx0, my0, mx1, my1 = person.mask_box()
    cx0, cy0, cx1, cy1 = max(mx0, 0), max(my0, 0), min(mx1, width), min(my1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    stride = max(1, max(cy1 - cy0, cx1 - cx0) // _SAMPLE_ROWS)
    mask = person.mask[cy0 - my0 : cy1 - my0 : stride, cx0 - mx0 : cx1 - mx0 : stride]
    crop = np.ascontiguousarray(frame[cy0:cy1:stride, cx0:cx1:stride])
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)[mask]
    if len(hsv) < _MIN_PART_PIXELS:
        return None
    ys, xs = np.nonzero(mask)
    xs = xs * stride + cx0
    ys = ys * stride + cy0
    upper = _upper_body(xs, ys, observation, (cy0 + cy1) / 2.0)
    bins = _colour_bins(hsv)
    out = np.full((2, COLOUR_BINS), np.nan)
    for row, part in enumerate((upper, ~upper)):
        if int(part.sum()) >= _MIN_PART_PIXELS:
            counts = np.bincount(bins[part], minlength=COLOUR_BINS).astype(np.float64)
            out[row] = counts / counts.sum()
    return out if np.isfinite(out).any() else None


def _colour_bins(hsv: np.ndarray) -> np.ndarray:
    hue, sat, val = hsv[:, 0].astype(np.int32), hsv[:, 1], hsv[:, 2]
    chromatic = (sat >= _MIN_SAT) & (val >= _MIN_VAL)
    hue_bin = (hue * _HUES) // 180  # OpenCV hue is 0..179
    sat_level = (sat >= 150).astype(np.int32)
    grey_bin = 2 * _HUES + (val.astype(np.int32) * _GREYS) // 256
    return np.where(chromatic, hue_bin * 2 + sat_level, grey_bin)


def _upper_body(
    xs: np.ndarray, ys: np.ndarray, observation: Observation, mid_y: float
) -> np.ndarray:
    """Which sampled pixels belong to the upper body: those on the shoulders'
    side of the line through the hips square to the trunk (works lying as
    well as standing); without a seen trunk, those above the box's middle."""
    if not observation.has_landmarks:
        return ys < mid_y
    xy, seen = observation.points, observation.weights >= MIN_VISIBILITY
    shoulders = [i for i in (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER) if seen[i]]
    hips = [i for i in (Landmark.LEFT_HIP, Landmark.RIGHT_HIP) if seen[i]]
    if not shoulders or not hips:
        return ys < mid_y
    hip = xy[hips].mean(axis=0)
    up = xy[shoulders].mean(axis=0) - hip
    return (xs - hip[0]) * up[0] + (ys - hip[1]) * up[1] > 0


def colour_distance(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Hellinger distance (0 same .. 1 disjoint) averaged over the body
    parts both saw; NaN when they share none."""
    if a is None or b is None:
        return float("nan")
    found = []
    for part in range(2):
        if np.isfinite(a[part]).all() and np.isfinite(b[part]).all():
            overlap = float(np.sqrt(a[part] * b[part]).sum())
            found.append(np.sqrt(max(0.0, 1.0 - overlap)))
    return float(np.mean(found)) if found else float("nan")

"""Joints from Haar cascades and the person mask: the paper's method, kept as
a baseline to show why BlazePose is the default.

The paper places joints with OpenCV's Haar cascades (face, upper body, lower
body, full body) on the Mask R-CNN person. Cascades give boxes, not joints,
so most joints come from the mask's geometry:

- the body axis is the mask's principal axis; positions along it follow
  standing-body proportions (nose 6% of the length from the head end,
  shoulders 18%, hips 47%, knees 71.5%, ankles 96%);
- across the axis, shoulders and hips sit inside the mask's width there;
  knees and ankles at the two leg runs when the legs are apart;
- a wrist is the mask's farthest point sideways when an arm sticks out,
  else it hangs beside the hip; an elbow is halfway.

A frontal face (which also fixes left and right: the person faces the
camera) or an upper body found by its cascade replaces the mask's guess for
the joints it covers, if the box lies on the mask at a plausible height; a
lower body only confirms the leg joints (raises their visibility); a full
body narrows a person that has a box but no mask.
Eyes, ears and mouth are placed only
from a face; hands, heels and toes are never placed (visibility 0), nor is
anything in 3D (world_xyz zeros). Without a face the person is assumed to
face the camera, so the person's left is on the image's right.

All of this breaks when the body is folded (a deep squat) or seen from the
side: see bench/joints_baseline.py for the measured errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.landmarks import NUM_LANDMARKS, Landmark
from repcoach.common.messages import PersonInstance, PersonJoints

CASCADE_FILES = {
    "face": "haarcascade_frontalface_default.xml",
    "upper": "haarcascade_upperbody.xml",
    "lower": "haarcascade_lowerbody.xml",
    "full": "haarcascade_fullbody.xml",
}
# Along the body from the head end, as a share of its length (standing
# proportions after Drillis & Contini, rounded).
NOSE_AT, SHOULDER_AT, HIP_AT, KNEE_AT, ANKLE_AT, HANG_WRIST_AT = 0.06, 0.18, 0.47, 0.715, 0.96, 0.5
CASCADE_VISIBILITY = 0.9  # a cascade found the body part
MASK_VISIBILITY = 0.6  # guessed from the mask's shape alone
SEARCH_HEIGHT = 320  # the person crop is scaled to this height for the cascades
MIN_MASK_PIXELS = 64

_PAIRS = {
    "shoulder": (Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER),
    "elbow": (Landmark.LEFT_ELBOW, Landmark.RIGHT_ELBOW),
    "wrist": (Landmark.LEFT_WRIST, Landmark.RIGHT_WRIST),
    "hip": (Landmark.LEFT_HIP, Landmark.RIGHT_HIP),
    "knee": (Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE),
    "ankle": (Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE),
}
# Face landmarks inside a frontal-face box, as (x, y) shares of its size;
# the person's left is on the image's right.
_FACE_POINTS = {
    Landmark.NOSE: (0.50, 0.60),
    Landmark.LEFT_EYE_INNER: (0.58, 0.40),
    Landmark.LEFT_EYE: (0.66, 0.40),
    Landmark.LEFT_EYE_OUTER: (0.74, 0.40),
    Landmark.RIGHT_EYE_INNER: (0.42, 0.40),
    Landmark.RIGHT_EYE: (0.34, 0.40),
    Landmark.RIGHT_EYE_OUTER: (0.26, 0.40),
    Landmark.LEFT_EAR: (0.92, 0.48),
    Landmark.RIGHT_EAR: (0.08, 0.48),
    Landmark.MOUTH_LEFT: (0.60, 0.78),
    Landmark.MOUTH_RIGHT: (0.40, 0.78),
}
# Shoulders inside an upper-body (head and shoulders) box.
_UPPER_POINTS = {Landmark.LEFT_SHOULDER: (0.82, 0.86), Landmark.RIGHT_SHOULDER: (0.18, 0.86)}
_LEGS = (
    Landmark.LEFT_HIP,
    Landmark.RIGHT_HIP,
    Landmark.LEFT_KNEE,
    Landmark.RIGHT_KNEE,
    Landmark.LEFT_ANKLE,
    Landmark.RIGHT_ANKLE,
)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


@dataclass(frozen=True)
class CascadeHits:
    """The largest box each cascade found for one person (frame pixels)."""

    face: Box | None = None
    upper: Box | None = None
    lower: Box | None = None
    full: Box | None = None


@dataclass(frozen=True)
class BodyAxis:
    """The mask in body coordinates: `t` along the body from the head end
    (0) to the feet end (`length`), `s` across it (+s is the person's left
    when they face the camera)."""

    origin: np.ndarray  # frame xy of t = 0, s = 0
    down: np.ndarray  # unit vector head -> feet
    across: np.ndarray  # unit vector of +s
    length: float
    t: np.ndarray  # per mask pixel
    s: np.ndarray

    def point(self, t: float, s: float) -> np.ndarray:
        return self.origin + t * self.down + s * self.across

    def runs(self, share: float, min_gap: float = 3.0) -> list[tuple[float, float]]:
        """Mask runs (s_start, s_end) across the body at `share` of its
        length, widest first; gaps under `min_gap` px are bridged."""
        half = max(2.0, 0.015 * self.length)
        s = np.sort(self.s[np.abs(self.t - share * self.length) <= half])
        if s.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(s) > min_gap)
        starts = np.r_[s[0], s[breaks + 1]]
        ends = np.r_[s[breaks], s[-1]]
        order = np.argsort(starts - ends)  # widest first
        return [(float(starts[i]), float(ends[i])) for i in order]


class HaarJoints:
    """`JointEstimator` from Haar cascades plus mask geometry (see module doc).

    `use_cascades=False` keeps only the mask geometry (for comparisons).
    """

    def __init__(self, use_cascades: bool = True):
        self.use_cascades = use_cascades
        self._cascades = _load_cascades() if use_cascades else {}

    def estimate(
        self, frame: np.ndarray, persons: list[PersonInstance], pts: float
    ) -> list[PersonJoints]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return [self._one(gray, person) for person in persons]

    def retire(self, track_ids: list[int]) -> None:
        pass  # nothing kept per track

    def reset(self) -> None:
        pass

    def find_parts(self, gray: np.ndarray, box: Box) -> CascadeHits:
        """Run every cascade on the person's crop, scaled to SEARCH_HEIGHT."""
        height, width = gray.shape
        x0, y0, x1, y1 = box
        pad_x, pad_y = 0.1 * (x1 - x0), 0.05 * (y1 - y0)
        cx0, cy0 = max(0, int(x0 - pad_x)), max(0, int(y0 - pad_y))
        cx1, cy1 = min(width, int(np.ceil(x1 + pad_x))), min(height, int(np.ceil(y1 + pad_y)))
        if cx1 - cx0 < 8 or cy1 - cy0 < 8:
            return CascadeHits()
        scale = SEARCH_HEIGHT / (cy1 - cy0)
        crop = cv2.resize(gray[cy0:cy1, cx0:cx1], None, fx=scale, fy=scale)
        crop = cv2.equalizeHist(crop)
        side = min(crop.shape)
        minimum = {"face": 0.06, "upper": 0.2, "lower": 0.25, "full": 0.3}
        hits = {}
        for part, cascade in self._cascades.items():
            size = max(12, int(minimum[part] * side))
            found = cascade.detectMultiScale(crop, 1.1, 3, minSize=(size, size))
            if len(found):
                bx, by, bw, bh = max(found, key=lambda b: b[2] * b[3])
                hits[part] = (
                    cx0 + bx / scale,
                    cy0 + by / scale,
                    cx0 + (bx + bw) / scale,
                    cy0 + (by + bh) / scale,
                )
        return CascadeHits(**hits)

    def _one(self, gray: np.ndarray, person: PersonInstance) -> PersonJoints:
        xy = np.zeros((NUM_LANDMARKS, 2), np.float32)
        visibility = np.zeros(NUM_LANDMARKS, np.float32)
        world = np.zeros((NUM_LANDMARKS, 3), np.float32)
        height, width = gray.shape
        mask = person.full_mask(width, height) if person.mask is not None else None
        hits = self.find_parts(gray, person.box) if self.use_cascades else CascadeHits()
        if mask is None:  # a box-only person: the full-body cascade may narrow it
            mask = _box_mask(person.box, width, height)
            if hits.full is not None and _inside(hits.full, person.box):
                mask = _box_mask(hits.full, width, height)
        axis = body_axis(mask)
        hits = plausible(hits, mask, axis)
        if axis is not None:
            for joint, point in mask_joints(axis).items():
                xy[joint], visibility[joint] = point, MASK_VISIBILITY
        for box, points in ((hits.face, _FACE_POINTS), (hits.upper, _UPPER_POINTS)):
            if box is not None:
                for joint, point in _in_box(box, points).items():
                    xy[joint], visibility[joint] = point, CASCADE_VISIBILITY
        if hits.upper is not None:
            _rejoin_arms(xy, visibility)
        if hits.lower is not None:
            # Its boxes span anything from the thighs to the feet (measured on
            # the shared clips), so it only confirms the mask's leg joints.
            legs = [joint for joint in _LEGS if visibility[joint] > 0]
            visibility[legs] = CASCADE_VISIBILITY
        return PersonJoints(person.track_id, xy, visibility, world)


# Where along the body (share of its length) a cascade box's centre may lie.
_PLAUSIBLE_AT = {"face": (-0.05, 0.3), "upper": (-0.05, 0.45), "lower": (0.35, 0.95)}


def plausible(hits: CascadeHits, mask: np.ndarray, axis: BodyAxis | None) -> CascadeHits:
    """Drop cascade boxes that are off the person or at the wrong height on
    the body (a 'face' on a knee). Only upright bodies keep any: the
    cascades were trained on upright people."""
    if axis is None or abs(axis.down[1]) <= 0.7:
        return CascadeHits()
    kept = {}
    for part, (lo, hi) in _PLAUSIBLE_AT.items():
        box = getattr(hits, part)
        if box is None:
            continue
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        x, y = int(centre[0]), int(centre[1])
        on_mask = 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x]
        share = float((centre - axis.origin) @ axis.down) / max(axis.length, 1e-6)
        if on_mask and lo <= share <= hi:
            kept[part] = box
    return CascadeHits(**kept)


def _inside(box: Box, outer: Box) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= x <= outer[2] and outer[1] <= y <= outer[3]


def _load_cascades() -> dict[str, cv2.CascadeClassifier]:
    folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", ""))
    cascades = {}
    for part, name in CASCADE_FILES.items():
        cascade = cv2.CascadeClassifier(str(folder / name))
        if cascade.empty():
            raise UserError(
                f"haar joints: OpenCV cascade {name} not found in {folder or 'cv2.data'}; "
                "they ship with OpenCV 4.x (opencv-contrib-python==4.11), not 5.x"
            )
        cascades[part] = cascade
    return cascades


def _box_mask(box: Box, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask


def body_axis(mask: np.ndarray) -> BodyAxis | None:
    """The mask's principal axis, pointing from the head end to the feet end.

    Upright bodies have their head at the top. For a lying body (a push-up)
    the head end is the end with more mask near it (torso and arms outweigh
    the legs).
    """
    ys, xs = np.nonzero(mask)
    if xs.size < MIN_MASK_PIXELS:
        return None
    points = np.column_stack([xs, ys]).astype(np.float64)
    centre = points.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((points - centre).T))
    down = eigenvectors[:, np.argmax(eigenvalues)]
    t = (points - centre) @ down
    if abs(down[1]) > 0.7:
        flip = down[1] < 0
    else:
        span = t.max() - t.min()
        flip = np.sum(t > t.max() - 0.35 * span) > np.sum(t < t.min() + 0.35 * span)
    if flip:
        down, t = -down, -t
    across = np.array([down[1], -down[0]])  # image right when upright (down = +y)
    s = (points - centre) @ across
    origin = centre + t.min() * down
    return BodyAxis(origin, down, across, float(t.max() - t.min()), t - t.min(), s)


def mask_joints(axis: BodyAxis) -> dict[Landmark, np.ndarray]:
    """Joints placed from the mask's shape alone."""
    joints: dict[Landmark, np.ndarray] = {}
    length = axis.length
    head = axis.runs(NOSE_AT)
    if head:
        joints[Landmark.NOSE] = axis.point(NOSE_AT * length, sum(head[0]) / 2)
    for pair, share, inset in (("shoulder", SHOULDER_AT, 0.8), ("hip", HIP_AT, 0.6)):
        runs = axis.runs(share)
        if runs:
            lo, hi = runs[0]
            mid, half = (lo + hi) / 2, (hi - lo) / 2
            left, right = _PAIRS[pair]
            joints[left] = axis.point(share * length, mid + inset * half)
            joints[right] = axis.point(share * length, mid - inset * half)
    for pair, share in (("knee", KNEE_AT), ("ankle", ANKLE_AT)):
        runs = axis.runs(share)
        if not runs:
            continue
        left, right = _PAIRS[pair]
        if len(runs) > 1 and (runs[1][1] - runs[1][0]) > 0.3 * (runs[0][1] - runs[0][0]):
            centres = sorted(sum(run) / 2 for run in runs[:2])  # two legs apart
        else:
            lo, hi = runs[0]
            centres = [lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)]
        joints[right] = axis.point(share * length, centres[0])
        joints[left] = axis.point(share * length, centres[1])
    joints.update(_arms(axis, joints))
    return joints


def _arms(axis: BodyAxis, joints: dict[Landmark, np.ndarray]) -> dict[Landmark, np.ndarray]:
    """Wrists at the mask's sideways extremes when an arm sticks out, else
    hanging beside the hips; elbows halfway from the shoulders."""
    shoulders = axis.runs(SHOULDER_AT)
    if not shoulders:
        return {}
    lo, hi = shoulders[0]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    upper = axis.t < 0.6 * axis.length
    hang = axis.runs(HANG_WRIST_AT)
    placed = {}
    for sign, (side_shoulder, side_elbow, side_wrist) in (
        (+1, (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST)),
        (-1, (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST)),
    ):
        reach = sign * (axis.s[upper] - mid)
        if reach.size and reach.max() > 1.6 * half:
            i = np.flatnonzero(upper)[np.argmax(reach)]
            wrist = axis.point(axis.t[i], axis.s[i])
        elif hang:
            edge = hang[0][1] if sign > 0 else hang[0][0]
            wrist = axis.point(HANG_WRIST_AT * axis.length, edge - sign * 0.1 * half)
        else:
            continue
        placed[side_wrist] = wrist
        if side_shoulder in joints:
            placed[side_elbow] = (joints[side_shoulder] + wrist) / 2
    return placed


def _in_box(box: Box, points: dict[Landmark, tuple[float, float]]) -> dict[Landmark, np.ndarray]:
    x0, y0, x1, y1 = box
    return {
        j: np.array([x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)]) for j, (fx, fy) in points.items()
    }


def _rejoin_arms(xy: np.ndarray, visibility: np.ndarray) -> None:
    """Keep elbows halfway after a cascade moved the shoulders."""
    for shoulder, elbow, wrist in (
        (Landmark.LEFT_SHOULDER, Landmark.LEFT_ELBOW, Landmark.LEFT_WRIST),
        (Landmark.RIGHT_SHOULDER, Landmark.RIGHT_ELBOW, Landmark.RIGHT_WRIST),
    ):
        if visibility[shoulder] > 0 and visibility[wrist] > 0:
            xy[elbow] = (xy[shoulder] + xy[wrist]) / 2

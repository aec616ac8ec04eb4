"""Face blurring for anything a sink writes or serves.

Where a face is comes from the pose, not from a face detector: BlazePose's
face landmarks (nose, eyes, ears, mouth) when any is seen, else a head
placed beyond the shoulders, else the top of the person's box. A missed
face is a privacy leak while an over-blurred shoulder costs nothing, so
every fallback errs towards blurring more.
"""

from __future__ import annotations

import cv2
import numpy as np

from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import PersonInstance, PersonJoints

FACE_LANDMARKS = list(range(L.NOSE, L.MOUTH_RIGHT + 1))
# Lower than the skeleton's threshold: a face BlazePose half-sees is still a face.
FACE_VISIBILITY = 0.3
TORSO_VISIBILITY = 0.5
HEAD_PER_BODY = 0.16  # head size over the long side of a person's box, with room to spare
HEAD_PER_TORSO = 0.7  # head size over the shoulder-to-hip length
TOP_OF_BOX = 0.3  # share of an upright box's height blurred when nothing better is known
MIN_SIDE_PX = 16
# The face is shrunk to this many samples across and blown up again: what is
# left cannot identify anyone, and two resizes cost well under a millisecond.
SAMPLES_ACROSS = 5

Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive


def _square(cx: float, cy: float, side: float) -> tuple[float, float, float, float]:
    half = max(side, MIN_SIDE_PX) / 2
    return (cx - half, cy - half, cx + half, cy + half)


def _head_size(joints: PersonJoints | None, person: PersonInstance | None) -> float:
    """A generous head size in pixels from whatever scale is known."""
    sizes = [0.0]
    if person is not None:
        x0, y0, x1, y1 = person.box
        sizes.append(HEAD_PER_BODY * max(x1 - x0, y1 - y0))
    if joints is not None:
        torso = _torso(joints)
        if torso is not None:
            sizes.append(HEAD_PER_TORSO * float(np.hypot(*(torso[0] - torso[1]))))
    return max(sizes)


def _torso(joints: PersonJoints) -> tuple[np.ndarray, np.ndarray] | None:
    """(shoulder midpoint, hip midpoint) when all four are seen."""
    marks = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP]
    if min(joints.visibility[marks]) < TORSO_VISIBILITY:
        return None
    xy = joints.image_xy.astype(np.float64)
    return (xy[marks[0]] + xy[marks[1]]) / 2, (xy[marks[2]] + xy[marks[3]]) / 2


def face_box(
    joints: PersonJoints | None, person: PersonInstance | None
) -> tuple[float, float, float, float] | None:
    """Where one person's face is (float pixels, unclipped), or None if
    nothing at all is known about the person."""
    head = _head_size(joints, person)
    if joints is not None:
        seen = [m for m in FACE_LANDMARKS if joints.visibility[m] >= FACE_VISIBILITY]
        if seen:
            pts = joints.image_xy[seen].astype(np.float64)
            span = float(np.ptp(pts, axis=0).max())
            # The ears sit near the middle of the head; seen side-on, the other
            # landmarks crowd its front, and centring on them would leave the
            # back of the head (hair, ear) in the clear.
            ears = [m for m in (L.LEFT_EAR, L.RIGHT_EAR) if m in seen]
            centre = joints.image_xy[ears or seen].astype(np.float64).mean(axis=0)
            reach = float(np.abs(pts - centre).max())
            # Landmarks stop at the eyes and mouth; forehead, hair and chin lie beyond.
            side = max(1.8 * span, 2.4 * reach, head)
            return _square(float(centre[0]), float(centre[1]) - 0.1 * side, side)
        torso = _torso(joints)
        if torso is not None:
            shoulders, hips = torso
            centre = shoulders + 0.45 * (shoulders - hips)
            return _square(float(centre[0]), float(centre[1]), 1.3 * head)
    if person is not None:
        x0, y0, x1, y1 = person.box
        if y1 - y0 >= x1 - x0:
            return (x0, y0, x1, y0 + TOP_OF_BOX * (y1 - y0))
        # Lying or wide: the head could be at either end, blur the whole box.
        return person.box
    return None


def face_regions(
    joints: tuple[PersonJoints, ...],
    persons: tuple[PersonInstance, ...],
    width: int,
    height: int,
) -> list[Region]:
    """Integer face rectangles inside a `width` x `height` frame, one per person
    (persons and joints are matched by track id)."""
    by_track = {j.track_id: j for j in joints}
    pairs = [(by_track.pop(p.track_id, None) if p.track_id >= 0 else None, p) for p in persons]
    pairs += [(j, None) for j in by_track.values()]
    regions = []
    for j, p in pairs:
        box = face_box(j, p)
        if box is None:
            continue
        x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x1, y1 = min(int(np.ceil(box[2])), width), min(int(np.ceil(box[3])), height)
        if x1 > x0 and y1 > y0:
            regions.append((x0, y0, x1, y1))
    return regions


def obscure(image: np.ndarray, region: Region) -> None:
    """Replace a region, in place, with a smooth blow-up of a few samples."""
    x0, y0, x1, y1 = region
    roi = image[y0:y1, x0:x1]
    w, h = x1 - x0, y1 - y0
    scale = SAMPLES_ACROSS / max(w, h)
    small = cv2.resize(
        roi,
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    roi[:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blur_faces(
    image: np.ndarray,
    joints: tuple[PersonJoints, ...],
    persons: tuple[PersonInstance, ...],
) -> np.ndarray:
    """Blur every person's face in `image` (BGR), in place; returns `image`."""
    height, width = image.shape[:2]
    for region in face_regions(joints, persons, width, height):
        obscure(image, region)
    return image

"""The room around the athletes: a wall over a wooden floor, a wall mirror,
and soft shadows."""

from __future__ import annotations

import cv2
import numpy as np

from repcoach.stages.synthetic.camera import Camera
from repcoach.stages.synthetic.kinematics import Skeleton
from repcoach.stages.synthetic.shapes import ONE, SHIFT


def background(width: int, height: int, floor_y: float, rng: np.random.Generator) -> np.ndarray:
    """A plain wall with soft vertical panels over a wooden floor."""
    walls = [(222, 226, 230), (206, 218, 228), (232, 222, 208), (214, 222, 214)]
    floors = [(78, 118, 158), (96, 104, 112), (62, 92, 128)]
    wall = np.array(walls[int(rng.integers(len(walls)))], dtype=np.float32)
    floor = np.array(floors[int(rng.integers(len(floors)))], dtype=np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    horizon = int(min(max(floor_y, height * 0.5), height - 4))
    rows = np.linspace(1.04, 0.92, horizon, dtype=np.float32)[:, None, None]
    image[:horizon] = wall * rows
    panel = max(40, width // 6)
    for x in range(int(rng.integers(panel // 2, panel)), width, panel):
        image[:horizon, x : x + 2] *= 0.93
    depth = np.linspace(0.85, 1.05, height - horizon, dtype=np.float32)[:, None, None]
    image[horizon:] = floor * depth
    plank = max(6, (height - horizon) // 7)
    for y in range(horizon + plank, height, plank):
        image[y : y + 1] *= 0.82
    image[horizon : horizon + 3] = wall * 0.55  # skirting board
    noise = rng.normal(0.0, 3.0, size=(height, width, 1)).astype(np.float32)
    image += noise
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_mirror(image: np.ndarray, box: tuple[float, float, float, float]) -> None:
    """A framed mirror pane over `box` (x0, y0, x1, y1 pixels): a cool, bright
    tint over what is behind it, so the wall's grain still shows through."""
    h, w = image.shape[:2]
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(box[2]), w), min(int(box[3]), h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return
    frame = image[y0:y1, x0:x1]
    frame[:] = cv2.addWeighted(frame, 0.45, np.full_like(frame, _PANE), 0.55, 0.0)
    cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), _PANE_FRAME, 3, cv2.LINE_8)


_PANE = (236, 226, 212)  # BGR: pale blue-grey glass
_PANE_FRAME = (90, 90, 96)


def draw_shadow(image: np.ndarray, camera: Camera, skeleton: Skeleton) -> None:
    """A soft dark ellipse on the floor under the body."""
    floor = skeleton.points.copy()
    floor[:, 1] = 0.0
    xy, _ = camera.project(floor)
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    cx, cy = (x0 + x1) * 0.5, (y0 + y1) * 0.5
    ax = (x1 - x0) * 0.5 + 0.12 * camera.scale
    ay = max((y1 - y0) * 0.4, 0.035 * camera.scale)
    h, w = image.shape[:2]
    left, right = int(max(cx - ax - 2, 0)), int(min(cx + ax + 3, w))
    top, bottom = int(max(cy - ay - 2, 0)), int(min(cy + ay + 3, h))
    if right <= left or bottom <= top:
        return
    roi = image[top:bottom, left:right]
    mask = np.zeros(roi.shape, dtype=np.uint8)
    centre = (round((cx - left) * ONE), round((cy - top) * ONE))
    axes = (round(ax * ONE), round(ay * ONE))
    cv2.ellipse(mask, centre, axes, 0.0, 0.0, 360.0, (SHADOW,) * 3, -1, cv2.LINE_AA, SHIFT)
    mask = cv2.blur(mask, (7, 3))
    cv2.subtract(roi, cv2.multiply(roi, mask, scale=1.0 / 255.0), dst=roi)


SHADOW = 45  # darkening at the shadow's centre, out of 255

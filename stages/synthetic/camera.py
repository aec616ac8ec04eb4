"""Pinhole cameras, one per athlete, and the layout that places one to three
athletes side by side in the frame.

A camera looks at a target point (the middle of the athlete's motion) from
`distance` metres away. Pixel coordinates are "metres at the target's
distance" times a scale shared by all athletes, so the layout can fit
everyone before any pixel is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from repcoach.stages.synthetic.exercises import CameraAngle

VIEWS = ("side", "front")


def view_axes(view: str, angle: CameraAngle) -> np.ndarray:
    """Rows: image right, image up, towards the camera (all in the athlete's
    world frame). Side view looks at the athlete's right side, front view at
    their face; `yaw` turns the camera towards the athlete's front-right."""
    yaw, elevation = math.radians(angle.yaw), math.radians(angle.elevation)
    if view == "side":
        horizontal = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    else:
        horizontal = np.array([math.cos(yaw), 0.0, math.sin(yaw)])
    toward = horizontal * math.cos(elevation) + np.array([0.0, math.sin(elevation), 0.0])
    right = np.cross([0.0, 1.0, 0.0], toward)
    right /= np.linalg.norm(right)
    up = np.cross(toward, right)
    return np.stack([right, up, toward])


@dataclass(frozen=True)
class Lens:
    """Where a camera stands relative to its athlete, before any scaling."""

    axes: np.ndarray  # (3, 3) from view_axes
    target: np.ndarray  # (3,) world point the camera aims at
    distance: float  # metres from the camera to the target

    def plane(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) right/up in metres at the target's distance, and (N,) nearness."""
        cam = (points - self.target) @ self.axes.T
        factor = self.distance / np.maximum(self.distance - cam[:, 2], 0.05)
        return cam[:, :2] * factor[:, None], cam[:, 2]


@dataclass(frozen=True)
class Camera:
    """World metres -> pixels: x = origin_x + scale*right, y = origin_y - scale*up."""

    lens: Lens
    scale: float  # px per metre at the target's distance
    origin: tuple[float, float]  # pixel where the target lands

    @property
    def axes(self) -> np.ndarray:
        return self.lens.axes

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel xy (N, 2) and nearness to the camera in metres (N,)."""
        plane, near = self.lens.plane(points)
        xy = np.empty_like(plane)
        xy[:, 0] = self.origin[0] + self.scale * plane[:, 0]
        xy[:, 1] = self.origin[1] - self.scale * plane[:, 1]
        return xy, near

    def pixels_per_metre(self, point: np.ndarray) -> float:
        """Scale at a world point (things nearer the camera look bigger)."""
        _, near = self.lens.plane(point[None])
        return self.scale * self.lens.distance / max(self.lens.distance - float(near[0]), 0.05)


def layout(
    extents: list[tuple[float, float, float, float]],
    lenses: list[Lens],
    width: int,
    height: int,
) -> list[Camera]:
    """One camera per athlete so that all fit the frame side by side.

    `extents` are (right_min, right_max, up_min, up_max) in lens-plane metres
    over the whole clip. Athletes share one scale, except that every other
    athlete stands a little further back (smaller, feet higher), so neighbours
    that overlap occlude each other the way people in a room do."""
    count = len(extents)
    slot = width / count
    depth_scale = [1.0 if count == 1 or i % 2 == 1 else 0.9 for i in range(count)]
    scale = min(
        min(
            0.9 * height / (up_max - up_min),
            (1.35 if count > 1 else 0.92) * slot / (right_max - right_min),
        )
        / depth_scale[i]
        for i, (right_min, right_max, up_min, up_max) in enumerate(extents)
    )
    cameras = []
    for i, (right_min, right_max, up_min, _up_max) in enumerate(extents):
        s = scale * depth_scale[i]
        bottom = height * (0.95 if depth_scale[i] == 1.0 else 0.9)
        origin = (slot * (i + 0.5) - s * (right_min + right_max) * 0.5, bottom + up_min * s)
        cameras.append(Camera(lenses[i], s, origin))
    return cameras

"""Pinhole cameras, one per person, and the layout that places athletes,
bystanders and a mirror twin side by side in the frame.

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

VIEWS = ("side", "front", "back")


def view_axes(view: str, angle: CameraAngle) -> np.ndarray:
    """Rows: image right, image up, towards the camera (all in the athlete's
    world frame). Side view looks at the athlete's right side, front view at
    their face, back view at their back; `yaw` turns the camera towards the
    athlete's front-right (back-left from behind)."""
    yaw, elevation = math.radians(angle.yaw), math.radians(angle.elevation)
    if view == "side":
        horizontal = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    else:
        horizontal = np.array([math.cos(yaw), 0.0, math.sin(yaw)])
        if view == "back":
            horizontal = -horizontal
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

    def mirrored(self) -> Lens:
        """The same view flipped left-right, as seen in a mirror."""
        return Lens(self.axes * np.array([[-1.0], [1.0], [1.0]]), self.target, self.distance)

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


def alternating_depths(count: int) -> list[float]:
    """Every other athlete stands a little further back (smaller, feet higher),
    so neighbours that overlap occlude each other the way people in a room do."""
    return [1.0 if count == 1 or i % 2 == 1 else 0.9 for i in range(count)]


def feet_row(depth: float) -> float:
    """Where the floor under a figure lands, as a fraction of the frame height:
    the further back (smaller `depth` scale), the higher."""
    return 0.95 if depth == 1.0 else 0.9 if depth == 0.9 else 0.95 - 0.5 * (1.0 - depth)


def layout(
    extents: list[tuple[float, float, float, float]],
    lenses: list[Lens],
    width: int,
    height: int,
    depths: list[float] | None = None,
) -> tuple[list[Camera], float]:
    """One camera per figure so that all fit the frame side by side, and the
    shared scale (px per metre at depth 1).

    `extents` are (right_min, right_max, up_min, up_max) in lens-plane metres
    over the whole clip. Figures share one scale times their `depths` entry
    (default `alternating_depths`)."""
    count = len(extents)
    slot = width / count
    depth_scale = depths or alternating_depths(count)
    scale = min(
        min(
            min(0.9, feet_row(depth_scale[i])) * height / (up_max - up_min),
            (1.35 if count > 1 else 0.92) * slot / (right_max - right_min),
        )
        / depth_scale[i]
        for i, (right_min, right_max, up_min, up_max) in enumerate(extents)
    )
    cameras = []
    for i, (right_min, right_max, up_min, _up_max) in enumerate(extents):
        s = scale * depth_scale[i]
        bottom = height * feet_row(depth_scale[i])
        x = slot * (i + 0.5) - s * (right_min + right_max) * 0.5
        if s * (right_max - right_min) <= width:  # neighbours may overlap, the edges cut nobody
            x = min(max(x, -s * right_min), width - s * right_max)
        cameras.append(Camera(lenses[i], s, (x, bottom + up_min * s)))
    return cameras, scale

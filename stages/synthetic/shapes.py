"""Pixel geometry for the renderer: capsules, hulls, and painting a list of
strokes onto the image and the label image with OpenCV."""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

from repcoach.stages.synthetic.palette import Colour

SHIFT = 4  # sub-pixel bits for OpenCV drawing
ONE = float(1 << SHIFT)
_ARC = 9  # points per half circle of a capsule
_ARC_B = np.linspace(-1.0, 1.0, _ARC)
_ARC_A = np.linspace(0.0, 1.0, _ARC)


class Stroke(NamedTuple):
    """One thing to draw. A "poly" is a filled convex polygon, drawn after its
    `edge` polygon (a slightly bigger copy in `edge_colour`, i.e. its outline)
    and filled with `label` into the label image when label > 0. A "line" is
    an open polyline `size` px thick; a "dot" a disc of radius `size`/ONE px."""

    kind: str
    points: np.ndarray  # fixed-point pixels (int32, SHIFT bits); a dot's centre as a tuple
    colour: Colour
    edge: np.ndarray | None = None
    edge_colour: Colour = (0, 0, 0)
    label: int = 0
    size: int = 1
    smooth: bool = True  # anti-aliased edge


def fixed(points: np.ndarray) -> np.ndarray:
    """Float pixels -> OpenCV fixed-point int32."""
    return np.round(points * ONE).astype(np.int32)


def capsules(a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Convex outlines (C, 2*_ARC, 2) of C capsules: circles at a (radius ra)
    and b (radius rb) with the belt around them. When one circle holds the
    other, the bigger circle."""
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    safe = np.maximum(length, 1e-6)
    u = np.where(length[:, None] > 1e-6, d / safe[:, None], np.array([1.0, 0.0]))
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    alpha = np.arccos(np.clip((ra - rb) / safe, -1.0, 1.0))[:, None]
    angles = np.concatenate([alpha * _ARC_B, alpha + (2 * np.pi - 2 * alpha) * _ARC_A], axis=1)
    centres = np.concatenate(
        [np.repeat(b[:, None, :], _ARC, axis=1), np.repeat(a[:, None, :], _ARC, axis=1)], axis=1
    )
    radii = np.concatenate([np.repeat(rb[:, None], _ARC, 1), np.repeat(ra[:, None], _ARC, 1)], 1)
    cos, sin = np.cos(angles) * radii, np.sin(angles) * radii
    return centres + cos[..., None] * u[:, None, :] + sin[..., None] * n[:, None, :]


def capsule(a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """One capsule outline (see `capsules`)."""
    return capsules(a[None], b[None], np.array([ra]), np.array([rb]))[0]


def hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of 2D points, float pixels."""
    return cv2.convexHull(points.astype(np.float32))[:, 0, :].astype(np.float64)


def grow(polygon: np.ndarray, by: float) -> np.ndarray:
    """A convex polygon pushed outward from its centre by `by` pixels."""
    centre = polygon.mean(axis=0)
    offset = polygon - centre
    dist = np.maximum(np.hypot(offset[:, 0], offset[:, 1]), 1e-6)
    return polygon + offset * (by / dist)[:, None]


def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Points turned by `angle` radians (clockwise on screen, y pointing down)."""
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def paint(image: np.ndarray, labels: np.ndarray, strokes: list[Stroke]) -> None:
    """Outlines of the group first, then fills, so parts of one group (an arm,
    a leg) join without seams while groups stay outlined against each other."""
    for s in strokes:
        if s.edge is not None:
            cv2.fillConvexPoly(image, s.edge, s.edge_colour, cv2.LINE_AA, SHIFT)
    for s in strokes:
        if s.kind == "poly":
            # Only outer contours need anti-aliasing; lit patches sit inside their part.
            line = cv2.LINE_AA if s.smooth else cv2.LINE_8
            cv2.fillConvexPoly(image, s.points, s.colour, line, SHIFT)
            if s.label:
                cv2.fillConvexPoly(labels, s.points, s.label, cv2.LINE_8, SHIFT)
        elif s.kind == "line":
            cv2.polylines(image, [s.points], False, s.colour, s.size, cv2.LINE_AA, SHIFT)
        else:
            cv2.circle(image, s.points, s.size, s.colour, -1, cv2.LINE_AA, SHIFT)

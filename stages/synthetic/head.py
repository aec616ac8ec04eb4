"""The head: an ellipsoid seen from any angle, with hair, ears, eyes, brows,
nose and mouth, and the 3D face points the landmark truth is taken from."""

from __future__ import annotations

import math

import numpy as np

from repcoach.stages.synthetic.body import SIDES, BodyShape
from repcoach.stages.synthetic.camera import Camera
from repcoach.stages.synthetic.kinematics import Point, Skeleton
from repcoach.stages.synthetic.palette import EYE_WHITE, LIPS, PUPIL, Palette, shade
from repcoach.stages.synthetic.shapes import ONE, Stroke, capsule, fixed, grow, hull, rotate

# Face points in head coordinates (metres: forward, up, right) for the reference head.
FACE_POINTS = {
    "nose": (0.124, -0.028, 0.0),
    "nose_top": (0.094, 0.0, 0.0),
    "nose_base": (0.089, -0.043, 0.0),
    "l_eye_inner": (0.094, 0.022, -0.018),
    "l_eye": (0.089, 0.022, -0.033),
    "l_eye_outer": (0.079, 0.022, -0.048),
    "r_eye_inner": (0.094, 0.022, 0.018),
    "r_eye": (0.089, 0.022, 0.033),
    "r_eye_outer": (0.079, 0.022, 0.048),
    "l_brow": (0.088, 0.046, -0.034),
    "r_brow": (0.088, 0.046, 0.034),
    "l_ear": (-0.004, 0.0, -0.08),
    "r_ear": (-0.004, 0.0, 0.08),
    "l_mouth": (0.082, -0.066, -0.024),
    "r_mouth": (0.082, -0.066, 0.024),
}
FACE_NAMES = tuple(FACE_POINTS)
_FACE = np.array([FACE_POINTS[n] for n in FACE_NAMES])
_INDEX = {n: i for i, n in enumerate(FACE_NAMES)}


def _sphere(lat_steps: int = 9, lon_steps: int = 14) -> np.ndarray:
    lat = np.linspace(-math.pi / 2, math.pi / 2, lat_steps)
    lon = np.linspace(0, 2 * math.pi, lon_steps, endpoint=False)
    la, lo = np.meshgrid(lat, lon)
    points = np.stack([np.cos(la) * np.cos(lo), np.sin(la), np.cos(la) * np.sin(lo)], -1)
    return points.reshape(-1, 3)


_SPHERE = _sphere()  # unit sphere; columns: forward, up, right of the head
_HAIR = (_SPHERE[:, 1] > 0.3) | ((_SPHERE[:, 0] < -0.3) & (_SPHERE[:, 1] > -0.45))
_EAR = capsule(np.array([0.0, -0.01]), np.array([0.0, 0.012]), 0.019, 0.016)  # metres, upright


def face_points(skeleton: Skeleton, body: BodyShape) -> np.ndarray:
    """World positions of `FACE_POINTS`, in that order, for this head."""
    return skeleton.points[Point.HEAD] + (_FACE * body.size) @ skeleton.head_axes


def face_index(name: str) -> int:
    return _INDEX[name]


def head_strokes(
    skeleton: Skeleton,
    body: BodyShape,
    palette: Palette,
    camera: Camera,
    label: int,
    outline_px: float,
    edge: float,
) -> list[Stroke]:
    """Skin, hair, ears and face of the head, front-most last."""
    axes = skeleton.head_axes
    toward = camera.axes[2]
    radii = np.array([body.head_f, body.head_u, body.head_l])
    centre = skeleton.points[Point.HEAD]
    local = np.concatenate([_SPHERE * radii, _FACE * body.size])
    projected, _ = camera.project(centre + local @ axes)
    xy, f = projected[: len(_SPHERE)], projected[len(_SPHERE) :]
    outline = hull(xy)
    skin, skin_edge = palette.skin, shade(palette.skin, edge)
    strokes = [
        Stroke("poly", fixed(outline), skin, fixed(grow(outline, outline_px)), skin_edge, label)
    ]
    facing = ((_SPHERE / radii) @ axes) @ toward > 0.02
    hair = xy[_HAIR & facing]
    if len(hair) >= 3:
        strokes.append(Stroke("poly", fixed(hull(hair)), palette.hair))
    normals = _FACE / radii**2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    facing_face = (normals @ axes) @ toward  # cosine; > 0: the surface there faces us
    shows = facing_face > 0.05
    px = camera.pixels_per_metre(centre) * body.size
    up = camera.axes[:2] @ axes[1]
    ear_shape = rotate(_EAR * px, math.atan2(up[0], up[1]))
    for side in SIDES:
        if facing_face[_INDEX[f"{side}_ear"]] > -0.3:  # ears stick out: seen a bit from behind
            ear = ear_shape + f[_INDEX[f"{side}_ear"]]
            strokes.append(
                Stroke("poly", fixed(ear), skin, fixed(grow(ear, outline_px * 0.7)), skin_edge)
            )
    if float(axes[0] @ toward) > -0.35:
        nose = f[[_INDEX["nose_top"], _INDEX["nose"], _INDEX["nose_base"]]]
        strokes.append(Stroke("poly", fixed(hull(nose)), skin))
        strokes.append(Stroke("line", fixed(nose), skin_edge, size=max(1, round(outline_px))))
    eye = max(1.3, 0.011 * px)
    brow_px = max(1, round(0.007 * px))
    for side in SIDES:
        i = _INDEX[f"{side}_eye"]
        if not shows[i]:
            continue
        centre = tuple(int(v) for v in fixed(f[i]))
        strokes.append(Stroke("dot", centre, EYE_WHITE, size=round(eye * 1.25 * ONE)))
        strokes.append(Stroke("dot", centre, PUPIL, size=round(eye * 0.8 * ONE)))
        brow = f[_INDEX[f"{side}_brow"]]
        inner = f[i] - f[_INDEX[f"{side}_eye_inner"]]
        outer = f[_INDEX[f"{side}_eye_outer"]] - f[i]
        strokes.append(
            Stroke(
                "line", fixed(np.stack([brow - inner, brow + outer])), palette.hair, size=brow_px
            )
        )
    left, right = _INDEX["l_mouth"], _INDEX["r_mouth"]
    if shows[left] or shows[right]:
        mouth = np.stack([f[left], (f[left] + f[right]) * 0.5, f[right]])
        strokes.append(Stroke("line", fixed(mouth), LIPS, size=max(1, round(0.006 * px))))
    return strokes

"""Draws one cartoon athlete: shaded capsules for limbs, convex hulls for
torso and shorts, the head from `head`, clothes and shoes.

Parts are grouped (an arm, a thigh, the shirt, the head...) and the groups
are painted back to front. Each body part is also filled into a label image
with its own id, so the truth can tell which joints something hides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from repcoach.stages.synthetic.body import SIDES, BodyShape
from repcoach.stages.synthetic.camera import Camera
from repcoach.stages.synthetic.head import head_strokes
from repcoach.stages.synthetic.kinematics import NUM_POINTS, Point, Skeleton
from repcoach.stages.synthetic.palette import Palette, shade
from repcoach.stages.synthetic.shapes import Stroke, capsules, fixed, grow, hull, paint

PARTS_PER_PERSON = 24  # label ids: 1 + person * PARTS_PER_PERSON + Part


class Part(IntEnum):
    HEAD = 0
    NECK = 1
    SHIRT = 2
    SHORTS = 3
    L_UPPER_ARM = 4
    R_UPPER_ARM = 5
    L_FOREARM = 6
    R_FOREARM = 7
    L_HAND = 8
    R_HAND = 9
    L_THIGH = 10
    R_THIGH = 11
    L_SHIN = 12
    R_SHIN = 13
    L_FOOT = 14
    R_FOOT = 15


def part_label(person: int, part: Part) -> int:
    return 1 + person * PARTS_PER_PERSON + int(part)


SHADOW_TONE = 0.85  # the unlit side of every part
EDGE_TONE = 0.5  # outlines are a dark tone of the part's own colour
FAR_TONE = 0.84  # limbs on the far side of the body
LIGHT = np.array([-0.45, -0.89])  # image direction the light comes from (upper left)

# Capsules per side: (group, from, to, fraction of the way, radius at from,
# radius at to (metres, reference body), colour, part, labelled). Parts of a
# group are painted in this order.
_LIMB_TABLE = (
    ("arm", "SHOULDER", "ELBOW", 1.0, 0.05, 0.038, "skin", "UPPER_ARM", True),
    ("arm", "SHOULDER", "ELBOW", 0.35, 0.058, 0.05, "shirt", "UPPER_ARM", False),
    ("arm", "ELBOW", "WRIST", 1.0, 0.042, 0.028, "skin", "FOREARM", True),
    ("arm", "WRIST", "KNUCKLE", 1.0, 0.03, 0.037, "skin", "HAND", True),
    ("thigh", "HIP", "KNEE", 1.0, 0.085, 0.055, "skin", "THIGH", True),
    ("thigh", "HIP", "KNEE", 0.5, 0.095, 0.08, "shorts", "THIGH", True),
    ("shin", "KNEE", "ANKLE", 1.0, 0.055, 0.036, "skin", "SHIN", True),
    ("shin", "HEEL", "TOE", 1.0, 0.035, 0.032, "shoes", "FOOT", True),
)
_GROUP_POINTS = {
    "arm": ("SHOULDER", "ELBOW", "WRIST"),
    "thigh": ("HIP", "KNEE"),
    "shin": ("KNEE", "ANKLE"),
}
_GROUP_BIAS = {"arm": 0.04, "thigh": 0.0, "shin": 0.0}  # arms go over a torso at the same depth


@dataclass(frozen=True)
class _Capsule:
    """One limb capsule of one side, drawn from `start` towards `end`."""

    group: str  # "l_arm", "r_thigh", ..., "torso"
    start: Point
    end: Point
    reach: float  # fraction of the way to `end`
    r_start: float  # metres, reference body
    r_end: float
    colour: str  # Palette field
    part: Part
    labelled: bool  # filled into the label image


def _capsule_rows() -> list[_Capsule]:
    rows = []
    for side in SIDES:
        s = side.upper()
        for group, a, b, reach, r0, r1, colour, part, labelled in _LIMB_TABLE:
            rows.append(
                _Capsule(
                    f"{side}_{group}",
                    Point[f"{s}_{a}"],
                    Point[f"{s}_{b}"],
                    reach,
                    r0,
                    r1,
                    colour,
                    Part[f"{s}_{part}"],
                    labelled,
                )
            )
    rows.append(
        _Capsule("torso", Point.NECK, Point.SKULL, 1.0, 0.052, 0.048, "skin", Part.NECK, True)
    )
    return rows


def _group_mean(names: list[str]) -> np.ndarray:
    """(groups, NUM_POINTS): each row averages the points of one limb group."""
    mean = np.zeros((len(names), NUM_POINTS))
    for row, name in enumerate(names):
        points = [Point[f"{name[0].upper()}_{p}"] for p in _GROUP_POINTS[name[2:]]]
        mean[row, points] = 1.0 / len(points)
    return mean


_LIMBS = _capsule_rows()
_FROM = np.array([c.start for c in _LIMBS])
_TO = np.array([c.end for c in _LIMBS])
_FRAC = np.array([c.reach for c in _LIMBS])
_R0 = np.array([c.r_start for c in _LIMBS])
_R1 = np.array([c.r_end for c in _LIMBS])
_GROUP_NAMES = [f"{side}_{g}" for side in SIDES for g in _GROUP_POINTS]
_GROUP_MEAN = _group_mean(_GROUP_NAMES)
_GROUP_OFFSET = np.array([_GROUP_BIAS[name[2:]] for name in _GROUP_NAMES])
_LIMB_GROUP = [c.group for c in _LIMBS]

# Torso cross-sections: (fraction of trunk length above the hips, half width,
# half depth, forward offset), metres for the reference body.
_SHIRT_RINGS = (
    (1.07, 0.085, 0.065, -0.015),
    (1.0, 0.19, 0.085, -0.02),
    (0.8, 0.18, 0.115, -0.008),
    (0.45, 0.155, 0.105, 0.0),
    (0.17, 0.163, 0.105, 0.0),
)
_SHORTS_RINGS = (
    (0.3, 0.155, 0.1, 0.0),
    (0.0, 0.178, 0.115, -0.03),
    (-0.13, 0.158, 0.105, -0.045),
)


def _rings(rings: tuple, steps: int = 14) -> np.ndarray:
    """(3, N): along the trunk, across (right), forward, for every ring point."""
    theta = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    return np.concatenate(
        [
            np.stack([np.full(steps, t), w * np.cos(theta), o + d * np.sin(theta)])
            for t, w, d, o in rings
        ],
        axis=1,
    )


_SHIRT = _rings(_SHIRT_RINGS)
_SHORTS = _rings(_SHORTS_RINGS)


class AthleteRenderer:
    """Draws one athlete (one body, palette and camera) frame after frame."""

    def __init__(self, person: int, body: BodyShape, palette: Palette, camera: Camera):
        self.person = person
        self.body = body
        self.palette = palette
        self.camera = camera
        self.outline_px = max(1.0, camera.scale / 140.0)
        k = camera.scale * body.size * body.girth
        self._r0, self._r1 = _R0 * k, _R1 * k
        colours = {
            "skin": palette.skin,
            "shirt": palette.shirt,
            "shorts": palette.shorts,
            "shoes": palette.shoes,
        }
        # Per limb row and per near/far: (unlit tone, lit tone, outline tone).
        self._tones = []
        for row in _LIMBS:
            base = colours[row.colour]
            self._tones.append(
                tuple(
                    (shade(c, SHADOW_TONE), c, shade(c, EDGE_TONE))
                    for c in (base, shade(base, FAR_TONE))
                )
            )
        self._labels = [part_label(person, c.part) if c.labelled else 0 for c in _LIMBS]

    def draw(self, image: np.ndarray, labels: np.ndarray, skeleton: Skeleton) -> None:
        """Paints the athlete into `image` and its part ids into `labels`."""
        xy, near = self.camera.project(skeleton.points)
        distance = self.camera.lens.distance
        nearer = distance / np.maximum(distance - near, 0.05)  # perspective size factor
        start = xy[_FROM]
        end = start + (xy[_TO] - start) * _FRAC[:, None]
        r0 = self._r0 * nearer[_FROM]
        r1 = self._r1 * (nearer[_FROM] + (nearer[_TO] - nearer[_FROM]) * _FRAC)
        # Each capsule in its unlit tone, a narrower lit one shifted towards
        # the light, and a bigger one in the outline tone behind them.
        axis = end - start
        axis /= np.maximum(np.hypot(axis[:, 0], axis[:, 1]), 1e-6)[:, None]
        normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
        to_light = (normal @ LIGHT)[:, None] * normal * 0.35
        ol = self.outline_px
        count = len(_LIMBS)
        polygons = fixed(
            capsules(
                np.concatenate([start, start, start + to_light * r0[:, None]]),
                np.concatenate([end, end, end + to_light * r1[:, None]]),
                np.concatenate([r0, r0 + ol, r0 * 0.55]),
                np.concatenate([r1, r1 + ol, r1 * 0.55]),
            )
        )
        torso_near = float(near[Point.PELVIS] + near[Point.NECK]) * 0.5
        group_near = _GROUP_MEAN @ near + _GROUP_OFFSET
        depth = dict(zip(_GROUP_NAMES, group_near.tolist(), strict=True))
        far = {
            name
            for name, d, bias in zip(_GROUP_NAMES, group_near, _GROUP_OFFSET, strict=True)
            if d - bias < torso_near - 0.06
        }
        groups: dict[str, list[Stroke]] = {name: [] for name in _GROUP_NAMES}
        groups["torso"] = []
        fills, edges, lit_patches = (
            polygons[:count],
            polygons[count : 2 * count],
            polygons[2 * count :],
        )
        for i, group in enumerate(_LIMB_GROUP):
            unlit, lit, edge = self._tones[i][group in far]
            groups[group].append(Stroke("poly", fills[i], unlit, edges[i], edge, self._labels[i]))
            groups[group].append(Stroke("poly", lit_patches[i], lit, smooth=False))
        groups["shorts"] = self._torso(skeleton, _SHORTS, self.palette.shorts, Part.SHORTS)
        groups["torso"] += self._torso(skeleton, _SHIRT, self.palette.shirt, Part.SHIRT)
        groups["head"] = head_strokes(
            skeleton,
            self.body,
            self.palette,
            self.camera,
            part_label(self.person, Part.HEAD),
            ol,
            EDGE_TONE,
        )
        depth["shorts"] = float(near[Point.PELVIS]) + 0.03
        depth["torso"] = torso_near + 0.03
        depth["head"] = float(near[Point.HEAD]) + 0.05
        for name in sorted(depth, key=depth.__getitem__):
            paint(image, labels, groups[name])

    def _torso(self, skeleton: Skeleton, rings: np.ndarray, colour, part: Part) -> list[Stroke]:
        """A convex hull around cross-sections of the trunk, shaded like a limb."""
        p = skeleton.points
        pelvis, neck = p[Point.PELVIS], p[Point.NECK]
        up = neck - pelvis  # the trunk turns about the body's right axis (Z) only
        length = max(float(np.hypot(up[0], up[1])), 1e-9)
        g = self.body.size * self.body.girth / length
        # A shrug lifts the shoulders along the trunk; the shirt's shoulder and
        # collar rings (at or above the shoulder line) go up with them.
        lifted = float(np.dot((p[Point.L_SHOULDER] + p[Point.R_SHOULDER]) * 0.5 - neck, up))
        if abs(lifted) > 1e-6:
            rings = rings.copy()
            rings[0, rings[0] >= 1.0] += lifted / (length * length)
        basis = np.array(
            [
                [up[0], up[1], 0.0],
                [0.0, 0.0, self.body.size * self.body.girth],
                [up[1] * g, -up[0] * g, 0.0],
            ]
        )
        xy, _ = self.camera.project(pelvis + rings.T @ basis)
        outline = hull(xy)
        centre = outline.mean(axis=0)
        extent = float(np.abs(outline - centre).max())
        lit = centre + (outline - centre) * 0.72 + LIGHT * extent * 0.16
        return [
            Stroke(
                "poly",
                fixed(outline),
                shade(colour, SHADOW_TONE),
                fixed(grow(outline, self.outline_px)),
                shade(colour, EDGE_TONE),
                part_label(self.person, part),
            ),
            Stroke("poly", fixed(lit), colour, smooth=False),
        ]

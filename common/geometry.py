"""Angles between joints: the one definition every stage and test uses."""

from __future__ import annotations

import numpy as np


def joint_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle ABC at vertex `b` in degrees, in [0, 180]; NaN if a limb has no length.

    Works for 2D image points and 3D world points alike.
    """
    ba = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    bc = np.asarray(c, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    norm = np.linalg.norm(ba) * np.linalg.norm(bc)
    if norm < 1e-9:
        return float("nan")
    cosine = np.clip(np.dot(ba, bc) / norm, -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))


def segment_tilt(top: np.ndarray, bottom: np.ndarray) -> float:
    """Angle in degrees between the segment bottom->top and image vertical (up)."""
    dx, dy = np.asarray(top, dtype=np.float64) - np.asarray(bottom, dtype=np.float64)
    if abs(dx) + abs(dy) < 1e-9:
        return float("nan")
    return float(np.degrees(np.arctan2(abs(dx), -dy)))

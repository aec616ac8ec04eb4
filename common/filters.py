"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) over whole landmark
arrays: a low-pass filter whose cutoff rises with the signal's speed, so
jitter is smoothed while a person holds still and fast movement (a jumping
jack) is followed with little lag. Each element is filtered independently;
time comes from the frames' pts, so dropped frames are handled correctly.
"""

from __future__ import annotations

import math

import numpy as np

from repcoach.common.errors import UserError


def _smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters arrays of one fixed shape over time.

    `min_cutoff` (Hz): cutoff while still; lower is smoother but laggier.
    `beta`: how fast the cutoff rises with speed; higher follows fast
    movement better. `d_cutoff` (Hz): cutoff of the speed estimate.
    Speed is measured in value units per second times the `value_scale`
    passed to each call (e.g. 1 / person height for pixel coordinates), so
    one `beta` suits people near and far.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise UserError(
                "OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, "
                f"got {min_cutoff}, {d_cutoff}, {beta}"
            )
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._pts: float | None = None

    def __call__(self, value: np.ndarray, pts: float, value_scale: float = 1.0) -> np.ndarray:
        """The filtered `value` at time `pts` (seconds). A repeated or earlier
        pts returns the last output unchanged; a new shape restarts the filter."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._pts is None or value.shape != self._value.shape:
            self._value, self._speed, self._pts = value.copy(), np.zeros_like(value), pts
            return value.copy()
        dt = pts - self._pts
        if dt <= 0:
            return self._value.copy()
        speed = (value - self._value) / dt
        a_d = _smoothing_factor(self.d_cutoff, dt)
        self._speed = a_d * speed + (1.0 - a_d) * self._speed
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed) * value_scale
        a = _smoothing_factor(cutoff, dt)
        self._value = a * value + (1.0 - a) * self._value
        self._pts = pts
        return self._value.copy()

"""One Euro filter: smooths jitter, follows fast movement."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.filters import OneEuroFilter

FPS = 30.0


def run(f: OneEuroFilter, values: np.ndarray, value_scale: float = 1.0) -> np.ndarray:
    return np.array([f(v, k / FPS, value_scale) for k, v in enumerate(values)])


@pytest.mark.parametrize("shape", [(33, 2), (33, 3)])
def test_noise_on_a_still_signal_is_reduced(shape):
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, shape)
    noisy = truth + rng.normal(0, 0.01, (90, *shape))
    out = run(OneEuroFilter(min_cutoff=1.0, beta=10.0), noisy)
    raw_error = np.abs(noisy[30:] - truth).mean()
    filtered_error = np.abs(out[30:] - truth).mean()
    assert filtered_error < 0.5 * raw_error, (filtered_error, raw_error)


def test_a_fast_step_is_followed_within_a_few_samples():
    values = np.array([[0.0]] * 30 + [[1.0]] * 10)
    out = run(OneEuroFilter(min_cutoff=1.0, beta=10.0), values)[:, 0]
    assert out[29] == pytest.approx(0.0)
    assert out[30 + 2] > 0.9, out[30:34]  # within three samples
    assert abs(out[-1] - 1.0) < 0.02


def test_without_beta_a_step_lags():
    """The speed term is what makes the step fast (guards the test above)."""
    values = np.array([[0.0]] * 30 + [[1.0]] * 10)
    out = run(OneEuroFilter(min_cutoff=1.0, beta=0.0), values)[:, 0]
    assert out[32] < 0.6


def test_value_scale_makes_beta_scale_free():
    """The same movement in pixels of a big person and of a small one,
    scaled by each person's size, is filtered the same way."""
    rng = np.random.default_rng(1)
    motion = np.cumsum(rng.normal(0, 0.02, (60, 4)), axis=0)
    small = run(OneEuroFilter(), motion * 100, value_scale=1 / 100)
    big = run(OneEuroFilter(), motion * 400, value_scale=1 / 400)
    np.testing.assert_allclose(small / 100, big / 400, atol=1e-9)


def test_elements_are_filtered_independently():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (40, 3, 2))
    together = run(OneEuroFilter(), values)
    alone = run(OneEuroFilter(), values[:, 1, 0])
    np.testing.assert_allclose(together[:, 1, 0], alone)


def test_repeated_pts_returns_the_last_output():
    f = OneEuroFilter()
    f(np.zeros(2), 0.0)
    first = f(np.ones(2), 0.1)
    np.testing.assert_array_equal(f(np.full(2, 9.0), 0.1), first)


def test_dropped_frames_use_the_real_time_step():
    """A long gap lets the output catch up further than one frame would."""
    f_gap, f_next = OneEuroFilter(beta=0.0), OneEuroFilter(beta=0.0)
    for f in (f_gap, f_next):
        f(np.zeros(1), 0.0)
    assert f_gap(np.ones(1), 1.0)[0] > f_next(np.ones(1), 1 / FPS)[0]


def test_new_shape_restarts():
    f = OneEuroFilter()
    f(np.zeros((33, 2)), 0.0)
    np.testing.assert_array_equal(f(np.ones((33, 3)), 0.1), np.ones((33, 3)))


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({}, nullcontext()),
        ({"min_cutoff": 0.0}, pytest.raises(UserError)),
        ({"beta": -1.0}, pytest.raises(UserError)),
        ({"d_cutoff": 0.0}, pytest.raises(UserError)),
    ],
)
def test_constructor_checks_arguments(kwargs, expect):
    with expect:
        OneEuroFilter(**kwargs)

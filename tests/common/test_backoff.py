"""The shared retry backoff."""

import pytest

from repcoach.common.backoff import Backoff


def test_backoff_doubles_with_jitter_up_to_the_cap():
    backoff = Backoff(first=0.5, cap=30.0)
    delays = [backoff.next_delay() for _ in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_a_first_delay_beyond_the_cap_is_a_mistake():
    with pytest.raises(ValueError, match="need 0 < first <= cap"):
        Backoff(first=5.0, cap=1.0)

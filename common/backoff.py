"""Waiting between retries: the one backoff the project uses (webhook
deliveries, camera and stream reconnects)."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter: the n-th delay in a row is drawn
    from the upper half of `first * 2**n`, capped at `cap`. The jitter keeps
    several cameras (or sinks) that failed together from retrying in step."""

    def __init__(self, first: float = 0.5, cap: float = 30.0):
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first <= cap, got {first} and {cap}")
        self.first, self.cap = first, cap
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0

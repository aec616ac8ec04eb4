"""What a voice says next, when it cannot say everything: the pending queue
of a speaker that never talks over itself.

Policy (no threads or clocks here: callers pass `now`, so it tests directly):
- a newer rep count for a person replaces their pending one ("superseded"):
  only the latest count is worth saying;
- the same message (person and text) is not said again while it is pending or
  within `repeat_s` of being said ("repeated");
- at most `size` items wait; beyond that the lowest-priority item, the oldest
  among equals, goes ("queue-full");
- a cue that waited longer than `max_wait_s` is about a rep long gone
  ("stale"); counts never go stale, as they are always the latest.
The next item said is the highest-priority one, the oldest among equals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

SUPERSEDED = "superseded"
REPEATED = "repeated"
QUEUE_FULL = "queue-full"
STALE = "stale"


@dataclass(frozen=True)
class Utterance:
    """One thing to say. Items with the same `key` are the same message;
    a `count` item replaces a pending count with the same key."""

    text: str
    priority: int
    key: tuple
    queued_s: float
    count: bool = False
    about: dict = field(default_factory=dict, compare=False)  # where it came from (event)


class SpeechQueue:
    def __init__(self, size: int = 3, repeat_s: float = 8.0, max_wait_s: float = 6.0):
        if size < 1:
            raise ValueError(f"queue size must be at least 1, got {size}")
        self.size, self.repeat_s, self.max_wait_s = size, repeat_s, max_wait_s
        self._pending: list[tuple[int, Utterance]] = []  # (arrival order, item)
        self._order = itertools.count()
        self._said: dict[tuple, float] = {}  # key -> when it was last said

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, item: Utterance, now: float) -> list[tuple[Utterance, str]]:
        """Queue `item`; returns what was dropped for it, with the reason."""
        dropped: list[tuple[Utterance, str]] = []
        same = [entry for entry in self._pending if entry[1].key == item.key]
        if item.count:
            for entry in same:
                self._pending.remove(entry)
                dropped.append((entry[1], SUPERSEDED))
        elif same or now - self._said.get(item.key, -self.repeat_s) < self.repeat_s:
            return [(item, REPEATED)]
        self._pending.append((next(self._order), item))
        if len(self._pending) > self.size:
            victim = min(self._pending, key=lambda entry: (entry[1].priority, entry[0]))
            self._pending.remove(victim)
            dropped.append((victim[1], QUEUE_FULL))
        return dropped

    def take(self, now: float) -> tuple[Utterance | None, list[tuple[Utterance, str]]]:
        """The next item to say (None if nothing waits) and the stale ones dropped
        on the way. The item counts as said from `now`."""
        stale = [
            entry
            for entry in self._pending
            if not entry[1].count and now - entry[1].queued_s > self.max_wait_s
        ]
        for entry in stale:
            self._pending.remove(entry)
        dropped = [(entry[1], STALE) for entry in stale]
        if not self._pending:
            return None, dropped
        best = max(self._pending, key=lambda entry: (entry[1].priority, -entry[0]))
        self._pending.remove(best)
        self._said[best[1].key] = now
        return best[1], dropped

    def clear(self) -> list[Utterance]:
        """Empty the queue; returns what was waiting, oldest first."""
        items = [item for _, item in sorted(self._pending, key=lambda entry: entry[0])]
        self._pending.clear()
        return items

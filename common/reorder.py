"""Puts frames from parallel workers back in capture order."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from repcoach.common.messages import EndOfStream, FramePacket

Item = FramePacket | EndOfStream


@dataclass
class Reorderer:
    """Releases items in dispatch order using each item's `prev_seq` link.

    Every frame names the seq dispatched just before it, so the buffer knows
    exactly what it is waiting for: no guessing from seq gaps (which are
    legitimate drops at capture). Duplicates (a frame re-sent after a worker
    died) are discarded. With `gap_timeout_s` set (live sources), a missing
    frame that holds the line longer than that is given up and counted.
    """

    gap_timeout_s: float | None = None
    resume: bool = False  # a restarted stage: start from whatever arrives first
    last_released: int = -1
    skipped: int = 0
    duplicates: int = 0
    _waiting: dict[int, Item] = field(default_factory=dict)
    _blocked_since: float | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, item: Item) -> list[Item]:
        if isinstance(item, FramePacket) and item.meta.seq <= self.last_released:
            self.duplicates += 1
            return []
        link = item.meta.prev_seq if isinstance(item, FramePacket) else item.prev_seq
        if self.resume:
            self.resume = False
            self.last_released = link
        if link in self._waiting or link < self.last_released:
            self.duplicates += 1
            return []
        self._waiting[link] = item
        return self._release()

    def expire(self, now: float | None = None) -> list[Item]:
        """Give up on a missing frame that blocks the line for too long."""
        if self.gap_timeout_s is None or not self._waiting:
            return []
        now = time.monotonic() if now is None else now
        if self._blocked_since is None:
            self._blocked_since = now
            return []
        if now - self._blocked_since < self.gap_timeout_s:
            return []
        oldest = min(self._waiting)
        self.skipped += 1
        self.last_released = oldest
        return self._release()

    def _release(self) -> list[Item]:
        released: list[Item] = []
        while self.last_released in self._waiting:
            item = self._waiting.pop(self.last_released)
            released.append(item)
            if isinstance(item, EndOfStream):
                self._waiting.clear()
                break
            self.last_released = item.meta.seq
        self._blocked_since = time.monotonic() if self._waiting else None
        return released

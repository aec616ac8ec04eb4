"""Puts frames from parallel workers back in capture order."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from repcoach.common.messages import EndOfStream, FramePacket

Item = FramePacket | EndOfStream

# Frames held while waiting for an earlier one (lossless; live runs hold
# fewer): faster workers may run ahead of a slow one holding a chunk.
MAX_HELD = 1024
# How far past the last released frame an arriving frame's seq (and the seq it
# follows) may lie. In lossless runs capture never skips a seq, so a frame
# can only be ahead by what is in flight; live runs skip frames while no
# worker is free, so the window widens with the time since the last release
# (`growth_per_s`, well above any camera's frame rate).
SEQ_WINDOW = 4096


@dataclass
class Reorderer:
    """Releases items in dispatch order using each item's `prev_seq` link.

    Every frame names the seq dispatched just before it, so the buffer knows
    exactly what it is waiting for: no guessing from seq gaps (which are
    legitimate drops at capture). Duplicates (a frame re-sent after a worker
    died) are discarded. With `gap_timeout_s` set (live sources), a missing
    frame that holds the line longer than that is given up and counted.

    Bounded against forged input: an item whose seq or link lies outside
    `window` (+ `growth_per_s` per second since the last release) of the last
    released frame is refused (`refused`), so one frame claiming seq 1e12
    cannot turn every real frame into a duplicate; at most `max_held` items
    wait: when full, a live buffer gives up on the missing frame (`skipped`),
    a lossless one drops the item furthest ahead (`refused` too).
    """

    gap_timeout_s: float | None = None
    resume: bool = False  # a restarted stage: start from whatever arrives first
    window: int = SEQ_WINDOW
    growth_per_s: float = 0.0
    max_held: int = MAX_HELD
    last_released: int = -1
    skipped: int = 0
    duplicates: int = 0
    refused: int = 0
    _waiting: dict[int, Item] = field(default_factory=dict)
    _blocked_since: float | None = None
    _released_at: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, item: Item) -> list[Item]:
        if isinstance(item, FramePacket) and item.meta.seq <= self.last_released:
            self.duplicates += 1
            return []
        link = item.meta.prev_seq if isinstance(item, FramePacket) else item.prev_seq
        if isinstance(item, FramePacket) and item.meta.seq <= link:
            self.refused += 1  # a frame always follows the one before it
            return []
        if isinstance(item, FramePacket) and not self.resume and not self._in_window(item, link):
            self.refused += 1  # far ahead whatever it follows (a forged seq)
            return []
        if self.resume:
            if link < -1:
                self.refused += 1
                return []
            self.resume = False
            self.last_released = link
            self._released_at = time.monotonic()
        if link in self._waiting or link < self.last_released:
            self.duplicates += 1
            return []
        if not self._in_window(item, link):
            self.refused += 1
            return []
        released: list[Item] = []
        if len(self._waiting) >= self.max_held:
            if self.gap_timeout_s is not None:
                # Live: a full buffer means the missing frame is not coming
                # in time; give up on it now rather than hold more frames.
                self.skipped += 1
                self.last_released = min(self._waiting)
                released = self._release()
            else:
                furthest = max(self._waiting)
                if link > furthest:
                    self.refused += 1
                    return []
                del self._waiting[furthest]
                self.refused += 1
        if link < self.last_released or link in self._waiting:
            self.duplicates += 1
            return released
        self._waiting[link] = item
        return released + self._release()

    def _in_window(self, item: Item, link: int) -> bool:
        limit = self.last_released + self.window
        if self.growth_per_s:
            limit += int(self.growth_per_s * (time.monotonic() - self._released_at))
        seq = item.meta.seq if isinstance(item, FramePacket) else link
        return link <= limit and seq <= limit

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
        if released:
            self._released_at = time.monotonic()
        self._blocked_since = time.monotonic() if self._waiting else None
        return released

"""How old a frame is, on whichever host reads it.

Capture stamps each frame with its monotonic clock (steady, immune to clock
steps, but meaningful only on the machine that read it: it counts from that
machine's boot) and its wall clock (comparable across machines kept in sync
by NTP). A stage on the capture's machine measures age on the monotonic
clock; a stage on another host (a GPU box running segment workers, say)
falls back to the wall clock, so a host that has been up longer than the
capture host does not see every frame as hours old.

Machines are told apart by the kernel's boot id, which containers on one
host share with it (they share its monotonic clock too).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _read_clock_id() -> str:
    try:
        text = _BOOT_ID.read_text().strip()
    except OSError:
        text = ""
    # Without a boot id (not Linux), this process's own id: other processes
    # then compare wall clocks, which is right, only less steady.
    return text[:36] if text else f"process-{uuid.uuid4()}"


CLOCK_ID = _read_clock_id()


def frame_age_s(t_mono_ns: int, t_wall: float, clock_id: str) -> float:
    """Seconds since capture read a frame stamped (`t_mono_ns`, `t_wall`) on
    the machine whose clock is `clock_id` (never negative: wall clocks of two
    hosts may disagree by a little)."""
    if clock_id == CLOCK_ID:
        return (time.monotonic_ns() - t_mono_ns) / 1e9
    return max(0.0, time.time() - t_wall)

"""Session summary JSON, written atomically (at the end, on stop, and every
few seconds so a crash keeps what was already processed)."""

from __future__ import annotations

import time
from pathlib import Path

from repcoach.common.atomic import write_json_atomic
from repcoach.common.messages import EndOfStream, FramePacket, SessionState

WRITE_EVERY_S = 2.0


def summary_document(state: SessionState, wall_s: float, missed: int = 0) -> dict:
    """The summary's shape (documented in the README; integrators rely on it)."""
    return {
        "source": state.source_id,
        "frames": state.frames,
        "dropped": state.dropped,
        "duration_s": state.duration_s,
        "wall_s": round(wall_s, 3),
        "ended": state.ended,
        "reason": state.reason,
        "missed_by_summary": missed,
        "people": [
            {
                "id": person.track_id,
                "exercises": [
                    {
                        "exercise": person.exercise or "unknown",
                        "reps": person.reps,
                        "partial_reps": person.partial_reps,
                        "reps_detail": [],
                    }
                ],
            }
            for person in state.people
        ],
    }


class SummarySink:
    topics = ()  # state and end-of-stream are enough

    def __init__(self, path: Path):
        self.path = path
        self.state: SessionState | None = None
        self._dirty = False
        self._last_write = 0.0
        self._started = time.monotonic()

    def on_state(self, state: SessionState) -> None:
        self.state, self._dirty = state, True

    def on_result(self, packet: FramePacket) -> None:
        pass

    def on_eos(self, eos: EndOfStream) -> None:
        self.write()

    def tick(self) -> None:
        if self._dirty and time.monotonic() - self._last_write > WRITE_EVERY_S:
            self.write()

    def write(self, missed: int = 0) -> None:
        if self.state is None:
            return
        wall = time.monotonic() - self._started
        write_json_atomic(self.path, summary_document(self.state, wall, missed))
        self._dirty, self._last_write = False, time.monotonic()

    def close(self, missed: int) -> None:
        self.write(missed)

"""What each stage's logic looks like. None of it knows about sockets: the
runner in `repcoach.common.runner` feeds it packets and ships its results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from repcoach.common.messages import EndOfStream, FramePacket, PersonInstance, PersonJoints

# Frames one forward pass of a batching segmenter takes at most (`batch`): a
# GPU runs a batch in little more time than one frame; each frame in flight
# holds its pixels.
MAX_BATCH = 8


class Segmenter(Protocol):
    """Finds every person in a BGR frame (track ids left at -1). `pts` (the
    frame's time in seconds, when known) lets a backend reuse work from the
    frames just before; without it every frame stands alone. `continues`
    (see `repcoach.common.chunks`): True when this frame directly follows the
    last one given, in the same chunk; False to start afresh (a chunk's first
    frame); None when there is no such promise (live), and the backend judges
    by time. A worker serving several stations calls `switch_to` before each
    station's frame: whatever a backend follows from frame to frame is kept
    per station.

    A backend whose frames stand alone may also take up to `batch` frames,
    of any stations, in one `segment_batch(frames)` call (one forward pass).
    """

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]: ...

    def switch_to(self, station: str) -> None: ...


def batch_of(segmenter: Segmenter) -> int:
    """Frames `segmenter` takes in one `segment_batch` call (1: it has none;
    its frames then go one by one, in order, as a backend that follows
    people from frame to frame needs)."""
    return getattr(segmenter, "batch", 1)


class JointEstimator(Protocol):
    """Locates the 33 landmarks of each tracked person in a BGR frame. An
    estimator that keeps state per track (a model following each person)
    drops it in `retire` when tracks leave and in `reset` at the end."""

    def estimate(
        self, frame: np.ndarray, persons: list[PersonInstance], pts: float
    ) -> list[PersonJoints]: ...

    def retire(self, track_ids: list[int]) -> None: ...

    def reset(self) -> None: ...


class PacketStage(Protocol):
    """A stage that transforms each packet in order (joints, score)."""

    def process(self, packet: FramePacket) -> FramePacket: ...

    def end(self, eos: EndOfStream) -> None: ...


@runtime_checkable
class CountsDrops(Protocol):
    """Optional for stage logic and sinks: what it refused or lost on its own
    side, by reason, as running totals (shown by `pipeline status`)."""

    def drops(self) -> Mapping[str, int]: ...


class PassThrough:
    """A stage that changes nothing (`--joints none`): measures transport alone."""

    def process(self, packet: FramePacket) -> FramePacket:
        return packet

    def end(self, eos: EndOfStream) -> None:
        pass

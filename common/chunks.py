"""Chunks: what makes a file's result independent of the worker count.

The BlazePose segmenter keeps per-person state from frame to frame (the ROI
it follows, when it last ran the detector). If each worker kept that state
across whatever frames it happened to be handed, the result would depend on
timing. So a lossless stream is cut into short chunks of consecutive frames,
like closed groups of pictures in a video encoder:

- capture numbers the chunks (`Chunker`) and hands every frame of a chunk to
  the worker that took its first frame;
- a worker starts afresh at each chunk's first frame (the detector runs, no
  one is followed) and follows people only from the frame just before
  (`continues`).

Each frame's result is then a function of its chunk's frames in order,
whichever worker ran it. Live streams (LATEST) are not chunked: a frame goes
to whichever worker is free, for latency, and each worker follows people from
the frames it saw (`continues` is None there).
"""

from __future__ import annotations

from repcoach.common.messages import FrameMeta

# Media time a chunk spans: at 30 fps, 8 frames. Each chunk starts afresh, so
# this also bounds how long an ROI that slid off its person (onto a
# neighbour) is followed: a fresh look keeps whoever is followed.
CHUNK_S = 0.25
# A chunk's frames all queue at one worker: this caps what it holds (high
# frame rates get shorter chunks).
MAX_CHUNK_FRAMES = 8
NOT_CHUNKED = -1


class Chunker:
    """Numbers the chunks of one stream, frame by frame, in capture order."""

    def __init__(self, seconds: float = CHUNK_S, max_frames: int = MAX_CHUNK_FRAMES):
        self.seconds = seconds
        self.max_frames = max_frames
        self._chunk = NOT_CHUNKED
        self._start_pts = 0.0
        self._frames = 0

    def chunk_of(self, pts: float) -> int:
        """The chunk the next frame (at media time `pts`) belongs to."""
        full = self._frames >= self.max_frames
        if self._chunk == NOT_CHUNKED or full or not 0.0 <= pts - self._start_pts < self.seconds:
            self._chunk += 1
            self._start_pts, self._frames = pts, 0
        self._frames += 1
        return self._chunk


def continues(previous: FrameMeta | None, meta: FrameMeta) -> bool | None:
    """Whether a worker that last segmented `previous` may follow people into
    `meta`: True within a chunk, False at a chunk's first frame (or when the
    frame just before went to another worker, after a crash re-sent it), None
    for a frame that is not chunked (live: the segmenter decides by time)."""
    if meta.chunk == NOT_CHUNKED:
        return None
    return (
        previous is not None
        and previous.chunk == meta.chunk
        and previous.seq == meta.prev_seq
        and previous.source_id == meta.source_id
    )

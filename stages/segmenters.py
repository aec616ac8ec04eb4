"""Segmentation backends by name (`--segmenter`)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance
from repcoach.common.registry import Registry
from repcoach.common.specs import Spec
from repcoach.stages.base import MAX_BATCH, Segmenter, batch_of
from repcoach.stages.person_features import with_colours

SEGMENTERS = Registry(
    "segmenter",
    {
        "blazepose": "repcoach.stages.segmenters:blazepose_from_spec",
        "maskrcnn": "repcoach.stages.segmenters:maskrcnn_from_spec",
        "passthrough": "repcoach.stages.segmenters:passthrough_from_spec",
    },
)


class PassthroughSegmenter:
    """Finds nobody: measures the transport alone (with `jitter_ms`, stands in
    for a slow model when testing flow control; with `batch`, for a model
    that takes several frames per pass)."""

    def __init__(self, batch: int = 1):
        self.batch = batch

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        return []

    def segment_batch(self, frames: list[np.ndarray]) -> list[list[PersonInstance]]:
        return [[] for _ in frames]

    def switch_to(self, station: str) -> None:
        pass  # follows nobody


class Jittered:
    """Another segmenter, after a random delay: makes workers finish out of
    order, as a loaded machine does (tests of flow control and determinism)."""

    def __init__(self, inner: Segmenter, jitter_ms: tuple[float, float], seed: int | None = None):
        self.inner = inner
        self.jitter_ms = jitter_ms
        self._random = random.Random(seed)

    @property
    def batch(self) -> int:
        return batch_of(self.inner)

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        time.sleep(self._random.uniform(*self.jitter_ms) / 1000.0)
        return self.inner.segment(frame, pts, continues)

    def segment_batch(self, frames: list[np.ndarray]) -> list[list[PersonInstance]]:
        time.sleep(self._random.uniform(*self.jitter_ms) / 1000.0)
        return self.inner.segment_batch(frames)

    def switch_to(self, station: str) -> None:
        self.inner.switch_to(station)


class WithColours:
    """Another segmenter whose persons carry their clothing colours (the
    tracker's appearance cue), measured where the frame is at hand: the
    segment workers run in parallel, and the pixels need not travel on to
    the tracker."""

    def __init__(self, inner: Segmenter):
        self.inner = inner

    @property
    def batch(self) -> int:
        return batch_of(self.inner)

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        return with_colours(self.inner.segment(frame, pts, continues), frame)

    def segment_batch(self, frames: list[np.ndarray]) -> list[list[PersonInstance]]:
        found = self.inner.segment_batch(frames)
        return [with_colours(persons, f) for persons, f in zip(found, frames, strict=True)]

    def switch_to(self, station: str) -> None:
        self.inner.switch_to(station)


def _batch(spec: Spec) -> int:
    value = spec.take_number("batch", 1, 1, MAX_BATCH)
    if value != int(value):
        raise UserError(f"{spec.name}: batch={spec.options['batch']} is not a whole number")
    return int(value)


def _jitter(spec: Spec) -> tuple[float, float]:
    raw = spec.options.get("jitter_ms", "0")
    low, _, high = raw.partition("-")
    try:
        lo, hi = float(low), float(high or low)
    except ValueError:
        raise UserError(f"passthrough: jitter_ms={raw!r} must be MS or LO-HI") from None
    if not 0 <= lo <= hi <= 60_000:
        raise UserError(f"passthrough: jitter_ms={raw!r} must satisfy 0 <= LO <= HI <= 60000")
    return lo, hi


# Each backend's factory (see `repcoach.common.registry`): checks its options
# and, with `build`, loads its model.


def passthrough_from_spec(
    spec: Spec, build: bool, weights_dir: Path, landmarks: bool
) -> Segmenter | None:
    spec.check_known({"jitter_ms", "batch"})
    batch = _batch(spec)
    return PassthroughSegmenter(batch) if build else None


def blazepose_from_spec(
    spec: Spec, build: bool, weights_dir: Path, landmarks: bool
) -> Segmenter | None:
    spec.check_known({"jitter_ms"})
    if not build:
        return None
    from repcoach.stages.blazepose import BlazePoseSegmenter

    return BlazePoseSegmenter(landmarks=landmarks)


def maskrcnn_from_spec(
    spec: Spec, build: bool, weights_dir: Path, landmarks: bool
) -> Segmenter | None:
    spec.check_known({"speed", "jitter_ms", "batch"})
    speed = spec.take("speed", "average", {"full", "average", "fast", "rapid"})
    batch = _batch(spec)
    from repcoach.stages.maskrcnn import MaskRCNNSegmenter, require_weights, weights_path

    require_weights(weights_path(weights_dir))
    if not build:
        return None
    return MaskRCNNSegmenter(weights_path(weights_dir), infer_speed=speed, batch=batch)


def _from_text(
    text: str, build: bool, weights_dir: Path, landmarks: bool = False
) -> tuple[Spec, Segmenter | None]:
    """The parsed spec (all its options checked before any model loads) and,
    with `build`, the backend."""
    spec = Spec.parse(text, "--segmenter")
    factory = SEGMENTERS.factory(spec.name)
    _jitter(spec)
    return spec, factory(spec, build, weights_dir, landmarks)


def check_segmenter(text: str, weights_dir: Path) -> Spec:
    """Validate a `--segmenter` value up front (cheap: loads no model)."""
    return _from_text(text, False, weights_dir)[0]


def _backend(segmenter: str) -> str:
    """The backend's name in a `--segmenter` value (`maskrcnn:speed=fast`)."""
    return segmenter.split(":")[0].strip().lower()


def default_workers(segmenter: str, gpus: list[int]) -> int:
    """Segment workers when `--workers` is not given: one per GPU; one for
    Mask R-CNN on CPU (a worker holds ~2 GB and keeps every core busy);
    otherwise one per core, up to 4 (with BlazePose the workers do most of
    the work: on 2 cores, 2 workers ran 1.4-2.0x the frames/s of 1)."""
    if gpus:
        return len(gpus)
    if _backend(segmenter) == "maskrcnn":
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def finds_landmarks(segmenter: str, joints: str) -> bool:
    """Whether the segment workers find the landmarks too: the BlazePose
    segmenter does when BlazePose joints are wanted, on the crop it already
    cut, so the landmark model runs in parallel workers rather than in the
    one ordered joints stage."""
    return _backend(segmenter) == "blazepose" and joints == "blazepose"


def make_segmenter(
    text: str, weights_dir: Path, seed: int | None = None, landmarks: bool = False
) -> Segmenter:
    """Build the backend a worker process runs (loads the model once).
    `landmarks`: attach each person's landmarks (BlazePose only)."""
    spec, segmenter = _from_text(text, True, weights_dir, landmarks)
    assert segmenter is not None
    jitter = _jitter(spec)
    return Jittered(segmenter, jitter, seed) if jitter[1] > 0 else segmenter

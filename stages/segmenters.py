"""Segmentation backends by name (`--segmenter`)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance
from repcoach.common.specs import Spec
from repcoach.stages.base import Segmenter

SEGMENTERS = ("blazepose", "maskrcnn", "passthrough")


class PassthroughSegmenter:
    """Finds nobody: measures the transport alone (with `jitter_ms`, stands in
    for a slow model when testing flow control)."""

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        return []


class Jittered:
    """Another segmenter, after a random delay: makes workers finish out of
    order, as a loaded machine does (tests of flow control and determinism)."""

    def __init__(self, inner: Segmenter, jitter_ms: tuple[float, float], seed: int | None = None):
        self.inner = inner
        self.jitter_ms = jitter_ms
        self._random = random.Random(seed)

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        time.sleep(self._random.uniform(*self.jitter_ms) / 1000.0)
        return self.inner.segment(frame, pts, continues)


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


def check_segmenter(text: str, weights_dir: Path) -> Spec:
    """Validate a `--segmenter` value up front (cheap: loads no model)."""
    spec = Spec.parse(text, "--segmenter")
    if spec.name not in SEGMENTERS:
        raise UserError(f"unknown segmenter {spec.name!r}; valid: {', '.join(SEGMENTERS)}")
    if spec.name == "maskrcnn":
        spec.check_known({"speed", "jitter_ms"})
        spec.take("speed", "average", {"full", "average", "fast", "rapid"})
        from repcoach.stages.maskrcnn import require_weights, weights_path

        require_weights(weights_path(weights_dir))
    else:
        spec.check_known({"jitter_ms"})
    _jitter(spec)
    return spec


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
    spec = check_segmenter(text, weights_dir)
    segmenter: Segmenter
    if spec.name == "passthrough":
        segmenter = PassthroughSegmenter()
    elif spec.name == "maskrcnn":
        from repcoach.stages.maskrcnn import MaskRCNNSegmenter, weights_path

        segmenter = MaskRCNNSegmenter(
            weights_path(weights_dir), infer_speed=spec.take("speed", "average")
        )
    else:
        from repcoach.stages.blazepose import BlazePoseSegmenter

        segmenter = BlazePoseSegmenter(landmarks=landmarks)
    jitter = _jitter(spec)
    return Jittered(segmenter, jitter, seed) if jitter[1] > 0 else segmenter

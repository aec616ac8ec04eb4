"""Which process finds the landmarks, and how many segment workers start."""

from __future__ import annotations

import os

import pytest

from repcoach.stages.segmenters import default_workers, finds_landmarks


@pytest.mark.parametrize(
    ("segmenter", "joints", "expected"),
    [
        ("blazepose", "blazepose", True),
        ("BlazePose", "blazepose", True),
        ("blazepose", "haar", False),
        ("blazepose", "none", False),
        ("maskrcnn:speed=fast", "blazepose", False),
        ("passthrough:jitter_ms=5", "blazepose", False),
    ],
)
def test_segment_workers_find_landmarks_only_for_blazepose_joints(segmenter, joints, expected):
    assert finds_landmarks(segmenter, joints) is expected


def test_default_workers():
    assert default_workers("blazepose", [0, 1, 3]) == 3  # one per GPU
    assert default_workers("maskrcnn", []) == 1  # ~2 GB each, all cores busy
    assert default_workers("maskrcnn:speed=rapid", []) == 1
    assert default_workers("blazepose", []) == max(1, min(os.cpu_count() or 1, 4))

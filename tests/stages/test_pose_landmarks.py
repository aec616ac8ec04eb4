"""The landmark model run directly on ROI crops: heatmap refinement, and the
mapping back to the frame (turn the frame, the landmarks turn with it)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from repcoach.stages.blazepose import BlazePoseSegmenter
from repcoach.stages.pose_landmarks import refine_from_heatmap
from tests.stages.test_blazepose_synthetic import KEY_JOINTS

synthetic = pytest.importorskip("repcoach.stages.synthetic")


def test_a_confident_heatmap_pulls_the_landmark_to_its_peak():
    heatmap = np.full((64, 64, 3), -10.0, dtype=np.float32)  # logits: nothing anywhere
    heatmap[20, 31, 0] = 10.0  # a sharp peak 2 cells right of landmark 0
    heatmap[40, 40, 1] = -1.0  # landmark 1: below the 0.5 confidence to refine
    xy = np.array([[29.5 / 64, 20.5 / 64], [40.5 / 64, 40.5 / 64], [1.5, 0.2]], np.float32)
    refined = refine_from_heatmap(xy, heatmap)
    assert refined[0] * 64 == pytest.approx([31.0, 20.0], abs=0.05)
    assert np.array_equal(refined[1:], xy[1:])  # unsure, or outside the heatmap: kept


def test_landmarks_turn_with_the_frame():
    source = synthetic.SyntheticSource.from_spec("squat,reps=1,seed=2")
    image, _ = next(iter(source.frames()))
    height, width = image.shape[:2]
    upright = BlazePoseSegmenter(landmarks=True).segment(image)[0].landmarks
    turned_image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    turned = BlazePoseSegmenter(landmarks=True).segment(turned_image)[0].landmarks
    assert upright is not None and turned is not None
    # Clockwise: frame pixel (x, y) lands at (height - 1 - y, x).
    expected = np.stack([height - 1 - upright.image_xy[:, 1], upright.image_xy[:, 0]], axis=1)
    miss = np.linalg.norm(turned.image_xy[KEY_JOINTS] - expected[KEY_JOINTS], axis=1)
    body = np.ptp(upright.image_xy[KEY_JOINTS, 1]) + 1.0
    assert np.median(miss) < 0.04 * body, miss
    # World coordinates turn with the camera too (x right, y down in the image).
    world_expected = np.stack([-upright.world_xyz[:, 1], upright.world_xyz[:, 0]], axis=1)
    world_miss = np.linalg.norm(
        turned.world_xyz[KEY_JOINTS, :2] - world_expected[KEY_JOINTS], axis=1
    )
    assert np.median(world_miss) < 0.08, world_miss


def test_a_lone_persons_mask_comes_from_the_landmark_run():
    """Nobody else's ROI overlaps: one landmark run gives landmarks and mask,
    the selfie model is not run, and the mask agrees with the selfie's."""
    source = synthetic.SyntheticSource.from_spec("squat,reps=1,seed=2")
    image, _ = next(iter(source.frames()))
    segmenter = BlazePoseSegmenter(landmarks=True)
    selfie_runs = []
    selfie_mask = segmenter._selfie_mask
    segmenter._selfie_mask = lambda crop: selfie_runs.append(1) or selfie_mask(crop)
    (person,) = segmenter.segment(image)
    (selfie,) = BlazePoseSegmenter().segment(image)
    assert person.landmarks is not None
    assert not selfie_runs

    def in_frame(p):
        full = np.zeros(image.shape[:2], dtype=bool)
        x0, y0, x1, y1 = p.mask_box()
        full[y0:y1, x0:x1] = p.mask
        return full

    a, b = in_frame(person), in_frame(selfie)
    assert (a & b).sum() / (a | b).sum() > 0.8

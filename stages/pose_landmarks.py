"""BlazePose Full landmarks (`pose_landmark_full.tflite` from the mediapipe
wheel) run directly with LiteRT on a person's upright ROI crop.

Running the model here instead of through `mediapipe.solutions.pose` means it
needs no per-person graph and no frame order: any process holding a frame and
a person's ROI can find their landmarks, so the segmentation workers do it in
parallel on the crop they already cut for the mask.

The model takes a 256x256 RGB crop in [0, 1] and returns 39 landmarks (x, y,
z, visibility logit, presence logit; x and y in crop pixels), a pose-presence
score, a 256x256 segmentation of that person in the crop (logits, which
MediaPipe's graph passes through a sigmoid), 64x64 heatmaps per landmark
(logits) and 39 world landmarks in metres. Landmarks 0-32 are the pose; 33
and 34 (hip centre and a point on the full-body circle) place the ROI for the
next frame. The decoding
follows MediaPipe's pose landmark graph (`tensors_to_pose_landmarks_and_
segmentation.pbtxt`, `pose_landmarks_to_roi.pbtxt`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.stages.pose_detector import load_interpreter, mediapipe_model

INPUT_SIZE = 256
_ALL_LANDMARKS = 39
_HEATMAP_KERNEL = 7
_MIN_HEATMAP_CONFIDENCE = 0.5  # MediaPipe's default for refining from the heatmap
MIN_POSE_SCORE = 0.5  # MediaPipe's threshold for "a pose is present"


@dataclass(frozen=True)
class Landmarks:
    """One person's landmarks in frame coordinates.

    `image_xy` (33, 2) pixels; `visibility` (33,) in [0, 1]; `world_xyz`
    (33, 3) metres with the origin between the hips, rotated back to the
    frame's orientation; `aux_xy` (2, 2) hip centre and full-body circle
    point, pixels (they place the next frame's ROI).
    """

    image_xy: np.ndarray
    visibility: np.ndarray
    world_xyz: np.ndarray
    aux_xy: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Move each landmark (normalised crop coordinates, (N, 2)) to the
    confidence-weighted mean cell of its heatmap channel in a 7x7 window
    around it, where the heatmap is confident there (max >= 0.5). Cells
    outside the heatmap weigh nothing; landmarks outside it stay put."""
    height, width, count = heatmap.shape
    cols = (xy[:, 0] * width).astype(int)  # truncation, as MediaPipe casts
    rows = (xy[:, 1] * height).astype(int)
    offsets = np.arange(-(_HEATMAP_KERNEL // 2), _HEATMAP_KERNEL // 2 + 1)
    window_rows = rows[:, None] + offsets  # (N, 7)
    window_cols = cols[:, None] + offsets
    inside_rows = (window_rows >= 0) & (window_rows < height)
    inside_cols = (window_cols >= 0) & (window_cols < width)
    logits = heatmap[
        np.clip(window_rows, 0, height - 1)[:, :, None],
        np.clip(window_cols, 0, width - 1)[:, None, :],
        np.arange(count)[:, None, None],
    ]  # (N, 7, 7): each landmark's own channel
    confidence = _sigmoid(logits) * (inside_rows[:, :, None] & inside_cols[:, None, :])
    total = confidence.sum(axis=(1, 2))
    refined_x = (confidence * window_cols[:, None, :]).sum(axis=(1, 2)) / np.maximum(total, 1e-12)
    refined_y = (confidence * window_rows[:, :, None]).sum(axis=(1, 2)) / np.maximum(total, 1e-12)
    refine = (
        (cols >= 0)
        & (cols < width)
        & (rows >= 0)
        & (rows < height)
        & (total > 0.0)
        & (confidence.max(axis=(1, 2)) >= _MIN_HEATMAP_CONFIDENCE)
    )
    out = xy.copy()
    out[refine, 0] = refined_x[refine] / width
    out[refine, 1] = refined_y[refine] / height
    return out


class PoseLandmarkModel:
    """Runs the landmark model on one upright ROI crop at a time."""

    def __init__(self, num_threads: int = 1):
        self._interpreter = load_interpreter(
            mediapipe_model("pose_landmark/pose_landmark_full.tflite"), num_threads
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        # Output order is not guaranteed: pick the tensors by their shapes.
        by_shape = {
            tuple(d["shape"][1:]): d["index"] for d in self._interpreter.get_output_details()
        }
        self._landmarks = by_shape[(_ALL_LANDMARKS * 5,)]
        self._presence = by_shape[(1,)]
        self._heatmap = by_shape[(64, 64, _ALL_LANDMARKS)]
        self._world = by_shape[(_ALL_LANDMARKS * 3,)]
        self._segmentation = by_shape[(INPUT_SIZE, INPUT_SIZE, 1)]

    def run(self, crop_rgb: np.ndarray, roi_to_frame: np.ndarray) -> Landmarks | None:
        """Landmarks of the person in `crop_rgb` ((256, 256, 3) float32 RGB in
        [0, 1], cut with the 2x3 crop-to-frame map `roi_to_frame`), or None
        when the model sees no pose there."""
        self._interpreter.set_tensor(self._input, crop_rgb[None])
        self._interpreter.invoke()
        return self._landmarks_found(roi_to_frame)

    def run_with_mask(
        self, crop_rgb: np.ndarray, roi_to_frame: np.ndarray
    ) -> tuple[Landmarks | None, np.ndarray]:
        """`run`, plus the same model run's segmentation of that person:
        (256, 256) float32 probabilities in crop space (sigmoid of the logits),
        like the selfie model's output on the same crop."""
        self._interpreter.set_tensor(self._input, crop_rgb[None])
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._segmentation)[0, :, :, 0]
        return self._landmarks_found(roi_to_frame), _sigmoid(logits)

    def _landmarks_found(self, roi_to_frame: np.ndarray) -> Landmarks | None:
        interpreter = self._interpreter
        score = float(_sigmoid(interpreter.get_tensor(self._presence).reshape(())))
        if score < MIN_POSE_SCORE:
            return None
        raw = interpreter.get_tensor(self._landmarks).reshape(_ALL_LANDMARKS, 5)
        heatmap = interpreter.get_tensor(self._heatmap)[0]
        normalised = refine_from_heatmap(raw[:, :2] / INPUT_SIZE, heatmap)
        crop_xy = normalised * INPUT_SIZE
        frame_xy = crop_xy @ roi_to_frame[:, :2].T + roi_to_frame[:, 2]
        # The crop is rotated upright; world landmarks turn back with it.
        linear = roi_to_frame[:, :2]
        rotation = linear / np.sqrt(abs(np.linalg.det(linear)))
        world = interpreter.get_tensor(self._world).reshape(_ALL_LANDMARKS, 3)[:NUM_LANDMARKS]
        world_xyz = world.astype(np.float32)  # a copy
        world_xyz[:, :2] = world[:, :2] @ rotation.T
        return Landmarks(
            image_xy=frame_xy[:NUM_LANDMARKS].astype(np.float32),
            visibility=_sigmoid(raw[:NUM_LANDMARKS, 3]).astype(np.float32),
            world_xyz=world_xyz,
            aux_xy=frame_xy[NUM_LANDMARKS : NUM_LANDMARKS + 2].astype(np.float64),
        )

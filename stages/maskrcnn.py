"""Mask R-CNN person segmentation (the paper's segmenter), through PixelLib.

PixelLib 0.7.1 predates Keras 3: it only works through tf-keras, which
TensorFlow picks when TF_USE_LEGACY_KERAS=1 is set *before* TensorFlow is
first imported. This module sets it at import and imports TensorFlow lazily,
inside the constructor, so importing it stays cheap for processes that never
build the model.

PixelLib's own `load_weights` loads through TensorFlow's private frozen copy
of Keras, which assigns the values in another graph session than the one
tf-keras predicts in: the model then silently runs with random weights. We
build PixelLib's model and load the file with tf-keras' own HDF5 loader
(`Model.load_weights(by_name=True)`, i.e. tf-keras'
`hdf5_format.load_weights_from_hdf5_group_by_name`).

Importing PixelLib switches TensorFlow to graph mode for the whole process,
and PixelLib's COCO config is a module-level global: one model per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance
from repcoach.common.weights import check_weights, default_weights_dir, load_manifest, lookup
from repcoach.stages.base import MAX_BATCH

# Must precede every TensorFlow import in this process (see module docstring);
# nothing imported above imports TensorFlow.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

WEIGHTS_NAME = "maskrcnn"
COCO_PERSON = 1
# PixelLib's speed presets and the network input side each sets (the frame is
# scaled and zero-padded to that square); each also sets its own score
# threshold (0.7, 0.45, 0.25, 0.2). "full" is PixelLib's unnamed default.
INFER_SPEEDS = {"full": 1024, "average": 512, "fast": 384, "rapid": 256}


@dataclass(frozen=True)
class Detections:
    """Raw Mask R-CNN output for one frame, every COCO class, before filtering.

    `boxes` (N, 4) float pixels x0, y0, x1, y1 (x1/y1 exclusive); `class_ids`
    (N,) COCO ids (1 = person); `scores` (N,); `masks` (H, W, N) bool.
    """

    boxes: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    masks: np.ndarray


def weights_path(weights_dir: Path | None = None) -> Path:
    """Where the Mask R-CNN weights live for a weights folder (default: the
    `--weights-dir` default of `pipeline weights`)."""
    entry = lookup(WEIGHTS_NAME, load_manifest())
    return entry.path_in(default_weights_dir() if weights_dir is None else weights_dir)


class MaskRCNNSegmenter:
    """Finds people with PixelLib's COCO Mask R-CNN (ResNet-101 FPN).

    `infer_speed` is one of PixelLib's presets (`INFER_SPEEDS`): the network
    input side trades accuracy for time. `min_confidence` overrides the
    preset's detection threshold (it is compiled into the graph at build).
    The model runs on a GPU when TensorFlow sees one, so setting
    CUDA_VISIBLE_DEVICES per worker process pins each worker to a GPU.
    `batch` frames go through the network in one forward pass
    (`segment_batch`, fewer padded with blank frames): the model's graph is
    built for that batch size.
    """

    def __init__(
        self,
        weights_path: Path,
        infer_speed: str = "average",
        min_confidence: float | None = None,
        batch: int = 1,
    ):
        if infer_speed not in INFER_SPEEDS:
            raise UserError(
                f"maskrcnn: infer_speed={infer_speed!r} is not one of {sorted(INFER_SPEEDS)}"
            )
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise UserError(f"maskrcnn: min_confidence={min_confidence} is outside [0, 1]")
        if not 1 <= batch <= MAX_BATCH:
            raise UserError(f"maskrcnn: batch={batch} is outside [1, {MAX_BATCH}]")
        self.weights_path = Path(weights_path)
        self.infer_speed = infer_speed
        self.batch = batch
        require_weights(self.weights_path)
        self.device, self._engine = _model_for(
            self.weights_path, infer_speed, min_confidence, batch
        )

    @classmethod
    def from_weights_dir(cls, weights_dir: Path | None = None, **kwargs: Any) -> MaskRCNNSegmenter:
        return cls(weights_path(weights_dir), **kwargs)

    @property
    def keras_model(self) -> Any:
        """The tf-keras model that predicts (tests read its weights back)."""
        return self._engine.model.keras_model

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        """Every detection in a BGR frame, all classes. The frame is not modified."""
        return self.detect_batch([frame_bgr])[0]

    def detect_batch(self, frames_bgr: list[np.ndarray]) -> list[Detections]:
        """`detect` for frames of any sizes, `batch` of them per forward pass."""
        for frame in frames_bgr:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(
                    f"expected a uint8 BGR frame (H, W, 3), got {frame.dtype} {frame.shape}"
                )
        found = []
        for start in range(0, len(frames_bgr), self.batch):
            found += self._forward(frames_bgr[start : start + self.batch])
        return found

    def _forward(self, frames_bgr: list[np.ndarray]) -> list[Detections]:
        # The network was trained on RGB. cvtColor returns a new array, so
        # nothing PixelLib does can touch the caller's frame; calling
        # `detect` rather than `segmentFrame` also skips PixelLib's drawing.
        images = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames_bgr]
        # The graph takes exactly `batch` images: blank ones fill the rest.
        blanks = [np.zeros_like(images[0])] * (self.batch - len(images))
        results = self._engine.model.detect(images + blanks)[: len(images)]
        return [_detections(r, f.shape[:2]) for r, f in zip(results, frames_bgr, strict=True)]

    def switch_to(self, station: str) -> None:
        pass  # every frame stands alone

    def segment(
        self, frame: np.ndarray, pts: float | None = None, continues: bool | None = None
    ) -> list[PersonInstance]:
        """The people in a BGR frame, each mask cropped to its box (track ids
        -1). Every frame stands alone."""
        return self.segment_batch([frame])[0]

    def segment_batch(self, frames: list[np.ndarray]) -> list[list[PersonInstance]]:
        """`segment` for several frames, `batch` of them per forward pass."""
        return [
            _persons(found, frame.shape[:2])
            for found, frame in zip(self.detect_batch(frames), frames, strict=True)
        ]


def _detections(result: dict, size: tuple[int, int]) -> Detections:
    """PixelLib's result for one image as `Detections`."""
    height, width = size
    rois = np.asarray(result["rois"], dtype=np.float64).reshape(-1, 4)
    return Detections(
        boxes=rois[:, [1, 0, 3, 2]],  # PixelLib gives y0, x0, y1, x1
        class_ids=np.asarray(result["class_ids"], dtype=np.int64).reshape(-1),
        scores=np.asarray(result["scores"], dtype=np.float64).reshape(-1),
        masks=np.asarray(result["masks"], dtype=bool).reshape(height, width, -1),
    )


def _persons(found: Detections, size: tuple[int, int]) -> list[PersonInstance]:
    """The people among `found`, each mask cropped to its box."""
    height, width = size
    persons = []
    for i in np.flatnonzero(found.class_ids == COCO_PERSON):
        x0, y0, x1, y1 = np.clip(found.boxes[i], 0, [width, height, width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        person = PersonInstance(box=(float(x0), float(y0), float(x1), float(y1)), score=0.0)
        mx0, my0, mx1, my1 = person.mask_box()
        persons.append(
            PersonInstance(
                box=person.box,
                score=float(found.scores[i]),
                mask=np.ascontiguousarray(found.masks[my0:my1, mx0:mx1, i]),
            )
        )
    return persons


def require_weights(path: Path) -> None:
    """Raise a one-line UserError naming the download command if `path` is
    unusable. Cheap (no TensorFlow): the launcher can call it before it
    starts any worker."""
    entry = lookup(WEIGHTS_NAME, load_manifest())
    # A fine-tuned or re-hosted file is fine if it has the layers: skip size and hash.
    check = check_weights(path, entry, check_size=False, check_sha256=False)
    if check.ok:
        return
    fix = f"run `pipeline weights download {WEIGHTS_NAME} --weights-dir {path.parent}`"
    if not check.present:
        raise UserError(f"Mask R-CNN weights not found at {path}; {fix}")
    raise UserError(f"Mask R-CNN weights at {path} are unusable ({check.problem}); {fix}")


# The one model this process builds: (key, device, engine).
_PROCESS_MODEL: tuple[tuple, str, Any] | None = None


def _model_for(
    path: Path, infer_speed: str, min_confidence: float | None, batch: int
) -> tuple[str, Any]:
    """Build the model on first use; later segmenters in the process share it."""
    global _PROCESS_MODEL
    key = (path.resolve(), infer_speed, min_confidence, batch)
    if _PROCESS_MODEL is None:
        _PROCESS_MODEL = (key, *_build(path, infer_speed, min_confidence, batch))
    elif _PROCESS_MODEL[0] != key:
        raise RuntimeError(
            "one Mask R-CNN per process: PixelLib's config is global and each extra "
            f"model leaks memory; this process already built {_PROCESS_MODEL[0]}, asked for {key}"
        )
    return _PROCESS_MODEL[1], _PROCESS_MODEL[2]


def _build(
    path: Path, infer_speed: str, min_confidence: float | None, batch: int
) -> tuple[str, Any]:
    """Build PixelLib's COCO Mask R-CNN and load `path` into it. Returns (device, engine)."""
    try:
        import tensorflow as tf
        import tensorflow.keras.models as keras_models  # what PixelLib builds with
    except ImportError:
        raise UserError(
            "the maskrcnn segmenter needs TensorFlow and tf-keras: pip install "
            "'repcoach[maskrcnn]' and pixellib + tf-keras with --no-deps (see README, Dependencies)"
        ) from None
    if not keras_models.Model.__module__.startswith("tf_keras"):
        raise UserError(
            "the maskrcnn segmenter needs tf-keras, but TensorFlow was imported with Keras 3 "
            "before repcoach.stages.maskrcnn set TF_USE_LEGACY_KERAS=1: import this module "
            "first, or set TF_USE_LEGACY_KERAS=1 in the environment"
        )
    # Must run before the first GPU op; without it TF grabs all GPU memory.
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    try:
        from pixellib.instance import coco_config, instance_segmentation
        from pixellib.instance.mask_rcnn import MaskRCNN
    except ImportError as exc:
        raise UserError(
            f"the maskrcnn segmenter needs pixellib ({exc}): "
            "pip install --no-deps pixellib==0.7.1 tf-keras (see README, Dependencies)"
        ) from None

    preset = None if infer_speed == "full" else infer_speed
    engine = instance_segmentation(infer_speed=preset)  # sets coco_config's input size
    if min_confidence is not None:
        coco_config.DETECTION_MIN_CONFIDENCE = min_confidence
    # The inference graph is shaped for its batch (set before it is built).
    coco_config.IMAGES_PER_GPU = coco_config.BATCH_SIZE = batch
    engine.model = MaskRCNN(mode="inference", model_dir=str(path.parent), config=coco_config)
    try:
        # tf-keras' own HDF5 loader, in the session that predicts (not PixelLib's).
        engine.model.keras_model.load_weights(str(path), by_name=True)
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise UserError(
            f"Mask R-CNN weights at {path} do not fit the model ({message}); run "
            f"`pipeline weights download {WEIGHTS_NAME} --weights-dir {path.parent}`"
        ) from None
    return ("GPU" if gpus else "CPU"), engine

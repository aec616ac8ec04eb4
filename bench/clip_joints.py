"""Every frame's joints of a video or a synthetic clip, from the real embedded
vision, computed once and cached.

The coaching engine only needs joints, and the vision costs ~50-150 ms a
frame here, so `bench/coaching.py` and the coaching tests run the vision
(`BlazePoseSegmenter(landmarks=True)` + `JointsStage` tracking and smoothing,
as the default pipeline runs them; every frame, in order, pts = frame index /
fps) once per clip and keep the result in `$REPCOACH_COACH_CACHE` (default
/tmp/coach_cache), never in the repository. A cache entry is used only
while the clip file (size, mtime) and the vision code are unchanged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from repcoach.common.chunks import Chunker, continues
from repcoach.common.landmarks import Landmark as L
from repcoach.common.messages import (
    EndOfStream,
    FrameMeta,
    FramePacket,
    PersonInstance,
    PersonJoints,
)

REPO = Path(__file__).resolve().parents[1]
# Shoulders and hips: where a person is, steadier than any one joint.
TORSO = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP]
# The code whose output is cached: a change to any of them invalidates the cache.
_VISION_CODE = (
    "common/chunks.py",
    "stages/blazepose.py",
    "stages/pose_detector.py",
    "stages/pose_landmarks.py",
    "stages/joints.py",
    "stages/person_features.py",
    "stages/tracking.py",
    "common/filters.py",
)


def cache_dir() -> Path:
    return Path(os.environ.get("REPCOACH_COACH_CACHE", "/tmp/coach_cache"))


def _same_key(stored: str, wanted: str) -> bool:
    """Keys match; with REPCOACH_COACH_ANY_VISION=1 the vision fingerprint (the
    key's last field) is ignored, so coaching work can iterate on joints
    computed before a vision change."""
    if os.environ.get("REPCOACH_COACH_ANY_VISION") == "1":
        return stored.rsplit("|", 1)[0] == wanted.rsplit("|", 1)[0]
    return stored == wanted


def _vision_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in _VISION_CODE:
        path = REPO / name
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ClipJoints:
    """Joints of every person in every frame of one clip."""

    name: str
    fps: float
    width: int
    height: int
    frames: tuple[tuple[PersonJoints, ...], ...]  # one entry per frame, in order

    def packets(self) -> Iterator[FramePacket]:
        """The frames as the score stage receives them (no pixels)."""
        for index, joints in enumerate(self.frames):
            meta = FrameMeta(
                self.name,
                index,
                index - 1,
                0,
                0.0,
                index / self.fps,
                self.width,
                self.height,
                total=len(self.frames),
            )
            yield FramePacket(meta, joints=joints)

    def eos(self) -> EndOfStream:
        n = len(self.frames)
        return EndOfStream(self.name, n - 1, n, 0, "end of file")

    def main_track(self) -> int | None:
        """The track id seen in the most frames."""
        counts: dict[int, int] = {}
        for joints in self.frames:
            for j in joints:
                counts[j.track_id] = counts.get(j.track_id, 0) + 1
        return max(counts, key=counts.__getitem__) if counts else None

    def save(self, path: Path, key: str) -> None:
        index, track, xy, vis, world = [], [], [], [], []
        for i, joints in enumerate(self.frames):
            for j in joints:
                index.append(i)
                track.append(j.track_id)
                xy.append(j.image_xy)
                vis.append(j.visibility)
                world.append(j.world_xyz)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            key=np.array(key),
            meta=np.array([self.fps, self.width, self.height, len(self.frames)], dtype=np.float64),
            index=np.array(index, dtype=np.int32),
            track=np.array(track, dtype=np.int32),
            xy=np.array(xy, dtype=np.float32).reshape(-1, 33, 2),
            vis=np.array(vis, dtype=np.float32).reshape(-1, 33),
            world=np.array(world, dtype=np.float32).reshape(-1, 33, 3),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, name: str, key: str) -> ClipJoints | None:
        try:
            data = np.load(path)
        except (OSError, ValueError):
            return None
        if not _same_key(str(data["key"]), key):
            return None
        fps, width, height, n = data["meta"]
        frames: list[list[PersonJoints]] = [[] for _ in range(int(n))]
        for i, t, xy, vis, world in zip(
            data["index"], data["track"], data["xy"], data["vis"], data["world"], strict=True
        ):
            frames[int(i)].append(PersonJoints(int(t), xy, vis, world))
        return cls(name, float(fps), int(width), int(height), tuple(tuple(f) for f in frames))


def segment_in_chunks(
    name: str, fps: float, images: Iterable[np.ndarray]
) -> Iterator[tuple[FrameMeta, np.ndarray, tuple[PersonInstance, ...]]]:
    """The embedded segmenter (landmarks attached) on every frame, in order,
    as the pipeline's segment workers run a file: in chunks, so the result
    equals the pipeline's with any number of workers."""
    from repcoach.stages.blazepose import BlazePoseSegmenter

    segmenter = BlazePoseSegmenter(landmarks=True)
    chunker = Chunker()
    previous = None
    for index, image in enumerate(images):
        height, width = image.shape[:2]
        pts = index / fps
        meta = FrameMeta(
            name, index, index - 1, 0, 0.0, pts, width, height, chunk=chunker.chunk_of(pts)
        )
        persons = tuple(segmenter.segment(image, pts, continues(previous, meta)))
        previous = meta
        yield meta, image, persons


def run_vision(name: str, fps: float, images: Iterable[np.ndarray]) -> ClipJoints:
    """The embedded vision on every frame, in order, as the pipeline runs a
    file (`segment_in_chunks`, then tracking and smoothing)."""
    from repcoach.stages.joints import JointsStage

    stage = JointsStage(None)
    frames = []
    width = height = 0
    for meta, image, persons in segment_in_chunks(name, fps, images):
        width, height = meta.width, meta.height
        out = stage.process(FramePacket(meta, image, persons=persons))
        frames.append(out.joints)
    stage.end(EndOfStream(name, len(frames) - 1, len(frames), 0, "end of file"))
    return ClipJoints(name, fps, width, height, tuple(frames))


def _video_frames(path: Path) -> tuple[float, Iterator[np.ndarray]]:
    """The file's frames as the capture stage reads them (upright when the
    container stores a display rotation)."""
    from repcoach.stages.capture import VideoFileSource

    source = VideoFileSource(path)

    def frames() -> Iterator[np.ndarray]:
        try:
            while (frame := source.read()) is not None:
                yield frame
        finally:
            source.close()

    return source.fps, frames()


# Alters a clip before the vision sees it: (fps, frames) -> (fps, frames).
Transform = Callable[[float, Iterator[np.ndarray]], tuple[float, Iterator[np.ndarray]]]


def video_joints(
    path: Path, use_cache: bool = True, variant: str = "", transform: Transform | None = None
) -> ClipJoints:
    """Joints of every frame of a video file (cached); with `transform`, of
    the frames it makes (cached apart, under the name `variant`)."""
    if transform is not None and not variant:
        raise ValueError("a transformed clip needs a variant name (its cache is kept apart)")
    stat = path.stat()
    tag = f"{variant}|" if variant else ""
    key = f"video|{path.name}|{stat.st_size}|{stat.st_mtime_ns}|{tag}{_vision_fingerprint()}"
    cached = cache_dir() / (f"{path.stem}.{variant}.npz" if variant else f"{path.stem}.npz")
    if use_cache:
        hit = ClipJoints.load(cached, path.name, key) if cached.exists() else None
        if hit is not None:
            return hit
    fps, frames = _video_frames(path)
    if transform is not None:
        fps, frames = transform(fps, frames)
    clip = run_vision(path.name, fps, frames)
    clip.save(cached, key)
    return clip


def torso_centres(document: dict) -> list[list[list[float] | None]]:
    """Per person of a synthetic truth document, per frame: the middle of
    their shoulders and hips in the image, or None where they are not in the
    picture (fewer than two of those joints visible)."""
    centres: list[list[list[float] | None]] = [[] for _ in document["people"]]
    for frame in document["frames"]:
        seen = {p["person"]: p for p in frame["people"]}
        for index, track in enumerate(centres):
            person = seen.get(index)
            visible = [m for m in TORSO if person is not None and person["visible"][m]]
            if len(visible) < 2:
                track.append(None)
                continue
            xy = np.array([person["joints_xy"][m] for m in visible], dtype=np.float64)
            track.append([round(float(v), 1) for v in xy.mean(axis=0)])
    return centres


def synthetic_joints(spec: str, use_cache: bool = True) -> tuple[ClipJoints, dict]:
    """Joints of every frame of a rendered synthetic clip (cached), and its
    truth document without the per-frame part, plus `centres` (see
    `torso_centres`)."""
    import json

    from repcoach.stages.synthetic import SyntheticSource

    source = SyntheticSource.from_spec(spec)
    synth_code = hashlib.sha256()
    for path in sorted((REPO / "stages" / "synthetic").glob("*.py")):
        synth_code.update(path.read_bytes())
    key = f"synthetic|{spec}|{synth_code.hexdigest()[:16]}|{_vision_fingerprint()}"
    slug = hashlib.sha256(spec.encode()).hexdigest()[:12]
    cached = cache_dir() / f"synthetic_{slug}.npz"
    truth_path = cached.with_suffix(".json")
    if use_cache and cached.exists() and truth_path.exists():
        hit = ClipJoints.load(cached, spec, key)
        truth = json.loads(truth_path.read_text())
        if hit is not None and "centres" in truth:
            return hit, truth
    clip = run_vision(spec, source.fps, (image for image, _ in source.frames()))
    document = source.truth_document()
    truth = {k: v for k, v in document.items() if k != "frames"}
    truth["centres"] = torso_centres(document)
    clip.save(cached, key)
    truth_path.write_text(json.dumps(truth))
    return clip, truth

"""Distinct track ids per shared clip against the labelled number of people,
for the tracker as committed (git HEAD, "old") and the working tree's ("new").

    nice -n 5 .venv/bin/python bench/track_ids.py            # every shared clip
    nice -n 5 .venv/bin/python bench/track_ids.py pushup_square  # names containing it
    .venv/bin/python bench/track_ids.py --fresh              # re-run the segmenter

The real embedded vision (`BlazePoseSegmenter(landmarks=True)`, every frame,
in order, pts = index / fps, in the pipeline's chunks: the persons any
worker count gives) runs once per clip; its persons (box, score,
mask, landmarks) are kept in $REPCOACH_TRACK_CACHE (default
/tmp/track_cache, never the repository), so later runs replay them through
both trackers in seconds. The new tracker runs inside `JointsStage(None)` on
the decoded frames, as the pipeline runs it (appearance from the pixels
under each mask); the old one gets the same persons.

The target (issue 11): ids <= people + 1 per started minute of clip. A
`people` label that is a sentence (the mirror clip) counts as 1 person plus
a reflection: 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.clip_joints import _video_frames, segment_in_chunks  # noqa: E402
from bench.labels import ids_allowed  # noqa: E402
from repcoach.common.clips import clips_dir  # noqa: E402
from repcoach.common.messages import (  # noqa: E402
    EndOfStream,
    FrameMeta,
    FramePacket,
    PersonInstance,
    PersonJoints,
)
from repcoach.stages.joints import JointsStage  # noqa: E402
from repcoach.stages.tracking import Tracker  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    return Path(os.environ.get("REPCOACH_TRACK_CACHE", "/tmp/track_cache"))


def labelled_people(people: object) -> int:
    """The label's number of people; a sentence (the mirror clip) is one
    exerciser plus his reflection."""
    return people if isinstance(people, int) else 2


# --- the segmenter's output, cached per clip


def save_persons(path: Path, key: str, fps: float, frames: list[list[PersonInstance]]) -> None:
    rows, boxes, scores, has_lm, xy, vis, world, bits, bit_ends = [], [], [], [], [], [], [], [], []
    for index, persons in enumerate(frames):
        for p in persons:
            rows.append(index)
            boxes.append(p.box)
            scores.append(p.score)
            lm = p.landmarks
            has_lm.append(lm is not None)
            xy.append(lm.image_xy if lm is not None else np.zeros((33, 2)))
            vis.append(lm.visibility if lm is not None else np.zeros(33))
            world.append(lm.world_xyz if lm is not None else np.zeros((33, 3)))
            packed = np.packbits(p.mask) if p.mask is not None else np.zeros(0, np.uint8)
            bits.append(packed)
            bit_ends.append((bit_ends[-1] if bit_ends else 0) + len(packed))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        key=np.array(key),
        meta=np.array([fps, len(frames)]),
        rows=np.array(rows, np.int32),
        boxes=np.array(boxes, np.float64).reshape(-1, 4),
        scores=np.array(scores, np.float64),
        has_lm=np.array(has_lm, bool),
        xy=np.array(xy, np.float32).reshape(-1, 33, 2),
        vis=np.array(vis, np.float32).reshape(-1, 33),
        world=np.array(world, np.float32).reshape(-1, 33, 3),
        bits=np.concatenate(bits) if bits else np.zeros(0, np.uint8),
        bit_ends=np.array(bit_ends, np.int64),
    )
    tmp.replace(path)


def load_persons(path: Path, key: str) -> tuple[float, list[list[PersonInstance]]] | None:
    if not path.exists():
        return None
    data = np.load(path)
    if str(data["key"]) != key:
        return None
    fps, n = data["meta"]
    frames: list[list[PersonInstance]] = [[] for _ in range(int(n))]
    start = 0
    for i in range(len(data["rows"])):
        end = int(data["bit_ends"][i])
        box = tuple(float(v) for v in data["boxes"][i])
        probe = PersonInstance(box, 0.0)  # type: ignore[arg-type]
        mx0, my0, mx1, my1 = probe.mask_box()
        h, w = my1 - my0, mx1 - mx0
        mask = np.unpackbits(data["bits"][start:end], count=h * w).reshape(h, w).astype(bool)
        start = end
        landmarks = (
            PersonJoints(-1, data["xy"][i], data["vis"][i], data["world"][i])
            if data["has_lm"][i]
            else None
        )
        frames[int(data["rows"][i])].append(
            PersonInstance(box, float(data["scores"][i]), mask, landmarks=landmarks)  # type: ignore[arg-type]
        )
    return float(fps), frames


def segmented(path: Path, fresh: bool) -> tuple[float, list[list[PersonInstance]]]:
    """Every frame's persons from the real segmenter (cached)."""
    stat = path.stat()
    key = f"chunks|{path.name}|{stat.st_size}|{stat.st_mtime_ns}"
    cached = cache_dir() / f"{path.stem}.npz"
    hit = None if fresh else load_persons(cached, key)
    if hit is not None:
        return hit
    fps, images = _video_frames(path)
    frames = [list(persons) for _, _, persons in segment_in_chunks(path.name, fps, images)]
    save_persons(cached, key, fps, frames)
    return fps, frames


# --- the trackers


def old_tracker_class() -> type:
    """`Tracker` from stages/tracking.py as committed (git HEAD)."""
    source = subprocess.run(
        ["git", "show", "HEAD:stages/tracking.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    target = Path("/tmp") / f"old_tracking_{os.getpid()}.py"
    target.write_text(source)
    spec = importlib.util.spec_from_file_location("old_tracking", target)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["old_tracking"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    target.unlink()
    return module.Tracker


class _Timed:
    """The tracker, with the time spent in `update` summed."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.spent = 0.0

    def update(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.tracker.update(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - start

    def __getattr__(self, name: str):
        return getattr(self.tracker, name)


def replay(path: Path, fps: float, frames: list[list[PersonInstance]], old_cls: type) -> dict:
    """Both trackers over the clip: ids per tracker and per-frame cost of the new."""
    old = old_cls()
    timed = _Timed(Tracker())
    stage = JointsStage(None, timed)  # type: ignore[arg-type]
    old_ids: Counter[int] = Counter()
    new_ids: Counter[int] = Counter()
    person_frames = 0
    _, images = _video_frames(path)
    index = -1
    for index, (image, persons) in enumerate(zip(images, frames, strict=False)):
        pts = index / fps
        old_ids.update(p.track_id for p in old.update(list(persons), pts) if p.track_id >= 0)
        h, w = image.shape[:2]
        packet = FramePacket(
            FrameMeta(path.name, index, index - 1, 0, 0.0, pts, w, h), image, persons=tuple(persons)
        )
        out = stage.process(packet)
        person_frames += len(persons)
        new_ids.update(p.track_id for p in out.persons if p.track_id >= 0)
    spent = timed.spent
    stage.end(EndOfStream(path.name, index, index + 1, 0, "end of file"))
    return {
        "old": old_ids,
        "new": new_ids,
        "ms_per_person": 1000.0 * spent / max(person_frames, 1),
        "ms_per_frame": 1000.0 * spent / max(len(frames), 1),
        "frames": len(frames),
    }


def _ids_text(ids: Counter[int]) -> str:
    """'n (frames per id, most first)'."""
    counts = sorted(ids.values(), reverse=True)
    shown = ",".join(str(c) for c in counts[:6]) + (",..." if len(counts) > 6 else "")
    return f"{len(ids):>3} [{shown}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="only clips whose file name contains one")
    parser.add_argument("--fresh", action="store_true", help="re-run the segmenter")
    args = parser.parse_args()
    folder = clips_dir()
    labels = json.loads((folder / "labels.json").read_text())
    old_cls = old_tracker_class()
    print(f"{'clip':58} {'s':>5} {'people':>6} {'max':>4}  {'old ids':22} {'new ids':22} ms/pers")
    within_old = within_new = 0
    for label in labels:
        if args.names and not any(n in label["file"] for n in args.names):
            continue
        path = folder / label["file"]
        fps, frames = segmented(path, args.fresh)
        result = replay(path, fps, frames, old_cls)
        seconds = result["frames"] / fps
        people = labelled_people(label["people"])
        allowed = ids_allowed(people, seconds)
        within_old += len(result["old"]) <= allowed
        within_new += len(result["new"]) <= allowed
        print(
            f"{label['file'][:58]:58} {seconds:5.1f} {people:>6} {allowed:>4}  "
            f"{_ids_text(result['old']):22} {_ids_text(result['new']):22} "
            f"{result['ms_per_person']:.3f}",
            flush=True,
        )
    print(f"clips within the target: old {within_old}, new {within_new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What cutting files into chunks costs the joints (issue 11, determinism).

    .venv/bin/python bench/chunks.py                      # the default rendered clips
    .venv/bin/python bench/chunks.py squat,people=2,seed=0 # any synthetic specs

Each rendered clip goes through the BlazePose segmenter (landmarks in the
worker, as the default pipeline runs) and the joints stage twice in the same
run: as a live stream (each worker follows people across the frames it gets,
the detector at most every 0.15 s: the baseline, which is how files ran
before chunks) and as a file in chunks (`repcoach.common.chunks`: a fresh
start at every chunk's first frame). Printed per clip and mode: median
key-joint error against the rendered truth (share of body height), the share
of rendered people found, how often the detector ran, and process CPU per
frame.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from repcoach.common.chunks import Chunker, continues  # noqa: E402
from repcoach.common.landmarks import Landmark as L  # noqa: E402
from repcoach.common.messages import FrameMeta, FramePacket  # noqa: E402
from repcoach.stages.blazepose import BlazePoseSegmenter  # noqa: E402
from repcoach.stages.joints import JointsStage  # noqa: E402
from repcoach.stages.synthetic import SyntheticSource  # noqa: E402

CLIPS = (
    "squat,people=2,reps=1,seed=0",
    "lunge,reps=2,seed=5",
    "pushup,reps=2,view=side,seed=3",
    "jumping_jack,reps=2,view=front,seed=9",
    "bicep_curl,reps=2,view=front,seed=6",
)
KEY_JOINTS = [
    L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_ELBOW, L.RIGHT_ELBOW, L.LEFT_WRIST, L.RIGHT_WRIST,
    L.LEFT_HIP, L.RIGHT_HIP, L.LEFT_KNEE, L.RIGHT_KNEE, L.LEFT_ANKLE, L.RIGHT_ANKLE,
]  # fmt: skip
HIPS = [L.LEFT_HIP, L.RIGHT_HIP]


def measure(spec: str, chunked: bool) -> dict:
    source = SyntheticSource.from_spec(spec)
    segmenter, stage = BlazePoseSegmenter(landmarks=True), JointsStage(None)
    detect = segmenter.detector.detect
    runs = [0]

    def counted(frame, *picture):
        runs[0] += 1
        return detect(frame, *picture)

    segmenter.detector.detect = counted
    chunker, previous = Chunker(), None
    errors, found, rendered, frames = [], 0, 0, 0
    cpu = time.process_time()
    for index, (image, truth) in enumerate(source.frames()):
        pts = index / source.fps
        height, width = image.shape[:2]
        chunk = chunker.chunk_of(pts) if chunked else -1
        meta = FrameMeta(spec, index, index - 1, 0, 0.0, pts, width, height, chunk=chunk)
        persons = segmenter.segment(image, pts, continues(previous, meta))
        previous = meta
        out = stage.process(FramePacket(meta, image, persons=tuple(persons)))
        frames += 1
        rendered += len(truth.people)
        found += min(len(out.joints), len(truth.people))
        for joints in out.joints:
            hip_x = joints.image_xy[HIPS, 0].mean()
            person = min(truth.people, key=lambda t: abs(t.joints_xy[HIPS, 0].mean() - hip_x))
            seen = person.visible[KEY_JOINTS]
            miss = np.linalg.norm(
                joints.image_xy[KEY_JOINTS] - person.joints_xy[KEY_JOINTS], axis=1
            )
            errors.append(np.median(miss[seen]) / np.ptp(person.joints_xy[:, 1]))
    return {
        "error_pct": 100.0 * float(np.median(errors)) if errors else float("nan"),
        "found": found / max(rendered, 1),
        "detector": runs[0],
        "frames": frames,
        "cpu_ms": 1000.0 * (time.process_time() - cpu) / max(frames, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", default=list(CLIPS), help="synthetic source specs")
    args = parser.parse_args()
    print(
        f"{'clip':40s} {'mode':14s} {'error':>7s} {'found':>6s} {'detector':>9s} {'cpu/frame':>10s}"
    )
    for spec in args.specs:
        for label, chunked in (("live (before)", False), ("file chunks", True)):
            r = measure(spec, chunked)
            print(
                f"{spec:40s} {label:14s} {r['error_pct']:6.2f}% {r['found']:6.3f} "
                f"{r['detector']:4d}/{r['frames']:<4d} {r['cpu_ms']:7.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()

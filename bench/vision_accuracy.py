"""Person-found rate and per-frame cost of the embedded BlazePose vision.

For each shared clip (../shared/clips, or $REPCOACH_SHARED_CLIPS) it runs
the default pipeline's vision, `BlazePoseSegmenter(landmarks=True).segment`
(people, masks, landmarks) and then `JointsStage.process` (tracking,
smoothing), on every `--step`-th frame, resized to `--width`, and prints:

  found   share of frames with at least one person segmented
  multi   share with more than one (false alarms on these one-person clips)
  joints  share with landmarks for at least one person
  detect  the person detector alone (a separate pass), part of seg
  seg / joints / total   wall milliseconds per frame, mean/p95 (decoding and
          resizing excluded); seg includes the landmark model
  cpu     CPU milliseconds per frame of segment + joints, all threads, mean
          (less disturbed than wall time by other work on a shared machine)

Baseline, measured in the same run on the same frames: mediapipe's own
single-person `Pose` (complexity 1, video mode) on the whole frame.

    .venv/bin/python bench/vision_accuracy.py [--step 2] [--width 640] [--clips squat,lunge]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.clips import clips_dir
from repcoach.common.messages import EndOfStream, FrameMeta, FramePacket
from repcoach.stages.blazepose import BlazePoseSegmenter, import_pose_solution
from repcoach.stages.joints import JointsStage
from repcoach.stages.tracking import Tracker


def read_frames(path: Path, step: int, width: int, max_frames: int):
    """(pts, frame) for every `step`-th frame, resized to `width` (0: native)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    index = 0
    while len(frames) < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            if width and frame.shape[1] != width:
                height = round(frame.shape[0] * width / frame.shape[1])
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            frames.append((index / fps, frame))
        index += 1
    cap.release()
    return frames


def stats(ms: list[float]) -> str:
    if not ms:
        return "      -/-     "
    return f"{np.mean(ms):6.1f}/{np.percentile(ms, 95):6.1f}"


def run_clip(path, frames, segmenter, stage, pose_module) -> dict[str, list[float]]:
    ms: dict[str, list[float]] = {
        k: [] for k in ("detect", "seg", "joints", "total", "cpu", "base", "base_cpu")
    }
    found = multi = with_joints = base_found = 0
    height, width = frames[0][1].shape[:2]
    for seq, (pts, frame) in enumerate(frames):
        c0, t0 = time.process_time(), time.perf_counter()
        persons = segmenter.segment(frame, pts)
        t1 = time.perf_counter()
        meta = FrameMeta(path.name, seq, seq - 1, 0, 0.0, pts, width, height)
        out = stage.process(FramePacket(meta, frame, persons=tuple(persons)))
        t2, c2 = time.perf_counter(), time.process_time()
        ms["seg"].append((t1 - t0) * 1000)
        ms["joints"].append((t2 - t1) * 1000)
        ms["total"].append((t2 - t0) * 1000)
        ms["cpu"].append((c2 - c0) * 1000)
        found += bool(persons)
        multi += len(persons) > 1
        with_joints += bool(out.joints)
    stage.end(EndOfStream(path.name, len(frames) - 1, len(frames), 0, "end of file"))

    for _, frame in frames:
        t0 = time.perf_counter()
        segmenter.detector.detect(frame)
        ms["detect"].append((time.perf_counter() - t0) * 1000)

    if pose_module is not None:
        with pose_module.Pose(model_complexity=1, static_image_mode=False) as pose:
            for _, frame in frames:
                c0, t0 = time.process_time(), time.perf_counter()
                result = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                ms["base"].append((time.perf_counter() - t0) * 1000)
                ms["base_cpu"].append((time.process_time() - c0) * 1000)
                base_found += result.pose_landmarks is not None
    n = len(frames)
    rates = f"{found / n:6.1%} {multi / n:6.1%} {with_joints / n:6.1%}"
    print(row(path.name, n, rates, ms, f"{base_found / n:6.1%}" if ms["base"] else ""), flush=True)
    return ms


def row(name: str, n: int, rates: str, ms: dict[str, list[float]], base_found: str) -> str:
    times = " ".join(stats(ms[k]) for k in ("detect", "seg", "joints", "total"))
    base = "(skipped)"
    if ms["base"]:
        base = f"{base_found:>6s} {stats(ms['base'])} {np.mean(ms['base_cpu']):6.1f}"
    return f"{name[:36]:36s} {n:4d} {rates:20s} {times} {np.mean(ms['cpu']):6.1f} | {base}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", type=int, default=2, help="use every N-th frame")
    parser.add_argument("--width", type=int, default=640, help="resize frames (0: native)")
    parser.add_argument("--max-frames", type=int, default=400, help="per clip, after --step")
    parser.add_argument("--clips", default="", help="comma-separated name fragments")
    parser.add_argument("--no-baseline", action="store_true", help="skip mediapipe's own Pose")
    args = parser.parse_args()

    folder = clips_dir()
    paths = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    wanted = [w for w in args.clips.split(",") if w]
    paths = [p for p in paths if not wanted or any(w in p.name for w in wanted)]
    if not paths:
        print(f"no clips found in {folder} (set REPCOACH_SHARED_CLIPS)", file=sys.stderr)
        return 1

    segmenter = BlazePoseSegmenter(landmarks=True)
    stage = JointsStage(None, Tracker())
    pose_module = None if args.no_baseline else import_pose_solution()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"frames every {args.step}, width {args.width or 'native'}; times in ms mean/p95; "
        f"{os.cpu_count()} cores, load average {load} (other work inflates the times)"
    )
    print(
        f"{'clip':36s} {'n':>4s} {'found':>6s} {'multi':>6s} {'joints':>6s} "
        f"{'detect':>13s} {'seg':>13s} {'joints':>13s} {'total':>13s} {'cpu':>6s} | "
        f"baseline: {'found':>6s} {'ms':>13s} {'cpu':>6s}"
    )
    every: dict[str, list[float]] = {}
    for path in paths:
        frames = read_frames(path, args.step, args.width, args.max_frames)
        if not frames:
            print(f"{path.name}: no frames decoded", file=sys.stderr)
            continue
        for key, values in run_clip(path, frames, segmenter, stage, pose_module).items():
            every.setdefault(key, []).extend(values)
    if every:
        print(row("ALL", len(every["seg"]), "", every, "          "))
    return 0


if __name__ == "__main__":
    sys.exit(main())

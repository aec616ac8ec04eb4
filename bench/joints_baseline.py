"""How far the paper's Haar-cascade joints land from BlazePose's.

For every `--step`-th frame of each shared clip (../shared/clips, or
$REPCOACH_SHARED_CLIPS), resized to `--width`, it runs mediapipe's
single-person BlazePose (`Pose`, model complexity 1, still-image mode, with
segmentation), takes its segmentation mask (> 0.5) as the person, and runs
`HaarJoints` on that person. BlazePose's landmarks are the reference.

Per joint group it prints, over the reference joints BlazePose sees
(visibility > 0.5):

  placed   share Haar placed at all (visibility > 0)
  median   median distance to BlazePose, in torso lengths (shoulder
           midpoint to hip midpoint, from BlazePose)
  <0.5     share within half a torso length (a PCK@0.5-torso)

Left and right are scored side-agnostically (the better of the two
pairings per frame), since a mask cannot tell them apart. The same frames
are also scored with the mask geometry alone (the `mask only` columns), and
it prints how often each cascade fired and how often its box was plausible
enough to be used, and the per-frame cost of BlazePose and both methods.

    .venv/bin/python bench/joints_baseline.py [--step 10] [--width 640] [--clips squat,lunge]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from repcoach.common.clips import clips_dir
from repcoach.common.landmarks import Landmark
from repcoach.common.messages import PersonInstance
from repcoach.stages.blazepose import import_pose_solution
from repcoach.stages.haar import HaarJoints, body_axis, plausible

GROUPS = {
    "head (nose)": [(Landmark.NOSE,)],
    "shoulders": [(Landmark.LEFT_SHOULDER, Landmark.RIGHT_SHOULDER)],
    "elbows": [(Landmark.LEFT_ELBOW, Landmark.RIGHT_ELBOW)],
    "wrists": [(Landmark.LEFT_WRIST, Landmark.RIGHT_WRIST)],
    "hips": [(Landmark.LEFT_HIP, Landmark.RIGHT_HIP)],
    "knees": [(Landmark.LEFT_KNEE, Landmark.RIGHT_KNEE)],
    "ankles": [(Landmark.LEFT_ANKLE, Landmark.RIGHT_ANKLE)],
}
SEEN = 0.5


def read_frames(path: Path, step: int, width: int):
    cap = cv2.VideoCapture(str(path))
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index % step == 0:
            height = round(frame.shape[0] * width / frame.shape[1])
            yield cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        index += 1
    cap.release()


def person_from_mask(mask: np.ndarray) -> PersonInstance | None:
    ys, xs = np.nonzero(mask)
    if xs.size < 64:
        return None
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return PersonInstance((float(x0), float(y0), float(x1), float(y1)), 1.0, mask[y0:y1, x0:x1])


def pair_errors(ref, ref_vis, est, est_vis, joints) -> list[tuple[bool, float | None]]:
    """(placed, error px) per reference-visible joint, left/right-agnostic."""
    if len(joints) == 1:
        (j,) = joints
        if ref_vis[j] <= SEEN:
            return []
        return (
            [(True, float(np.linalg.norm(est[j] - ref[j])))] if est_vis[j] > 0 else [(False, None)]
        )
    a, b = joints
    seen = [j for j in joints if ref_vis[j] > SEEN]
    if not seen:
        return []
    if est_vis[a] <= 0 or est_vis[b] <= 0:
        return [(False, None)] * len(seen)
    straight = {a: est[a], b: est[b]}
    swapped = {a: est[b], b: est[a]}
    cost = [sum(np.linalg.norm(option[j] - ref[j]) for j in seen) for option in (straight, swapped)]
    best = (straight, swapped)[int(np.argmin(cost))]
    return [(True, float(np.linalg.norm(best[j] - ref[j]))) for j in seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=10, help="use every N-th frame")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--clips", default="", help="comma-separated name fragments")
    args = parser.parse_args()

    folder = clips_dir()
    clips = sorted(folder.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if any(part in c.name for part in args.clips.split(","))]
    if not clips:
        raise SystemExit(f"no clips in {folder} (set REPCOACH_SHARED_CLIPS)")

    pose_module = import_pose_solution()
    methods = {"haar": HaarJoints(), "mask only": HaarJoints(use_cascades=False)}
    results = {name: defaultdict(list) for name in methods}  # group -> [(placed, err/torso)]
    cost = defaultdict(list)
    hits = defaultdict(int)  # frames where a cascade fired
    used = defaultdict(int)  # ... and its box passed the plausibility check
    frames_used = 0
    with pose_module.Pose(
        static_image_mode=True, model_complexity=1, enable_segmentation=True
    ) as pose:
        for clip in clips:
            for frame in read_frames(clip, args.step, args.width):
                height, width = frame.shape[:2]
                start = time.perf_counter()
                out = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                cost["blazepose"].append(time.perf_counter() - start)
                if out.pose_landmarks is None or out.segmentation_mask is None:
                    continue
                marks = out.pose_landmarks.landmark
                ref = np.array([(m.x * width, m.y * height) for m in marks])
                ref_vis = np.array([m.visibility for m in marks])
                torso = np.linalg.norm(
                    (ref[Landmark.LEFT_SHOULDER] + ref[Landmark.RIGHT_SHOULDER]) / 2
                    - (ref[Landmark.LEFT_HIP] + ref[Landmark.RIGHT_HIP]) / 2
                )
                person = person_from_mask(out.segmentation_mask > 0.5)
                if person is None or torso < 10:
                    continue
                frames_used += 1
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                found = methods["haar"].find_parts(gray, person.box)
                mask = person.full_mask(width, height)
                kept = plausible(found, mask, body_axis(mask))
                for part in ("face", "upper", "lower", "full"):
                    hits[part] += getattr(found, part) is not None
                    used[part] += getattr(kept, part) is not None
                for name, method in methods.items():
                    start = time.perf_counter()
                    [joints] = method.estimate(frame, [person], 0.0)
                    cost[name].append(time.perf_counter() - start)
                    for group, pairs in GROUPS.items():
                        for joints_of_pair in pairs:
                            for placed, err in pair_errors(
                                ref, ref_vis, joints.image_xy, joints.visibility, joints_of_pair
                            ):
                                results[name][group].append(
                                    (placed, None if err is None else err / torso)
                                )

    print(f"clips: {len(clips)}, frames with a BlazePose person: {frames_used}")
    print(f"(every {args.step}th frame at width {args.width}; errors in torso lengths)\n")
    header = f"{'joint group':<13} {'n':>5} | " + " | ".join(
        f"{name + ' placed':>13} {'median':>7} {'<0.5':>6}" for name in methods
    )
    print(header)
    print("-" * len(header))
    for group in GROUPS:
        rows = [results[name][group] for name in methods]
        cells = []
        for row in rows:
            errors = [e for placed, e in row if placed]
            placed = len(errors) / len(row) if row else float("nan")
            median = float(np.median(errors)) if errors else float("nan")
            within = float(np.mean(np.array(errors) < 0.5)) if errors else float("nan")
            cells.append(f"{placed:>13.0%} {median:>7.2f} {within:>6.0%}")
        print(f"{group:<13} {len(rows[0]):>5} | " + " | ".join(cells))
    print()
    frames = max(frames_used, 1)
    print(
        "cascade hit rate (fired / used): "
        + ", ".join(
            f"{part} {hits[part] / frames:.0%} / {used[part] / frames:.0%}" for part in hits
        )
    )
    print(
        "ms per frame (mean / p95): "
        + ", ".join(
            f"{name} {1000 * np.mean(v):.1f} / {1000 * np.percentile(v, 95):.1f}"
            for name, v in cost.items()
        )
    )


if __name__ == "__main__":
    main()

"""The baseline rep counter of `bench/coaching.py`: one angle on the more
visible side, two fixed thresholds per exercise, counted on the way back."""

from __future__ import annotations

from bench.clip_joints import ClipJoints
from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import Landmark

# exercise -> (angle joints without side, rest-side threshold, turn-side threshold)
PLAIN: dict[str, tuple[tuple[str, str, str], float, float]] = {
    "squat": (("HIP", "KNEE", "ANKLE"), 165, 100),
    "lunge": (("HIP", "KNEE", "ANKLE"), 160, 110),
    "pushup": (("SHOULDER", "ELBOW", "WRIST"), 150, 100),
    "bicep_curl": (("SHOULDER", "ELBOW", "WRIST"), 140, 70),
    "shoulder_press": (("SHOULDER", "ELBOW", "WRIST"), 110, 150),
    "lateral_raise": (("HIP", "SHOULDER", "ELBOW"), 30, 70),
    "jumping_jack": (("HIP", "SHOULDER", "ELBOW"), 40, 110),
}


def plain_count(clip: ClipJoints, exercise: str) -> int | None:
    """Reps of the main track: counted when the angle, having passed the
    turn-side threshold, comes back past the rest-side one. None for an
    exercise the baseline has no angle for."""
    if exercise not in PLAIN:
        return None
    names, rest, turn = PLAIN[exercise]
    rising = turn > rest
    main = clip.main_track()
    reps, at_turn = 0, False
    for joints in clip.frames:
        for j in joints:
            if j.track_id != main:
                continue
            best = None
            for side in ("LEFT", "RIGHT"):
                marks = [Landmark[f"{side}_{n}"] for n in names]
                vis = float(j.visibility[marks].mean())
                if best is None or vis > best[0]:
                    best = (vis, joint_angle(*(j.image_xy[m] for m in marks)))
            angle = best[1]
            if (angle > turn) if rising else (angle < turn):
                at_turn = True
            elif at_turn and ((angle < rest) if rising else (angle > rest)):
                reps, at_turn = reps + 1, False
    return reps

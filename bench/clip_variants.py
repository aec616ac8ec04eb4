"""Do the counts hold when a clip is filmed differently? Every labelled clip
is altered the ways an unseen camera alters footage, and counted again.

    .venv/bin/python bench/clip_variants.py                  # ../shared/clips, every variant
    .venv/bin/python bench/clip_variants.py DIR --variants mirrored,half_fps --only squat

Variants: mirrored left to right, half the frame rate (every other frame),
half the resolution, the camera rolled 8 degrees, reps 1.5 times as fast
(every third frame dropped, the frame rate kept), a darker room (gamma 2.2
at 60% brightness), and the person further away (the picture shrunk to half
in a grey frame of the same size). Each variant's frames go through the real
embedded vision in-process, as the pipeline runs a file (in chunks, so with
any worker count the pipeline gives the same joints), cached per clip and
variant by `bench/clip_joints.py`; then `Coach` with the labelled exercise
and with auto, as `bench/coaching.py` does for the synthetic athletes.

Baselines in the same run: the unaltered clip (a variant should count what
the original counts; a change names a mechanism that depends on how the
clip was filmed), and the plain counter (`bench/plain_counter.py`) on every
variant's joints. Per variant it prints the clips counted exactly with the
exercise given, in auto (the exercise named too) and by the plain counter,
and every clip whose count differs from the original's. The first run
computes the joints: about 1 minute per clip and variant on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.clip_joints import ClipJoints, Transform, video_joints  # noqa: E402
from bench.coaching_synthetic import auto_clip, coach_clip  # noqa: E402
from bench.labels import ClipLabel, load_labels  # noqa: E402
from bench.plain_counter import plain_count  # noqa: E402
from repcoach.common.clips import clips_dir  # noqa: E402
from repcoach.common.errors import UserError  # noqa: E402

Frames = Iterator[np.ndarray]
ROLL_DEG = 8.0
DARK = (np.linspace(0.0, 1.0, 256) ** 2.2 * 255 * 0.6).astype(np.uint8)
FAR_SCALE = 0.5
GREY = 114


def _each(change: Callable[[np.ndarray], np.ndarray]) -> Transform:
    """A transform that changes every frame alike."""
    return lambda fps, frames: (fps, (change(f) for f in frames))


def _rolled(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), ROLL_DEG, 1.0)
    return cv2.warpAffine(frame, turn, (w, h))


def _halved(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _further(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    small = cv2.resize(
        frame, (round(w * FAR_SCALE), round(h * FAR_SCALE)), interpolation=cv2.INTER_AREA
    )
    out = np.full_like(frame, GREY)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def _half_fps(fps: float, frames: Frames) -> tuple[float, Frames]:
    return fps / 2, (f for i, f in enumerate(frames) if i % 2 == 0)


def _faster(fps: float, frames: Frames) -> tuple[float, Frames]:
    return fps, (f for i, f in enumerate(frames) if i % 3 != 2)


VARIANTS: dict[str, Transform] = {
    "mirrored": _each(lambda f: cv2.flip(f, 1)),
    "half_fps": _half_fps,
    "half_size": _each(_halved),
    "rolled": _each(_rolled),
    "faster": _faster,
    "darker": _each(lambda f: cv2.LUT(f, DARK)),
    "further": _each(_further),
}
ORIGINAL = "original"


@dataclass(frozen=True)
class Counted:
    given: str  # "reps+partial p" with the labelled exercise, "-" without one
    auto: str  # "exercise reps+partial p"
    plain: int | None
    exact_given: bool
    exact_auto: bool
    exact_plain: bool


def count(label: ClipLabel, clip: ClipJoints) -> Counted:
    exercise = label.exercise
    given = coach_clip(clip, exercise) if exercise else None
    named, reps, partial = auto_clip(clip)
    plain = plain_count(clip, exercise) if exercise else None
    return Counted(
        given=f"{given.reps}+{given.partial}p" if given else "-",
        auto=f"{named} {reps}+{partial}p",
        plain=plain,
        exact_given=given is not None
        and (given.reps, given.partial) == (label.reps, label.partial_reps),
        exact_auto=named == exercise and (reps, partial) == (label.reps, label.partial_reps),
        exact_plain=plain is not None and plain == label.reps,
    )


# The transforms' code and parameters: cached joints of a variant changed since are stale.
_VARIANTS_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]


def joints(folder: Path, label: ClipLabel, variant: str) -> ClipJoints:
    path = folder / label.file
    if variant == ORIGINAL:
        return video_joints(path)
    tag = f"{variant}-{_VARIANTS_DIGEST}"
    return video_joints(path, variant=tag, transform=VARIANTS[variant])


def run(folder: Path, labels: list[ClipLabel], variants: list[str]) -> dict:
    counted: dict[str, dict[str, Counted]] = {v: {} for v in [ORIGINAL, *variants]}
    for label in labels:
        for variant in counted:
            counted[variant][label.file] = count(label, joints(folder, label, variant))
        original = counted[ORIGINAL][label.file]
        changed = [
            f"{v} {c.given} / {c.auto}"
            for v, c in ((v, clips[label.file]) for v, clips in counted.items())
            if (c.given, c.auto) != (original.given, original.auto)
        ]
        truth = f"{label.reps}+{label.partial_reps}p"
        print(
            f"{label.file[:44]:44} {truth:6} {original.given:6} / {original.auto:18}"
            f" {'; '.join(changed) or 'the same in every variant'}",
            flush=True,
        )
    return counted


def totals(counted: dict[str, dict[str, Counted]]) -> dict[str, dict[str, int]]:
    original = counted[ORIGINAL]
    out = {}
    for variant, clips in counted.items():
        out[variant] = {
            "clips": len(clips),
            "exact_given": sum(c.exact_given for c in clips.values()),
            "exact_auto": sum(c.exact_auto for c in clips.values()),
            "exact_plain": sum(c.exact_plain for c in clips.values()),
            "plain_clips": sum(c.plain is not None for c in clips.values()),
            "as_original": sum(
                (c.given, c.auto) == (original[f].given, original[f].auto) for f, c in clips.items()
            ),
        }
    return out


def print_totals(summed: dict[str, dict[str, int]]) -> None:
    print(f"\n{'variant':10} {'given':>7} {'auto':>7} {'plain':>7} {'as original':>12}")
    for variant, t in summed.items():
        n = t["clips"]
        print(
            f"{variant:10} {t['exact_given']:>3}/{n:<3} {t['exact_auto']:>3}/{n:<3}"
            f" {t['exact_plain']:>3}/{t['plain_clips']:<3} {t['as_original']:>8}/{n}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, metavar="DIR", help="clips + labels.json")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--only", default="", help="comma-separated clip name fragments")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        parser.error(f"--variants: choose from {', '.join(VARIANTS)} (got {unknown or 'none'})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    figures: dict = {}
    for folder in args.folders or [clips_dir()]:
        if not (folder / "labels.json").exists():
            print(f"no labels.json in {folder}: skipped")
            continue
        labels = [
            lab for lab in load_labels(folder) if not wanted or any(w in lab.file for w in wanted)
        ]
        print(f"Labelled clips: {folder} ({len(labels)}); truth, original given / auto, changes")
        counted = run(folder, labels, args.variants)
        summed = totals(counted)
        print_totals(summed)
        figures[str(folder)] = {
            "totals": summed,
            "clips": {v: {f: asdict(c) for f, c in cs.items()} for v, cs in counted.items()},
        }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

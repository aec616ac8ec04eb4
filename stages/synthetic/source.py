"""`SyntheticSource`: rendered athletes with exact ground truth, as a video source."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from repcoach.common.landmarks import Landmark
from repcoach.stages.synthetic.body import BodyShape, pose_vector
from repcoach.stages.synthetic.camera import Camera, Lens, layout, view_axes
from repcoach.stages.synthetic.drawing import AthleteRenderer, Part
from repcoach.stages.synthetic.exercises import EXERCISES, Exercise
from repcoach.stages.synthetic.faults import FAULTS
from repcoach.stages.synthetic.kinematics import Kinematics, Point, Skeleton
from repcoach.stages.synthetic.options import SyntheticConfig, parse_spec
from repcoach.stages.synthetic.palette import Palette
from repcoach.stages.synthetic.scenery import background, draw_shadow
from repcoach.stages.synthetic.timeline import TAIL_S, Rep, Schedule
from repcoach.stages.synthetic.truth import (
    ANGLE_NAMES,
    FrameTruth,
    PersonTruth,
    angles,
    landmarks_3d,
    visibility,
)

TRUTH_FORMAT = "repcoach-synthetic-truth/1"
_MARGIN_M = 0.17  # room around the joints for head, limb widths and shoes


@dataclass(frozen=True)
class Athlete:
    """Everything fixed about one athlete for the whole clip."""

    index: int
    exercise: Exercise
    view: str
    body: BodyShape
    reps: tuple[Rep, ...]
    skeletons: tuple[Skeleton, ...]  # one per frame
    rep_of_frame: np.ndarray  # (frames,) int, 0 = none


class SyntheticSource:
    """Frames of cartoon athletes exercising, each with its exact truth.

    Build it with `from_spec("squat,reps=5,view=side,seed=3")`; see
    `repcoach.stages.synthetic.options` for every option."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.fps = float(config.fps)
        self.width = config.width
        self.height = config.height
        seeds = np.random.SeedSequence(config.seed).spawn(len(config.exercises) + 1)
        rngs = [np.random.default_rng(s) for s in seeds]
        schedules, bodies, palettes = [], [], []
        for i, name in enumerate(config.exercises):
            rng = rngs[i + 1]
            bodies.append(BodyShape.sample(rng))
            palettes.append(Palette.sample(rng))
            schedules.append(
                Schedule.plan(EXERCISES[name], config.reps, self.fps, config.faults, rng)
            )
        moving = [s.duration for s in schedules if not s.exercise.is_hold]
        seconds = max(moving) + TAIL_S if moving else config.hold_seconds
        self.total_frames = max(2, math.ceil(seconds * self.fps))
        self.athletes: list[Athlete] = []
        for i, (schedule, body) in enumerate(zip(schedules, bodies, strict=True)):
            kin = Kinematics(body, schedule.exercise.rig)
            kin.set_pins(pose_vector(schedule.exercise.top))
            poses, rep_of_frame = schedule.poses(self.total_frames, self.fps)
            self.athletes.append(
                Athlete(
                    index=i,
                    exercise=schedule.exercise,
                    view=config.views[i],
                    body=body,
                    reps=schedule.reps(self.fps),
                    skeletons=tuple(kin.solve(pose) for pose in poses),
                    rep_of_frame=rep_of_frame,
                )
            )
        self.cameras = self._layout()
        self._renderers = [
            AthleteRenderer(a.index, a.body, palettes[a.index], self.cameras[a.index])
            for a in self.athletes
        ]
        # Athletes further back (smaller) are painted first.
        self._paint_order = sorted(range(len(self.athletes)), key=lambda i: self.cameras[i].scale)
        feet = [
            c.project(np.zeros((1, 3)))[0][0, 1] for c in self.cameras
        ]  # where each athlete's floor origin lands
        horizon = min(feet) - 0.07 * self.height
        self._background = background(self.width, self.height, horizon, rngs[0])
        self._document: dict | None = None

    @classmethod
    def from_spec(cls, text: str) -> SyntheticSource:
        return cls(parse_spec(text))

    def _layout(self) -> list[Camera]:
        extents, lenses = [], []
        for athlete in self.athletes:
            angle = athlete.exercise.views[athlete.view]
            every = max(1, round(self.fps / 15))
            points = np.concatenate([s.points for s in athlete.skeletons[::every]])
            low, high = points.min(axis=0), points.max(axis=0)
            target = (low + high) * 0.5
            lens = Lens(view_axes(athlete.view, angle), target, angle.distance)
            plane, _ = lens.plane(points)
            margin = _MARGIN_M * athlete.body.size
            extents.append(
                (
                    float(plane[:, 0].min()) - margin,
                    float(plane[:, 0].max()) + margin,
                    float(plane[:, 1].min()) - 0.04,
                    float(plane[:, 1].max()) + margin,
                )
            )
            lenses.append(lens)
        return layout(extents, lenses, self.width, self.height)

    def frames(self) -> Iterator[tuple[np.ndarray, FrameTruth]]:
        """Every frame (uint8 BGR, C-contiguous, a new array each time) with its truth."""
        labels = np.zeros((self.height, self.width), dtype=np.uint8)
        for index in range(self.total_frames):
            image = self._background.copy()
            labels.fill(0)
            for i in self._paint_order:
                draw_shadow(image, self.cameras[i], self.athletes[i].skeletons[index])
            for i in self._paint_order:
                self._renderers[i].draw(image, labels, self.athletes[i].skeletons[index])
            people = tuple(self._truth(a, index, labels) for a in self.athletes)
            yield image, FrameTruth(index, people)

    def _truth(self, athlete: Athlete, index: int, labels: np.ndarray) -> PersonTruth:
        skeleton = athlete.skeletons[index]
        camera = self.cameras[athlete.index]
        xy, near = camera.project(landmarks_3d(skeleton, athlete.body))
        _, body_near = camera.project(skeleton.points[[Point.HEAD, Point.PELVIS, Point.NECK]])
        central = {
            Part.HEAD: float(body_near[0]),
            Part.NECK: float(body_near[2]),
            Part.SHIRT: float(body_near[1] + body_near[2]) * 0.5,
            Part.SHORTS: float(body_near[1]),
        }
        visible, hidden_by = visibility(xy, near, labels, athlete.index, central)
        return PersonTruth(
            person=athlete.index,
            exercise=athlete.exercise.name,
            view=athlete.view,
            joints_xy=xy,
            visible=visible,
            hidden_by=hidden_by,
            angles=angles(xy),
            rep=int(athlete.rep_of_frame[index]),
        )

    def truth_document(self) -> dict:
        """Everything known about the clip, JSON-serialisable (renders it once)."""
        if self._document is None:
            self._document = {
                "format": TRUTH_FORMAT,
                "spec": self.config.text,
                "fps": self.fps,
                "width": self.width,
                "height": self.height,
                "total_frames": self.total_frames,
                "seed": self.config.seed,
                "landmarks": [lm.name.lower() for lm in Landmark],
                "angles": {
                    name: "joint_angle on the 2D truth (degrees, [0, 180])" for name in ANGLE_NAMES
                },
                "people": [self._athlete_json(a) for a in self.athletes],
                "frames": [truth.to_json() for _, truth in self.frames()],
            }
        return self._document

    def _athlete_json(self, athlete: Athlete) -> dict:
        faults: dict[str, list[int]] = {}
        for rep in athlete.reps:
            for name in rep.faults:
                faults.setdefault(name, []).append(rep.index)
        hold = athlete.exercise.is_hold
        return {
            "person": athlete.index,
            "exercise": athlete.exercise.name,
            "view": athlete.view,
            "hold": hold,
            "reps_requested": 0 if hold else self.config.reps,
            "reps": [
                {
                    "index": r.index,
                    "start_frame": r.start_frame,
                    "bottom_frame": r.bottom_frame,
                    "end_frame": r.end_frame,
                    "depth": round(r.depth, 3),
                    "faults": list(r.faults),
                }
                for r in athlete.reps
            ],
            "faults": faults,
            "hold_faults": [
                p.fault.name
                for p in self.config.faults
                if hold and athlete.exercise.name in p.fault.exercises
            ],
            "fault_descriptions": {name: FAULTS[name].description for name in faults},
        }

"""`SyntheticSource`: rendered athletes with exact ground truth, as a video source."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from repcoach.common.landmarks import Landmark
from repcoach.stages.synthetic.body import BodyShape, pose_vector
from repcoach.stages.synthetic.camera import (
    Camera,
    Lens,
    alternating_depths,
    feet_row,
    layout,
    view_axes,
)
from repcoach.stages.synthetic.drawing import AthleteRenderer, Part
from repcoach.stages.synthetic.exercises import EXERCISES, CameraAngle, Exercise
from repcoach.stages.synthetic.extras import Bystander, Walk
from repcoach.stages.synthetic.faults import FAULTS
from repcoach.stages.synthetic.kinematics import Kinematics, Point, Rig, Skeleton
from repcoach.stages.synthetic.options import SyntheticConfig, parse_spec
from repcoach.stages.synthetic.palette import Palette
from repcoach.stages.synthetic.scenery import background, draw_mirror, draw_shadow
from repcoach.stages.synthetic.timeline import TAIL_S, Rep, Rest, Schedule
from repcoach.stages.synthetic.truth import (
    ANGLE_NAMES,
    MIRROR_SWAP,
    ROLES,
    FrameTruth,
    PersonTruth,
    angles,
    landmarks_3d,
    visibility,
)

TRUTH_FORMAT = "repcoach-synthetic-truth/2"
_MARGIN_M = 0.17  # room around the joints for head, limb widths and shoes
# Scale of each kind of figure relative to the nearest athlete: smaller is
# further back (feet higher in the frame, painted first).
BYSTANDER_DEPTH = 0.88
SPOTTER_DEPTH = 0.9  # of the athlete they stand behind
SPOTTER_OFFSET_M = 0.3  # a spotter stands this far to one side of the athlete's middle
WALKER_DEPTH = 0.8
MIRROR_DEPTH = 0.78
MIRROR_DIM = 0.8  # a reflection is darker than the person
_WALK_MARGIN_S = 0.2  # the walker sets off this long after the clip starts at the earliest


@dataclass(frozen=True)
class Person:
    """Everything fixed about one rendered person for the whole clip.

    `role`: athlete, bystander, walker or mirror (a mirror twin of athlete
    `about["mirror_of"]`); only athletes exercise and have an exercise, reps
    and rests. `about` holds the role's own truth (stance, walking direction)."""

    index: int
    role: str
    view: str
    body: BodyShape
    palette: Palette
    skeletons: tuple[Skeleton, ...]  # one per frame
    exercise: Exercise | None = None
    reps: tuple[Rep, ...] = ()
    rests: tuple[Rest, ...] = ()
    rep_of_frame: np.ndarray | None = None  # (frames,) int, 0 = none
    about: Mapping[str, object] = field(default_factory=dict)

    @property
    def exercising(self) -> bool:
        return self.role == "athlete"


Athlete = Person  # the name earlier code used for the people who exercise


@dataclass(frozen=True)
class _Crossing:
    """A walker's camera and their walk across the frame."""

    camera: Camera
    start_s: float  # sets off (whole body still out of the frame)
    duration: float  # seconds until the whole body is out at the other edge
    half_path: float  # metres from the path's middle to either end
    speed: float  # metres per second

    def frames(self, fps: float) -> int:
        """Frames the clip needs to show the whole crossing."""
        return math.ceil((self.start_s + self.duration + _WALK_MARGIN_S) * fps)


def _solve(body: BodyShape, poses: np.ndarray, rig: Rig | None = None) -> tuple[Skeleton, ...]:
    kin = Kinematics(body, rig or Rig())
    return tuple(kin.solve(pose) for pose in poses)


CARD_S = 1.5  # how long an athlete holds up a check-in code (`checkin=`)


class SyntheticSource:
    """Frames of cartoon athletes exercising, each with its exact truth.

    Build it with `from_spec("squat,reps=5,view=side,seed=3")`; see
    `repcoach.stages.synthetic.options` for every option."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.fps = float(config.fps)
        self.width = config.width
        self.height = config.height
        athletes = len(config.exercises)
        # Children of one SeedSequence do not depend on how many are spawned:
        # adding extras leaves the athletes and the room as they were.
        seeds = np.random.SeedSequence(config.seed).spawn(athletes + 1 + len(config.extras))
        rngs = [np.random.default_rng(s) for s in seeds]
        self._schedules, self._looks = [], []
        for i, name in enumerate(config.exercises):
            rng = rngs[i + 1]
            self._looks.append((BodyShape.sample(rng), Palette.sample(rng)))
            self._schedules.append(
                Schedule.plan(
                    EXERCISES[name], config.reps, self.fps, config.faults, rng, config.rest
                )
            )
        self._extras = []
        for j, role in enumerate(config.extras):
            rng = rngs[athletes + 1 + j]
            look = (BodyShape.sample(rng), Palette.sample(rng))
            how = Walk.sample(rng) if role == "walker" else Bystander.sample(rng)
            self._extras.append((role, look, how))
        moving = [s.duration for s in self._schedules if not s.exercise.is_hold]
        seconds = max(moving) + TAIL_S if moving else config.hold_seconds
        frames = max(2, math.ceil(seconds * self.fps))
        people = self._standing(frames)
        cameras, scale = self._layout(people)
        crossings = {
            i: self._crossing(people[i], scale, frames)
            for i, (role, _, _) in enumerate(self._extras, start=athletes)
            if role == "walker"
        }
        # A walker may need longer than the athletes: everyone else stands on.
        self.total_frames = max([frames] + [c.frames(self.fps) for c in crossings.values()])
        if self.total_frames > frames:
            people = self._standing(self.total_frames)
        for i, crossing in crossings.items():
            people[i] = self._walker(people[i], crossing)
            cameras[i] = crossing.camera
        self.people: list[Person] = people
        self.athletes: list[Person] = [p for p in people if p.exercising]
        self.cameras: list[Camera] = cameras
        self._renderers = [
            AthleteRenderer(p.index, p.body, p.palette, cameras[p.index]) for p in people
        ]
        # People further back (smaller) are painted first.
        self._paint_order = sorted(range(len(people)), key=lambda i: cameras[i].scale)
        feet = [c.project(np.zeros((1, 3)))[0][0, 1] for c in cameras]
        horizon = min(feet) - 0.07 * self.height
        self._background = background(self.width, self.height, horizon, rngs[0])
        for p in people:
            if p.role == "mirror":
                draw_mirror(self._background, self._pane(p))
        self._document: dict | None = None
        self._card = self._check_in_card()

    @classmethod
    def from_spec(cls, text: str) -> SyntheticSource:
        return cls(parse_spec(text))

    # --- who is in the clip ---------------------------------------------------------

    def _standing(self, frames: int) -> list[Person]:
        """Everyone over `frames` frames; walkers still without a path (see `_walker`)."""
        people: list[Person] = []
        for i, schedule in enumerate(self._schedules):
            body, palette = self._looks[i]
            kin = Kinematics(body, schedule.exercise.rig)
            kin.set_pins(pose_vector(schedule.exercise.top))
            poses, rep_of_frame = schedule.poses(frames, self.fps)
            people.append(
                Person(
                    index=i,
                    role="athlete",
                    view=self.config.views[i],
                    body=body,
                    palette=palette,
                    skeletons=tuple(kin.solve(pose) for pose in poses),
                    exercise=schedule.exercise,
                    reps=schedule.reps(self.fps),
                    rests=schedule.rests(self.fps),
                    rep_of_frame=rep_of_frame,
                )
            )
        for role, (body, palette), how in self._extras:
            if isinstance(how, Bystander):
                skeletons = _solve(body, how.poses(frames, self.fps))
                about: dict[str, object] = {"stance": how.stance}
                view = "front"
            else:  # a walker: one gait cycle for the layout, placed later
                skeletons, about, view = (), {}, "side"
            people.append(Person(len(people), role, view, body, palette, skeletons, about=about))
        if self.config.mirror_of is not None:
            twin = people[self.config.mirror_of]
            people.append(
                Person(
                    index=len(people),
                    role="mirror",
                    view=twin.view,
                    body=twin.body,
                    palette=twin.palette.dimmed(MIRROR_DIM),
                    skeletons=twin.skeletons,  # in sync, frame for frame
                    about={"mirror_of": twin.index},
                )
            )
        return people

    def _angle(self, person: Person) -> CameraAngle:
        if person.exercise is not None:
            angle = person.exercise.views[person.view]
        else:
            angle = self._extras[person.index - len(self._schedules)][2].angle
        return self._from_above(angle)

    def _from_above(self, angle: CameraAngle) -> CameraAngle:
        """`angle` looking down from `elevation=` when the spec sets it (one
        camera up on a wall films everyone from the same height)."""
        if self.config.elevation is None:
            return angle
        return replace(angle, elevation=self.config.elevation)

    def _lens(
        self, person: Person, people: list[Person]
    ) -> tuple[Lens, tuple[float, float, float, float]]:
        """The camera angle on a person and their extent in its plane (metres)."""
        if person.role == "mirror":
            lens, extent = self._lens(people[int(person.about["mirror_of"])], people)
            return lens.mirrored(), (-extent[1], -extent[0], extent[2], extent[3])
        return self._extent(person.skeletons, person, self._angle(person))

    def _extent(
        self, skeletons: tuple[Skeleton, ...], person: Person, angle: CameraAngle
    ) -> tuple[Lens, tuple[float, float, float, float]]:
        every = max(1, round(self.fps / 15))
        points = np.concatenate([s.points for s in skeletons[::every]])
        low, high = points.min(axis=0), points.max(axis=0)
        lens = Lens(view_axes(person.view, angle), (low + high) * 0.5, angle.distance)
        plane, _ = lens.plane(points)
        margin = _MARGIN_M * person.body.size
        extent = (
            float(plane[:, 0].min()) - margin,
            float(plane[:, 0].max()) + margin,
            float(plane[:, 1].min()) - 0.04,
            float(plane[:, 1].max()) + margin,
        )
        return lens, extent

    def _layout(self, people: list[Person]) -> tuple[list[Camera | None], float]:
        """Athletes side by side, each mirror twin right of its athlete, then
        the bystanders; walkers get their cameras from `_walk_camera`."""
        count = len(self._schedules)
        slots: list[int] = []
        for i in range(count):
            slots.append(i)
            slots += [p.index for p in people if p.about.get("mirror_of") == i]
        slots += [p.index for p in people if p.role == "bystander"]
        athlete_depths = alternating_depths(count)
        depth = {"bystander": BYSTANDER_DEPTH, "mirror": MIRROR_DEPTH}
        depths = [
            athlete_depths[i] if people[i].exercising else depth[people[i].role] for i in slots
        ]
        measured = [self._lens(people[i], people) for i in slots]
        placed, scale = layout(
            [extent for _, extent in measured],
            [lens for lens, _ in measured],
            self.width,
            self.height,
            depths,
        )
        cameras: list[Camera | None] = [None] * len(people)
        for i, camera in zip(slots, placed, strict=True):
            cameras[i] = camera
        for spotter in (p for p in people if p.role == "spotter"):
            cameras[spotter.index] = self._behind(spotter, people, cameras[0], scale)
        return cameras, scale

    def _behind(
        self, spotter: Person, people: list[Person], athlete: Camera, scale: float
    ) -> Camera:
        """A spotter's camera: just behind the first athlete (smaller, feet a
        little higher), off their middle towards the frame's roomier side, so
        the athlete hides part of them."""
        lens, (_, _, up_min, _) = self._lens(spotter, people)
        depth = athlete.scale / scale * SPOTTER_DEPTH
        s = scale * depth
        side = 1.0 if athlete.origin[0] < self.width / 2 else -1.0
        x = athlete.origin[0] + side * SPOTTER_OFFSET_M * s
        return Camera(lens, s, (x, self.height * feet_row(depth) + up_min * s))

    # --- the walker ----------------------------------------------------------------

    def _gait(self, person: Person, times: np.ndarray) -> tuple[Skeleton, ...]:
        """The walker's skeletons at `times` (seconds since setting off), the
        pelvis at world X = 0 (its path moves them later)."""
        walk = self._walk(person)
        skeletons = _solve(person.body, walk.poses(times, person.body.leg_length))
        for skeleton in skeletons:
            skeleton.points[:, 0] -= skeleton.points[Point.PELVIS, 0]
        return skeletons

    def _walk(self, person: Person) -> Walk:
        walk = self._extras[person.index - len(self._schedules)][2]
        assert isinstance(walk, Walk)
        return walk

    def _crossing(self, person: Person, scale: float, frames: int) -> _Crossing:
        """Where the walker is filmed from (further back than the athletes,
        centred on the path's middle) and when they cross, starting and ending
        with the whole body out of the frame."""
        walk = self._walk(person)
        cycle = np.arange(0.0, 1.2, 1.0 / self.fps)  # a gait cycle lasts about a second
        lens, (right_min, right_max, up_min, _) = self._extent(
            self._gait(person, cycle), person, self._from_above(walk.angle)
        )
        s = scale * WALKER_DEPTH
        origin = (self.width * 0.5, self.height * feet_row(WALKER_DEPTH) + up_min * s)
        half_path = self.width * 0.5 / s + max(-right_min, right_max)
        speed = walk.speed * person.body.size
        duration = 2 * half_path / speed
        slack = max(frames / self.fps - duration - 2 * _WALK_MARGIN_S, 0.0)
        start_s = _WALK_MARGIN_S + walk.start * slack
        return _Crossing(Camera(lens, s, origin), start_s, duration, half_path, speed)

    def _walker(self, person: Person, crossing: _Crossing) -> Person:
        """The walker on their path: in at one edge, out at the other. The
        path runs along the body's forward axis (X), which the camera shows
        as image right or left; its middle is the camera's target."""
        times = np.arange(self.total_frames) / self.fps - crossing.start_s
        skeletons = self._gait(person, times)
        x0 = crossing.camera.lens.target[0] - crossing.half_path
        for skeleton, t in zip(skeletons, times, strict=True):
            skeleton.points[:, 0] += x0 + crossing.speed * t
        return Person(
            person.index,
            person.role,
            person.view,
            person.body,
            person.palette,
            skeletons,
            about={
                "direction": "left_to_right" if self._walk(person).rightwards else "right_to_left",
                "speed_m_s": round(crossing.speed, 3),
                "start_frame": math.floor(crossing.start_s * self.fps),
                "end_frame": min(
                    math.ceil((crossing.start_s + crossing.duration) * self.fps),
                    self.total_frames - 1,
                ),
            },
        )

    def _pane(self, twin: Person) -> tuple[float, float, float, float]:
        """The mirror around a twin: their whole clip, with room to spare."""
        camera = self.cameras[twin.index]
        every = max(1, round(self.fps / 15))
        xy = np.concatenate([camera.project(s.points)[0] for s in twin.skeletons[::every]])
        room = 0.25 * camera.scale
        (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
        return (x0 - room, y0 - room, x1 + room, y1 + 0.5 * room)

    # --- frames and truth -------------------------------------------------------------

    def frames(self) -> Iterator[tuple[np.ndarray, FrameTruth]]:
        """Every frame (uint8 BGR, C-contiguous, a new array each time) with its truth."""
        labels = np.zeros((self.height, self.width), dtype=np.uint8)
        for index in range(self.total_frames):
            image = self._background.copy()
            labels.fill(0)
            shown = [i for i in self._paint_order if self._in_view(i, index)]
            for i in shown:
                if self.people[i].role != "mirror":  # the floor in a mirror is not drawn
                    draw_shadow(image, self.cameras[i], self.people[i].skeletons[index])
            for i in shown:
                self._renderers[i].draw(image, labels, self.people[i].skeletons[index])
            if self._card is not None and index < round(CARD_S * self.fps):
                self._draw_card(image, index)
            people = tuple(self._truth(p, index, labels) for p in self.people)
            yield image, FrameTruth(index, people)

    def _check_in_card(self) -> np.ndarray | None:
        """The check-in code an athlete holds up (`checkin=`), as an image."""
        if self.config.checkin is None:
            return None
        from repcoach.common.member_codes import MemberCodes, qr_image

        text = MemberCodes(create=True).code_for(self.config.checkin[0])
        return qr_image(text, module_px=max(2, round(self.height / 160)))

    def _draw_card(self, image: np.ndarray, index: int) -> None:
        """The card beside the athlete's chest, on the side with more room."""
        assert self._card is not None and self.config.checkin is not None
        athlete = self.people[self.config.checkin[1]]
        camera = self.cameras[athlete.index]
        xy, _ = camera.project(athlete.skeletons[index].points)
        size = self._card.shape[0]
        (neck_x, neck_y), (_, pelvis_y) = xy[Point.NECK], xy[Point.PELVIS]
        gap = size // 2 + 0.2 * abs(pelvis_y - neck_y)
        left, right = xy[:, 0].min(), xy[:, 0].max()
        x = right + gap if neck_x < self.width / 2 else left - gap
        y = (neck_y + pelvis_y) / 2
        x0 = int(np.clip(x - size / 2, 0, self.width - size))
        y0 = int(np.clip(y - size / 2, 0, self.height - size))
        image[y0 : y0 + size, x0 : x0 + size] = self._card[..., None]

    def _in_view(self, i: int, index: int) -> bool:
        """Whether any of person `i` can show in frame `index` (walkers leave it)."""
        if self.people[i].role != "walker":
            return True
        camera = self.cameras[i]
        xy, _ = camera.project(self.people[i].skeletons[index].points)
        room = 0.3 * camera.scale
        return bool(xy[:, 0].max() > -room and xy[:, 0].min() < self.width + room)

    def _truth(self, person: Person, index: int, labels: np.ndarray) -> PersonTruth:
        skeleton = person.skeletons[index]
        camera = self.cameras[person.index]
        xy, near = camera.project(landmarks_3d(skeleton, person.body))
        _, body_near = camera.project(skeleton.points[[Point.HEAD, Point.PELVIS, Point.NECK]])
        central = {
            Part.HEAD: float(body_near[0]),
            Part.NECK: float(body_near[2]),
            Part.SHIRT: float(body_near[1] + body_near[2]) * 0.5,
            Part.SHORTS: float(body_near[1]),
        }
        visible, hidden_by = visibility(xy, near, labels, person.index, central)
        if person.role == "mirror":
            # In the mirror the athlete's right hand is the twin's left, as a
            # pose model sees it.
            xy, visible, hidden_by = xy[MIRROR_SWAP], visible[MIRROR_SWAP], hidden_by[MIRROR_SWAP]
        return PersonTruth(
            person=person.index,
            exercise=person.exercise.name if person.exercise else None,
            view=person.view,
            joints_xy=xy,
            visible=visible,
            hidden_by=hidden_by,
            angles=angles(xy),
            rep=int(person.rep_of_frame[index]) if person.rep_of_frame is not None else 0,
            role=person.role,
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
                "roles": dict(ROLES),
                "people": [self._person_json(p) for p in self.people],
                "frames": [truth.to_json() for _, truth in self.frames()],
            }
        return self._document

    def _person_json(self, person: Person) -> dict:
        if not person.exercising:
            return {
                "person": person.index,
                "role": person.role,
                "exercising": False,
                "exercise": None,
                "view": person.view,
                "hold": False,
                "reps_requested": 0,
                "rep_count": 0,
                "reps": [],
                "rests": [],
                "faults": {},
                "hold_faults": [],
                "fault_descriptions": {},
                **person.about,
            }
        return {
            "person": person.index,
            "role": person.role,
            "exercising": True,
            **self._athlete_json(person),
        }

    def _athlete_json(self, athlete: Person) -> dict:
        faults: dict[str, list[int]] = {}
        for rep in athlete.reps:
            for name in rep.faults:
                faults.setdefault(name, []).append(rep.index)
        assert athlete.exercise is not None
        hold = athlete.exercise.is_hold
        return {
            "exercise": athlete.exercise.name,
            "view": athlete.view,
            "hold": hold,
            "reps_requested": 0 if hold else self.config.reps,
            "rep_count": len(athlete.reps),
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
            "rests": [
                {"after_rep": r.after_rep, "start_frame": r.start_frame, "end_frame": r.end_frame}
                for r in athlete.rests
            ],
            "faults": faults,
            "hold_faults": [
                p.fault.name
                for p in self.config.faults
                if hold and athlete.exercise.name in p.fault.exercises
            ],
            "fault_descriptions": {name: FAULTS[name].description for name in faults},
        }

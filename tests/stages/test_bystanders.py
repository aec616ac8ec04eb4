"""People who are present but not training, mirror reflections, and auto
mode that says when it does not know yet.

Stick figures from test_coaching (exact joints); each case is a mechanism:
the body staying in place, repetition in rhythm, joints in the picture, a
mirror image moving in perfect sync.
"""

from __future__ import annotations

import math

import numpy as np

from repcoach.common.landmarks import Landmark
from repcoach.common.messages import FrameMeta, FramePacket, PersonJoints
from repcoach.stages.coaching import Coach
from repcoach.stages.coaching.recognize import Recognizer
from tests.stages.test_coaching import (
    FPS,
    front_pose,
    rep_wave,
    reps_of,
    run,
    side_pose,
    squat_frames,
    to_joints,
)


def moved(frames: list[PersonJoints], dx: float = 0.0, dy: float = 0.0, track=None):
    shift = np.array([dx, dy], dtype=np.float32)
    return [
        PersonJoints(track or j.track_id, j.image_xy + shift, j.visibility, j.world_xyz)
        for j in frames
    ]


def run_people(
    coach: Coach, tracks: list[list[PersonJoints]], width=640, height=480
) -> tuple[list, list[dict[int, str]]]:
    """Several people per frame (lists of equal length): the events, and
    each frame's phase per track."""
    events, phases = [], []
    for i, people in enumerate(zip(*tracks, strict=True)):
        meta = FrameMeta("test", i, i - 1, 0, 0.0, i / FPS, width, height)
        out = coach.process(FramePacket(meta, joints=tuple(people)))
        events.extend(out.events)
        phases.append({s.track_id: s.phase for s in out.scores})
    return events, phases


def standing(seconds: float) -> list[PersonJoints]:
    return [to_joints(side_pose()) for _ in range(round(seconds * FPS))]


def test_a_person_standing_still_gets_nothing():
    coach = Coach("squat")
    events = run(coach, standing(6.0))
    assert [e.kind for e in events] == ["person_enter"]
    score = coach.people()[0]
    assert (score.exercise, score.phase, score.reps, score.partial_reps) == ("", "idle", 0, 0)
    assert coach.rep_log() == {1: []}


def test_one_bend_is_not_training():
    """A bystander bends down once (to pick something up): one squat-like
    movement, no repetition."""
    coach = Coach("squat")
    events = run(coach, standing(1.0) + squat_frames([1.0]) + standing(10.0))
    assert reps_of(events) == [] and not [e for e in events if e.kind == "cue"]
    assert coach.people()[0].phase == "idle"


def test_starting_to_train_keeps_the_first_rep():
    coach = Coach("squat")
    events = run(coach, standing(3.0) + squat_frames([1.0, 1.0, 1.0]))
    reps = [e for e in events if e.kind == "rep"]
    assert [r.data["rep"] for r in reps] == [1, 2, 3]
    assert reps[0].seq == reps[1].seq  # rep 1 is published when rep 2 confirms it
    assert reps[0].data["end_frame"] < reps[1].data["start_frame"]  # with its own frames
    assert reps[2].seq > reps[1].seq  # then each rep as it ends
    assert coach.people()[0].reps == 3 and coach.people()[0].exercise == "squat"


def test_a_rest_between_sets_keeps_the_athlete():
    coach = Coach("squat")
    events = run(coach, squat_frames([1.0, 1.0]) + standing(30.0) + squat_frames([1.0]))
    assert [r["rep"] for r in reps_of(events)] == [1, 2, 3]
    assert coach.people()[0].reps == 3


def test_a_walker_is_not_counted():
    """Knees bend and straighten in rhythm, but the hips travel across the
    frame, 1.8 torso lengths a second (a wide frame keeps every joint in the
    picture)."""
    frames = squat_frames([1.0, 1.0, 1.0, 1.0])
    walking = [
        PersonJoints(1, j.image_xy + np.float32([i * 10.0, 0.0]), j.visibility, j.world_xyz)
        for i, j in enumerate(frames)
    ]
    coach = Coach("squat")
    events, _ = run_people(coach, [walking], width=4000)
    assert reps_of(events) == [] and coach.people()[0].phase == "idle"
    in_place, _ = run_people(Coach("squat"), [frames], width=4000)
    assert len(reps_of(in_place)) == 4


def test_a_rep_measured_across_a_track_jump_neither_counts_nor_breaks_the_set():
    """Mid-way through rep 2 the track's joints jump 290 px aside and stay
    there to its end (the tracker gave the id to someone emerging from
    behind while the athlete went unseen): that rep is no evidence of this
    person, so it is not counted, but it does not cost them the set either."""
    reps = [squat_frames([1.0]) for _ in range(3)]
    half = len(reps[1]) // 2
    reps[1] = reps[1][:half] + moved(reps[1][half:], dx=-290.0)
    coach = Coach("squat")
    events = run(coach, [frame for rep in reps for frame in rep])
    counted = reps_of(events)
    assert [r["rep"] for r in counted] == [1, 2]
    assert [r["start_frame"] // len(reps[0]) for r in counted] == [0, 2]  # reps 1 and 3
    assert coach.people()[0].reps == 2


def test_a_quick_glitch_before_the_set_is_not_released_with_it():
    """The landmark model's guess at a blurred title card bends the knee
    once in a fraction of a second, then the set starts: the glitch is held
    like any first rep, but it is out of rhythm with the set (reps five
    times as long), so the set's first rep is rep 1."""

    def squatting(wave: np.ndarray) -> list[PersonJoints]:
        return [to_joints(side_pose(shin=30 * d, thigh=-90 * d, torso=35 * d)) for d in wave]

    glitch = squatting(rep_wave(1, seconds_per_rep=0.5, rest_s=0.2))
    coach = Coach("squat")
    counted = reps_of(run(coach, glitch + squatting(rep_wave(3, seconds_per_rep=2.5))))
    assert [r["rep"] for r in counted] == [1, 2, 3]
    assert counted[0]["start_frame"] >= len(glitch)
    assert coach.people()[0].reps == 3


def test_joints_outside_the_picture_are_no_evidence():
    """A person in the foreground whose hips lie below the frame edge:
    BlazePose guesses them, and reps of guessed joints establish nothing."""
    cut = moved(squat_frames([1.0, 1.0, 1.0]), dy=250.0)
    assert reps_of(run(Coach("squat"), cut)) == []


def _mirror_image(frames: list[PersonJoints], track: int, lag: int = 0) -> list[PersonJoints]:
    """The reflection: x mirrored about a line right of the person, left and
    right landmarks exchanged (BlazePose labels the figure it sees), smaller."""
    swap = list(range(len(Landmark)))
    for mark in Landmark:
        if mark.name.startswith("LEFT_"):
            other = Landmark[mark.name.replace("LEFT_", "RIGHT_")]
            swap[mark], swap[other] = other, mark
    out = []
    for i in range(len(frames)):
        j = frames[max(i - lag, 0)]
        xy = j.image_xy.copy()
        xy[:, 0] = 600.0 - (xy[:, 0] - 300.0) * 0.6
        xy[:, 1] = 200.0 + (xy[:, 1] - 200.0) * 0.6
        out.append(PersonJoints(track, xy[swap], j.visibility[swap], j.world_xyz[swap]))
    return out


def _curls(reps: int) -> list[PersonJoints]:
    return [
        to_joints(front_pose(arm_abduction=10 + 8 * p, elbow_bend=140 * p)) for p in rep_wave(reps)
    ]


def test_a_mirror_reflection_is_not_a_second_athlete():
    athlete = _curls(4)
    coach = Coach("bicep_curl")
    events, phases = run_people(coach, [athlete, _mirror_image(athlete, 2)])
    assert [(s.track_id, s.reps) for s in coach.people()] == [(1, 4), (2, 0)]
    assert {e.track_id for e in events if e.kind != "person_enter"} == {1}
    assert phases[-1][2] == "reflection"
    moving = [p[2] for p in phases[round(2 * FPS) :]]  # once the window holds movement
    assert moving.count("reflection") > 0.8 * len(moving)


def test_people_moving_together_are_all_counted():
    """A class in unison: the same exercise, but a real person lags a few
    frames behind another and is not their mirror image in perfect sync."""
    a = moved(_curls(4), dx=-120.0)
    b = moved(a, dx=240.0, track=2)
    b = b[:6] + b[:-6]  # 0.2 s behind
    coach = Coach("bicep_curl")
    _, phases = run_people(coach, [a, b])
    assert all("reflection" not in p.values() for p in phases)
    assert [(s.track_id, s.reps) for s in coach.people()] == [(1, 4), (2, 4)]


def test_auto_says_it_is_recognising_and_never_guesses_a_still_person():
    coach = Coach("auto")
    events = run(coach, standing(6.0))
    assert not [e for e in events if e.kind == "exercise"]
    score = coach.people()[0]
    assert (score.exercise, score.phase) == (None, "idle")
    coach = Coach("auto")
    run(coach, squat_frames([1.0]))
    assert (coach.people()[0].exercise, coach.people()[0].phase) == (None, "recognising")


def test_a_guessed_far_hip_does_not_make_a_squat_a_lunge():
    """Side-on, the far hip is hidden: BlazePose places it anyway, here
    flexing far less than the near one (a 'split' that is not there)."""
    recognizer = Recognizer(("squat", "lunge"))
    answer = None
    for i, phase in enumerate(np.concatenate([rep_wave(1)] * 4)):
        pose = side_pose(shin=30 * phase, thigh=-90 * phase, torso=35 * phase, far_visibility=0.6)
        far_knee = pose["right_hip"][0] + np.array([0.0, -0.45])  # straight down: no flexion
        pose["right_knee"] = (far_knee, 0.6)
        answer = recognizer.update(to_joints(pose), i / FPS) or answer
    assert answer == "squat"


def _raise_answers(arms: str) -> set:
    """What auto makes of arms rising to shoulder height: "both", "one" (the
    other hangs) or "one, other unseen"."""
    recognizer = Recognizer(("shoulder_press", "lateral_raise", "bicep_curl", "pec_deck_fly"))
    answers = set()
    for i, phase in enumerate(np.concatenate([rep_wave(1)] * 4)):
        raised = front_pose(arm_abduction=10 + 75 * phase)
        pose = dict(raised) if arms == "both" else front_pose(arm_abduction=10)
        for joint in ("shoulder", "elbow", "wrist"):
            pose[f"left_{joint}"] = raised[f"left_{joint}"]
            if arms == "one, other unseen":
                pose[f"right_{joint}"] = (pose[f"right_{joint}"][0], 0.1)
        answers.add(recognizer.update(to_joints(pose), i / FPS))
    return answers - {None}


def test_one_arm_sweeping_is_not_a_raise_or_a_press():
    """A coach beside a pec deck sweeps one arm through the fly while the
    athlete trains: a raise or a press lifts both arms, and whoever lifts one
    (the other hanging, or hidden from the camera) is not given either."""
    assert _raise_answers("both") == {"lateral_raise"}
    assert _raise_answers("one") == set()
    assert _raise_answers("one, other unseen") == set()


def test_a_rear_view_press_is_not_a_push_up():
    """Upright on screen, but the world coordinates' depth tilts the torso
    70 degrees (as BlazePose did for a shoulder press seen from behind)."""
    recognizer = Recognizer(("pushup", "shoulder_press", "lateral_raise"))
    lean = math.radians(70)
    answer = None
    for i, phase in enumerate(np.concatenate([rep_wave(1)] * 4)):
        joints = to_joints(front_pose(arm_abduction=100 + 70 * phase, elbow_bend=-80 * (1 - phase)))
        world = np.zeros((len(Landmark), 3))
        for side, x in ((Landmark.LEFT_SHOULDER, 0.2), (Landmark.RIGHT_SHOULDER, -0.2)):
            world[side] = (x, -0.5 * math.cos(lean), -0.5 * math.sin(lean))
        world[Landmark.LEFT_HIP], world[Landmark.RIGHT_HIP] = (0.1, 0, 0), (-0.1, 0, 0)
        joints = PersonJoints(1, joints.image_xy, joints.visibility, world)
        answer = recognizer.update(joints, i / FPS) or answer
    assert answer != "pushup"


def test_a_knee_bending_under_still_hips_is_not_a_squat():
    """Someone standing right behind a push-up: BlazePose drew their legs
    along the athlete's arm, and that 'knee' bent with every push-up while
    their hips stayed put. Squats lower the hips; this gets nothing."""
    still = side_pose()
    knee_only, squats = [], []
    for phase in rep_wave(4):
        pose = side_pose(shin=45 * phase, thigh=-90 * phase)
        squats.append(to_joints(pose))
        for name in ("hip", "shoulder", "elbow", "wrist"):
            for side in ("left", "right"):
                pose[f"{side}_{name}"] = still[f"{side}_{name}"]
        pose["head"] = still["head"]
        knee_only.append(to_joints(pose))
    for exercise in ("squat", "auto"):
        events = run(Coach(exercise), knee_only)
        assert [e.kind for e in events] == ["person_enter"], exercise
        assert len(reps_of(run(Coach(exercise), squats))) == 4, exercise


def test_hips_that_dropped_before_the_measure_left_rest_are_a_squat():
    """A front squat seen from a camera up on a wall: the knees travel
    towards the camera, so hip-above-knee holds at standing while the hips
    go most of the way down, then falls within the last of the descent. The
    hips went down during the rep, only before the measure said it started:
    still a squat, every rep counted."""
    poses = []
    for phase in rep_wave(4):
        pose = front_pose(hip_drop=0.45 * phase)
        # hip-above-knee: 1.1 (standing) until 85% of the way down, 0.3 at the bottom
        ratio = 1.1 - 0.8 * max(phase - 0.85, 0.0) / 0.15
        for side in ("left", "right"):
            hip, _ = pose[f"{side}_hip"]
            ankle, _ = pose[f"{side}_ankle"]
            shin = (hip[1] - ankle[1]) / (1.0 + ratio)
            pose[f"{side}_knee"] = (np.array([ankle[0], ankle[1] + shin]), 1.0)
        poses.append(to_joints(pose))
    assert len(reps_of(run(Coach("squat"), poses))) == 4

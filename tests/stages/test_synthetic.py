"""Synthetic athletes: spec parsing, exact truth, faults, several people, and
what the real BlazePose model makes of the rendered frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.geometry import joint_angle
from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.common.landmarks import Landmark as L
from repcoach.stages.synthetic import SyntheticSource
from repcoach.stages.synthetic.exercises import EXERCISES
from repcoach.stages.synthetic.truth import ANGLE_NAMES, ANGLES


def _render(spec: str):
    source = SyntheticSource.from_spec(spec)
    return source, list(source.frames())


def _at_bottoms(spec: str):
    """Truth of athlete 0 at the turning point of each of its reps."""
    source, frames = _render(spec)
    return source, [frames[rep.bottom_frame][1].people[0] for rep in source.athletes[0].reps]


# --- the spec ----------------------------------------------------------------


def test_defaults():
    source = SyntheticSource.from_spec("squat")
    assert (source.fps, source.width, source.height) == (30.0, 640, 480)
    assert isinstance(source.total_frames, int) and source.total_frames > 60
    assert [a.view for a in source.athletes] == ["side"]
    assert SyntheticSource.from_spec("jumping_jack").athletes[0].view == "front"


def test_options_shape_the_frames():
    source = SyntheticSource.from_spec("bicep_curl,reps=1,fps=15,size=320x240,seed=9,view=front")
    frame, truth = next(iter(source.frames()))
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.flags["C_CONTIGUOUS"]
    assert source.fps == 15.0 and truth.frame_index == 0
    assert source.athletes[0].view == "front"


def test_a_back_view_shows_the_back():
    """Filmed from behind: the face is hidden and the person's left side is
    on the image's left, the mirror image of the front view."""
    seen = {}
    for view in ("front", "back"):
        _, truth = next(iter(SyntheticSource.from_spec(f"squat,reps=1,view={view}").frames()))
        person = truth.people[0]
        left_first = person.joints_xy[L.LEFT_SHOULDER, 0] < person.joints_xy[L.RIGHT_SHOULDER, 0]
        seen[view] = (bool(person.visible[L.NOSE]), bool(left_first))
    assert seen == {"front": (True, False), "back": (False, True)}
    with pytest.raises(UserError, match="does not suit bicep_curl; its views: side, front$"):
        SyntheticSource.from_spec("bicep_curl,view=back")


def test_a_camera_up_high_looks_down_on_everyone():
    """From a wall camera the toes, nearer to it than the heels, land well
    below them in the image; at eye level nearly level (body heights). A
    bystander is filmed from the same height."""
    drops = {}
    for elevation in ("4", "40"):
        spec = f"squat,reps=1,view=front,extra=bystander,elevation={elevation}"
        _, truth = next(iter(SyntheticSource.from_spec(spec).frames()))
        for person in truth.people:
            xy = person.joints_xy
            toes_below_heels = xy[L.LEFT_FOOT_INDEX, 1] - xy[L.LEFT_HEEL, 1]
            height = xy[:, 1].max() - xy[:, 1].min()
            drops[elevation, person.role] = toes_below_heels / height
    for role in ("athlete", "bystander"):
        assert 0.0 < drops["4", role] < 0.04
        assert drops["40", role] > 3 * drops["4", role]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dance", r"unknown exercise 'dance'; valid: squat, pushup, lunge"),
        ("", r"must start with an exercise"),
        ("reps=3", r"must start with an exercise"),
        ("squat,bogus=1", r"unknown option\(s\) \['bogus'\]; valid:"),
        ("squat,reps", r"'reps' is not key=value"),
        ("squat,reps=0", r"reps=0 is outside \[1, 50\]"),
        ("squat,reps=two", r"reps='two' is not a whole number"),
        ("squat,view=top", r"view='top' is not one of side, front"),
        ("jumping_jack,view=side", r"view=side does not suit jumping_jack; its views: front"),
        ("squat,fault=nope", r"unknown fault 'nope'; valid: shallow_depth, knees_caving"),
        ("squat,fault=hip_sag", r"fault 'hip_sag' applies to pushup, plank, not to squat"),
        ("squat,fault=torso_lean@x", r"is not NAME, NAME@N or NAME@N-M"),
        ("squat,fault=torso_lean@3-2", r"N-M needs N <= M"),
        ("squat,reps=3,fault=torso_lean@2-5", r"goes past reps=3"),
        ("plank,fault=hip_sag@1", r"a hold has no reps"),
        ("squat,size=640", r"size='640' is not WIDTHxHEIGHT"),
        ("squat,size=10x10", r"outside 64x64"),
        ("squat,fps=0", r"fps=0 is outside \[5, 120\]"),
        ("squat,seed=-1", r"seed='-1' is not a whole number"),
        ("squat,people=4", r"people=4 is outside \[1, 3\]"),
        ("squat+pushup,people=1", r"people=1 but 2 exercises were named"),
        ("squat+dance", r"unknown exercise 'dance'"),
        ("squat,elevation=75", r"elevation=75 is outside \[0, 60\]"),
        ("squat,elevation=high", r"elevation='high' is not a number"),
    ],
)
def test_bad_specs_name_what_is_valid(spec, message):
    with pytest.raises(UserError, match=message) as caught:
        SyntheticSource.from_spec(spec)
    assert "\n" not in str(caught.value)


def test_people_repeats_the_last_exercise():
    source = SyntheticSource.from_spec("squat+pushup,people=3,reps=1")
    assert [a.exercise.name for a in source.athletes] == ["squat", "pushup", "pushup"]


# --- determinism ------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_truth():
    spec = "lunge+squat,reps=1,seed=5,fault=knee_past_toes"
    _, first = _render(spec)
    _, again = _render(spec)
    assert len(first) == len(again)
    for (a, ta), (b, tb) in zip(first, again, strict=True):
        assert a.tobytes() == b.tobytes()
        for pa, pb in zip(ta.people, tb.people, strict=True):
            assert np.array_equal(pa.joints_xy, pb.joints_xy)
            assert np.array_equal(pa.visible, pb.visible)
    _, other = _render("lunge+squat,reps=1,seed=6,fault=knee_past_toes")
    assert any(a.tobytes() != b.tobytes() for (a, _), (b, _) in zip(first, other, strict=False))


# --- truth ------------------------------------------------------------------------

# The angle that sweeps through each exercise's range, and how far (degrees).
_RANGE_ANGLE = {
    "squat": ("right_knee", 70),
    "pushup": ("right_elbow", 60),
    "lunge": ("right_knee", 40),
    "bicep_curl": ("right_elbow", 90),
    "shoulder_press": ("right_elbow", 60),
    "lateral_raise": ("right_shoulder", 60),
    "jumping_jack": ("right_shoulder", 100),
}


@pytest.mark.parametrize("exercise", list(EXERCISES))
def test_truth_is_self_consistent(exercise):
    source, frames = _render(f"{exercise},reps=2,seed=1,seconds=2")
    athlete = source.athletes[0]
    assert len(frames) == source.total_frames
    if EXERCISES[exercise].is_hold:
        assert athlete.reps == ()
    else:
        assert [r.index for r in athlete.reps] == [1, 2]
    previous_end = -1
    for rep in athlete.reps:
        assert previous_end <= rep.start_frame < rep.bottom_frame < rep.end_frame < len(frames)
        previous_end = rep.end_frame
        name, sweep = _RANGE_ANGLE[exercise]
        start = frames[rep.start_frame][1].people[0].angles[name]
        bottom = frames[rep.bottom_frame][1].people[0].angles[name]
        assert abs(bottom - start) > sweep * 0.9, (name, start, bottom)
        assert frames[rep.bottom_frame][1].people[0].rep == rep.index
    for _, truth in frames[::7]:
        (person,) = truth.people
        assert person.joints_xy.shape == (NUM_LANDMARKS, 2)
        assert np.isfinite(person.joints_xy).all()
        assert person.visible.dtype == bool and person.visible.shape == (NUM_LANDMARKS,)
        assert person.visible.sum() >= 16  # about half the body shows from any side
        assert set(person.angles) == set(ANGLE_NAMES)
        for name, (a, b, c) in ANGLES.items():
            expected = joint_angle(person.joints_xy[a], person.joints_xy[b], person.joints_xy[c])
            assert person.angles[name] == pytest.approx(expected, abs=1e-9)


def test_side_view_hides_the_far_side():
    _, frames = _render("bicep_curl,reps=1,view=side")
    person = frames[0][1].people[0]
    assert person.visible[[L.RIGHT_SHOULDER, L.RIGHT_EYE, L.RIGHT_EAR, L.RIGHT_HIP]].all()
    assert not person.visible[[L.LEFT_EAR, L.LEFT_HIP, L.LEFT_SHOULDER]].any()


def test_truth_document_is_json_with_reps_and_faults():
    source = SyntheticSource.from_spec("squat+plank,reps=3,fault=torso_lean@2-3+hip_sag,seed=2")
    document = json.loads(json.dumps(source.truth_document()))
    assert document["total_frames"] == source.total_frames == len(document["frames"])
    assert len(document["landmarks"]) == NUM_LANDMARKS
    squat, plank = document["people"]
    assert squat["reps_requested"] == len(squat["reps"]) == 3
    assert [r["faults"] for r in squat["reps"]] == [[], ["torso_lean"], ["torso_lean"]]
    assert squat["faults"] == {"torso_lean": [2, 3]}
    assert plank["hold"] and plank["reps"] == [] and plank["hold_faults"] == ["hip_sag"]
    frame = document["frames"][10]["people"][0]
    assert len(frame["joints_xy"]) == NUM_LANDMARKS and len(frame["visible"]) == NUM_LANDMARKS
    assert set(frame["angles"]) == set(ANGLE_NAMES)


# --- faults: rep 1 is clean, rep 2 carries the fault --------------------------


def _x(person, landmark):
    return person.joints_xy[landmark, 0]


def _y(person, landmark):
    """Image row: grows downwards."""
    return person.joints_xy[landmark, 1]


def _hip_drop(person):
    """Pixels the hip lies below the shoulder-knee line (negative: above)."""
    s, h, k = (person.joints_xy[i] for i in (L.RIGHT_SHOULDER, L.RIGHT_HIP, L.RIGHT_KNEE))
    t = (h[0] - s[0]) / (k[0] - s[0])
    return h[1] - (s[1] + t * (k[1] - s[1]))


@pytest.mark.parametrize(
    ("spec", "measure", "change"),
    [
        ("squat,fault=shallow_depth@2", lambda p: p.angles["right_knee"], 35),
        ("squat,fault=torso_lean@2", lambda p: -p.angles["right_hip"], 15),
        (
            "squat,view=front,fault=knees_caving@2",
            lambda p: -abs(_x(p, L.LEFT_KNEE) - _x(p, L.RIGHT_KNEE)),
            30,
        ),
        ("pushup,fault=hip_sag@2", _hip_drop, 8),
        ("pushup,fault=hip_pike@2", lambda p: -_hip_drop(p), 15),
        (
            "pushup,view=front,fault=elbow_flare@2",
            lambda p: abs(_x(p, L.LEFT_ELBOW) - _x(p, L.RIGHT_ELBOW)),
            12,
        ),
        ("bicep_curl,fault=elbow_swing@2", lambda p: p.angles["right_shoulder"], 25),
        ("bicep_curl,fault=partial_range@2", lambda p: p.angles["right_elbow"], 40),
        ("jumping_jack,fault=partial_range@2", lambda p: -p.angles["right_shoulder"], 40),
        (
            "lunge,fault=knee_past_toes@2",
            lambda p: _x(p, L.RIGHT_KNEE) - _x(p, L.RIGHT_FOOT_INDEX),
            20,
        ),
        (
            "squat,fault=heels_lifting@2",
            lambda p: _y(p, L.RIGHT_FOOT_INDEX) - _y(p, L.RIGHT_HEEL),
            15,
        ),
        ("shoulder_press,fault=no_lockout@2", lambda p: -p.angles["right_elbow"], 15),
        ("lateral_raise,fault=arms_low@2", lambda p: -p.angles["right_shoulder"], 15),
        ("lateral_raise,fault=shrug@2", lambda p: _y(p, L.RIGHT_EAR) - _y(p, L.RIGHT_SHOULDER), 12),
        ("jumping_jack,fault=arms_not_overhead@2", lambda p: -p.angles["right_shoulder"], 30),
        (
            "jumping_jack,fault=feet_not_apart@2",
            lambda p: -abs(_x(p, L.LEFT_ANKLE) - _x(p, L.RIGHT_ANKLE)),
            40,
        ),
    ],
)
def test_fault_bends_only_its_rep(spec, measure, change):
    source, (clean, faulty) = _at_bottoms(f"{spec},reps=2,seed=4")
    assert [r.faults for r in source.athletes[0].reps][0] == ()
    assert measure(faulty) - measure(clean) > change


def test_knee_past_toes_only_when_injected():
    _, (clean, faulty) = _at_bottoms("lunge,reps=2,fault=knee_past_toes@2")
    # Side view, athlete facing right: x grows towards the toes.
    assert _x(clean, L.RIGHT_KNEE) < _x(clean, L.RIGHT_FOOT_INDEX)
    assert _x(faulty, L.RIGHT_KNEE) > _x(faulty, L.RIGHT_FOOT_INDEX)


# --- several athletes ----------------------------------------------------------------


def test_two_people_are_two_figures_with_their_own_truth():
    source, frames = _render("squat+bicep_curl,reps=2,seed=3")
    assert [a.exercise.name for a in source.athletes] == ["squat", "bicep_curl"]
    assert source.athletes[0].reps[0].start_frame != source.athletes[1].reps[0].start_frame
    frame, truth = frames[len(frames) // 2]
    left, right = truth.people
    assert (left.person, left.exercise) == (0, "squat")
    assert (right.person, right.exercise) == (1, "bicep_curl")
    assert left.joints_xy[:, 0].max() < right.joints_xy[:, 0].min()  # side by side
    for person in truth.people:
        x, y = person.joints_xy[L.RIGHT_HIP].astype(int)
        wall = frame[3, x].astype(int)  # the same column at the top of the frame
        assert np.abs(frame[y, x].astype(int) - wall).sum() > 30  # the figure is drawn there
        assert person.visible[L.RIGHT_HIP]


def test_overlapping_people_hide_each_others_joints():
    _, frames = _render("pushup+pushup,reps=1,seed=0")
    hidden = [p.hidden_by for _, t in frames for p in t.people]
    assert (
        sum(int((h == 1).sum()) for h in hidden[0::2]) > 20
    )  # the front athlete covers the back one
    for _, truth in frames:
        for person in truth.people:
            assert not (person.visible & (person.hidden_by >= 0)).any()


# --- the real pose model on rendered frames --------------------------------------------

# (spec, view): compact clips, one or a few reps each. Targets: found in >= 95 % of
# frames; median |angle error| <= 5 degrees for knee, hip, elbow in side view
# (measured 1-4); front view angles are foreshortened: <= 7 (measured 1-4).
_MODEL_CASES = [
    (
        f"{name},view={view},seed=7,"
        + ("seconds=3" if ex.is_hold else f"reps={3 if name == 'jumping_jack' else 1}")
    )
    for name, ex in EXERCISES.items()
    for view in ex.views
]


@pytest.fixture(scope="module")
def blazepose():
    pytest.importorskip("mediapipe")
    from repcoach.stages.synthetic.check import measure_blazepose

    return measure_blazepose


@pytest.mark.slow
@pytest.mark.parametrize("spec", _MODEL_CASES)
def test_blazepose_finds_the_athlete_and_its_angles(blazepose, spec):
    report = blazepose(spec)
    assert report.rate >= 0.95, f"found in {report.found}/{report.frames} frames"
    limit = 5.0 if report.view == "side" else 7.0
    for joint in ("knee", "hip", "elbow"):
        median = report.median(joint)
        assert math.isnan(median) or median <= limit, (joint, median, report.errors[joint][:20])

"""Synthetic people who do not exercise (bystander, walker, mirror twin) and
rests between reps: the spec, their exact truth, and BlazePose finding them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.common.landmarks import Landmark as L
from repcoach.stages.synthetic import SyntheticSource
from repcoach.stages.synthetic.options import parse_spec
from repcoach.stages.synthetic.palette import shade
from repcoach.stages.synthetic.source import MIRROR_DEPTH, MIRROR_DIM
from repcoach.stages.synthetic.timeline import RestPlan
from repcoach.stages.synthetic.truth import MIRROR_SWAP

GYM = "squat,reps=2,extra=bystander+walker,rest=2@1,mirror=1,seed=0"


@pytest.fixture(scope="module")
def gym():
    """One clip with every kind of person: rendered once for the module."""
    source = SyntheticSource.from_spec(GYM)
    return source, list(source.frames())


# --- the spec ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "extras", "rest", "mirror_of"),
    [
        ("squat", (), None, None),
        ("squat,extra=bystander", ("bystander",), None, None),
        ("squat,extra=walker+bystander+walker", ("walker", "bystander", "walker"), None, None),
        ("squat,reps=4,rest=3", (), RestPlan(3.0, 1, 3), None),
        ("squat,reps=4,rest=1.5@2", (), RestPlan(1.5, 2, 2), None),
        ("squat,reps=4,rest=2@1-2", (), RestPlan(2.0, 1, 2), None),
        ("squat,mirror=1", (), None, 0),
        ("squat,mirror=0", (), None, None),
        ("squat+plank,mirror=2,rest=1", (), RestPlan(1.0, 1, 2), 1),
    ],
)
def test_good_specs(spec, extras, rest, mirror_of):
    config = parse_spec(spec)
    assert (config.extras, config.rest, config.mirror_of) == (extras, rest, mirror_of)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "squat,extra=dancer",
            r"extra='dancer': unknown figure 'dancer'; valid: bystander, walker",
        ),
        ("squat,extra=walker+", r"unknown figure ''; valid: bystander, walker"),
        ("squat,extra=walker+walker+walker+bystander", r"names 4 figures; at most 3"),
        ("squat,rest=x", r"rest='x' is not S, S@N or S@N-M"),
        ("squat,rest=0.2", r"rest=0.2: 0.2 seconds is outside \[0.5, 60\]"),
        ("squat,reps=3,rest=2@3", r"rests come after reps 1..2 \(reps=3\)"),
        ("squat,reps=3,rest=2@2-1", r"rests come after reps 1..2"),
        ("squat,reps=1,rest=2", r"rest=2 needs reps=2 or more"),
        ("plank,rest=2", r"rest=2: a hold \(plank\) has no reps"),
        ("squat,mirror=2", r"mirror=2 is outside \[0, 1\]"),
        ("squat,mirror=yes", r"mirror='yes' is not a whole number"),
        ("squat+squat+squat,extra=bystander,mirror=1", r"5 figures side by side .* at most 4"),
        ("squat,walker=1", r"unknown option\(s\) \['walker'\]; valid: .*'extra'"),
    ],
)
def test_bad_specs_name_the_option_and_what_is_valid(spec, message):
    with pytest.raises(UserError, match=message) as caught:
        SyntheticSource.from_spec(spec)
    assert "\n" not in str(caught.value)


# --- truth: who is who -----------------------------------------------------------


def test_truth_records_roles_and_no_reps_for_non_exercisers(gym):
    source, frames = gym
    document = json.loads(json.dumps(source.truth_document()))
    people = document["people"]
    assert [(p["person"], p["role"], p["exercising"]) for p in people] == [
        (0, "athlete", True),
        (1, "bystander", False),
        (2, "walker", False),
        (3, "mirror", False),
    ]
    assert people[0]["rep_count"] == len(people[0]["reps"]) == 2
    for person in people[1:]:
        assert person["rep_count"] == 0 and person["reps"] == [] and person["exercise"] is None
    assert people[1]["stance"] in ("arms_crossed", "hands_on_hips", "arms_down")
    assert people[2]["direction"] in ("left_to_right", "right_to_left")
    assert people[3]["mirror_of"] == 0
    assert set(document["roles"]) == {"athlete", "bystander", "walker", "spotter", "mirror"}
    # Every frame keeps the joints of every rendered person.
    for frame, (_, truth) in zip(document["frames"], frames, strict=True):
        assert [p["role"] for p in frame["people"]] == [p["role"] for p in people]
        for person, exact in zip(frame["people"], truth.people, strict=True):
            assert len(person["joints_xy"]) == NUM_LANDMARKS
            assert np.isfinite(exact.joints_xy).all()
            if exact.role != "athlete":
                assert person["rep"] == 0 and exact.exercise is None


def test_a_spotter_stands_right_behind_the_athlete_partly_hidden():
    source = SyntheticSource.from_spec("squat,reps=1,view=side,extra=spotter,seed=1")
    athlete, spotter = source.people
    assert (spotter.role, spotter.exercising) == ("spotter", False)
    assert source.cameras[1].scale < source.cameras[0].scale  # further back: smaller
    hidden = 0
    for _, truth in source.frames():
        mine, theirs = truth.people
        assert mine.visible[[L.RIGHT_HIP, L.RIGHT_KNEE, L.RIGHT_ANKLE]].all()  # the near side
        # On screen the two overlap side to side, the spotter's feet higher.
        mine_x, theirs_x = mine.joints_xy[:, 0], theirs.joints_xy[:, 0]
        assert max(mine_x.min(), theirs_x.min()) < min(mine_x.max(), theirs_x.max())
        assert theirs.joints_xy[L.LEFT_ANKLE, 1] < mine.joints_xy[L.LEFT_ANKLE, 1]
        hidden += not theirs.visible.all()
    assert hidden > 0


def test_extras_leave_the_athletes_reps_as_they_were():
    plain = SyntheticSource.from_spec("squat+lunge,reps=3,seed=4")
    crowded = SyntheticSource.from_spec("squat+lunge,reps=3,seed=4,extra=walker+bystander")
    assert [a.reps for a in plain.athletes] == [a.reps for a in crowded.athletes]
    assert len(crowded.people) == 4 and len(crowded.athletes) == 2


def test_rest_pauses_the_athlete_in_the_start_pose(gym):
    source, frames = gym
    plain = SyntheticSource.from_spec("squat,reps=2,seed=0")
    athlete = source.athletes[0]
    (rest,) = athlete.rests
    assert rest.after_rep == 1
    assert (rest.start_frame, rest.end_frame) == (
        athlete.reps[0].end_frame,
        athlete.reps[1].start_frame,
    )
    # Rep 2 starts two seconds later than without the rest; rep 1 is as it was.
    assert athlete.reps[0] == plain.athletes[0].reps[0]
    delay = athlete.reps[1].start_frame - plain.athletes[0].reps[1].start_frame
    assert abs(delay - 2 * source.fps) <= 1
    knees = [frames[i][1].people[0] for i in range(rest.start_frame + 1, rest.end_frame)]
    assert all(p.rep == 0 for p in knees)
    assert min(p.angles["right_knee"] for p in knees) > 160  # standing, not squatting
    document = source.truth_document()
    assert document["people"][0]["rests"] == [
        {"after_rep": 1, "start_frame": rest.start_frame, "end_frame": rest.end_frame}
    ]


# --- truth: how each of them moves -----------------------------------------------


def _centre_x(person) -> float:
    return float(person.joints_xy[[L.LEFT_HIP, L.RIGHT_HIP], 0].mean())


def test_the_walker_crosses_the_frame_from_edge_to_edge(gym):
    source, frames = gym
    walker = source.people[2]
    xs = np.array([_centre_x(t.people[2]) for _, t in frames])
    inside = np.array([t.people[2].visible.any() for _, t in frames])
    first, last = walker.about["start_frame"], walker.about["end_frame"]
    # Out of sight before setting off and after leaving; in sight in between.
    assert not inside[: first + 1].any() and not inside[last:].any()
    assert inside[first + 1 : last].mean() > 0.8
    step = np.diff(xs)
    rightwards = walker.about["direction"] == "left_to_right"
    assert ((step > 0) if rightwards else (step < 0)).all()  # always forwards
    entry, exit_ = (0, source.width) if rightwards else (source.width, 0)
    assert abs(xs[first] - entry) < abs(xs[first] - exit_)
    assert abs(xs[last] - exit_) < abs(xs[last] - entry)
    # Legs swing: the ankles pass each other several times.
    ankles = np.array(
        [
            t.people[2].joints_xy[L.LEFT_ANKLE, 0] - t.people[2].joints_xy[L.RIGHT_ANKLE, 0]
            for _, t in frames[first:last]
        ]
    )
    assert np.count_nonzero(np.diff(np.sign(ankles))) >= 4


def test_the_bystander_stays_put_and_sways_a_little(gym):
    source, frames = gym
    xs = np.array([_centre_x(t.people[1]) for _, t in frames])
    noses = np.array([t.people[1].joints_xy[L.NOSE] for _, t in frames])
    assert np.ptp(xs) < 0.03 * source.width
    assert 0.5 < np.ptp(noses[:, 0]) + np.ptp(noses[:, 1]) < 0.05 * source.height
    visible = np.array([t.people[1].visible.sum() for _, t in frames])
    assert visible.min() >= 25  # seen from the front, fully in the frame


def test_the_mirror_twin_is_the_athlete_flipped_smaller_and_dimmer(gym):
    source, frames = gym
    athlete = np.concatenate([t.people[0].joints_xy for _, t in frames])
    # Read the twin's joints back in the athlete's left/right order.
    twin = np.concatenate([t.people[3].joints_xy[MIRROR_SWAP] for _, t in frames])
    # One affine map for every joint of every frame: the twin moves in sync.
    design = np.stack([athlete[:, 0], np.ones(len(athlete))], axis=1)
    (sx, _), residual_x, *_ = np.linalg.lstsq(design, twin[:, 0], rcond=None)
    design = np.stack([athlete[:, 1], np.ones(len(athlete))], axis=1)
    (sy, _), residual_y, *_ = np.linalg.lstsq(design, twin[:, 1], rcond=None)
    assert sx == pytest.approx(-sy, rel=1e-6)  # flipped left-right, not up-down
    assert sy == pytest.approx(MIRROR_DEPTH, rel=1e-6)  # smaller: further back
    assert np.sqrt(residual_x[0] / len(athlete)) < 1e-3
    assert np.sqrt(residual_y[0] / len(athlete)) < 1e-3
    # The athlete faces image right in a side view; the twin faces left.
    nose, ear = frames[0][1].people[3].joints_xy[[L.NOSE, L.LEFT_EAR]]
    assert nose[0] < ear[0]
    assert source.people[3].palette.shirt == shade(source.athletes[0].palette.shirt, MIRROR_DIM)


# --- determinism -------------------------------------------------------------------


def test_same_seed_gives_identical_frames_with_everyone():
    spec = "bicep_curl,reps=2,fps=15,size=320x240,extra=walker+bystander,rest=1,mirror=1,seed=8"
    first = [(image.tobytes(), truth) for image, truth in SyntheticSource.from_spec(spec).frames()]
    again = list(SyntheticSource.from_spec(spec).frames())
    assert len(first) == len(again)
    for (a, ta), (b, tb) in zip(first, again, strict=True):
        assert a == b.tobytes()
        for pa, pb in zip(ta.people, tb.people, strict=True):
            assert np.array_equal(pa.joints_xy, pb.joints_xy)
            assert np.array_equal(pa.visible, pb.visible)


# --- the real pose model -------------------------------------------------------------


@pytest.mark.slow
def test_blazepose_finds_every_new_figure(gym):
    """The pipeline's segmenter with landmarks, on every third frame from the
    start (it follows people by their landmarks) until the walker is out.
    Measured over 8 clips: athletes and bystanders are found in 100 % of the
    frames where fully visible; mirror twins in 68-100 % (68 % in this clip,
    where the detector often misses the twin between athlete and bystander);
    the walker in ~55 %: found (1-3 % joint error) whenever it is a body
    width away from everyone, lost while it passes close beside or behind
    someone, where the detector returns one box around both."""
    pytest.importorskip("mediapipe")
    from repcoach.stages.synthetic.check import measure_people

    source, _ = gym
    walker = source.people[2].about
    sample = list(range(0, walker["end_frame"], 3))
    finds = {f.role: f for f in measure_people(GYM, sample)}
    for role, least in (("athlete", 0.9), ("bystander", 0.9), ("mirror", 0.6)):
        assert finds[role].shown >= 10, (role, finds[role])
        assert finds[role].rate >= least, (role, finds[role])
    assert finds["walker"].found >= 4, finds["walker"]
    assert finds["walker"].rate >= 0.4, finds["walker"]

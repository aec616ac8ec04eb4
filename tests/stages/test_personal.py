"""Personalisation: strictness levels, the person's own baseline from their
first reps, and the member's baseline from their last session."""

from __future__ import annotations

import pytest

from repcoach.common.errors import UserError
from repcoach.common.history import Baseline
from repcoach.stages.coaching import Coach, get_exercise
from repcoach.stages.coaching.baseline import PersonalBaseline
from repcoach.stages.coaching.levels import for_level
from tests.stages.test_coaching import reps_of, run, squat_frames


def _rule(spec, rule_id):
    return next(r for r in spec.rules if r.id == rule_id)


def test_levels_move_thresholds_in_the_forgiving_or_strict_direction():
    squat = get_exercise("squat")
    lean = {
        level: _rule(for_level(level)(squat), "torso_lean").above
        for level in ("beginner", "intermediate", "advanced")
    }
    assert lean == {"beginner": 58.0, "intermediate": 52.0, "advanced": 46.0}
    caving = {
        level: _rule(for_level(level)(squat), "knees_caving").below
        for level in ("beginner", "advanced")
    }
    assert caving["beginner"] < 0.85 < caving["advanced"]  # a 'below' rule moves the other way
    full = {level: for_level(level)(squat).counting[0].full for level in ("beginner", "advanced")}
    assert full == {"beginner": 129.0, "advanced": 121.0}  # start 145, full 125


def test_unknown_level_is_one_clear_error():
    with pytest.raises(UserError, match="valid: beginner, intermediate, advanced"):
        for_level("olympian")


@pytest.mark.parametrize(
    ("lean", "flagged_for"),
    [
        (20.0, {"intermediate", "advanced"}),  # torso at 55 degrees
        (14.0, {"advanced"}),  # 49 degrees: only the strict profile objects
    ],
)
def test_strictness_decides_which_lean_is_a_fault(lean, flagged_for):
    flagged = set()
    for level in ("beginner", "intermediate", "advanced"):
        coach = Coach("squat", adapt=for_level(level))
        reps = reps_of(run(coach, squat_frames([1.0, 1.0], lean=lean)))
        assert len(reps) == 2
        if "torso_lean" in reps[0]["faults"]:
            flagged.add(level)
    assert flagged == flagged_for


@pytest.mark.parametrize(
    ("depth", "full_for"),
    [
        (0.44, {"beginner"}),  # knee bottoms out at 127 degrees
        (0.47, {"beginner", "intermediate"}),  # 123.6 degrees
    ],
)
def test_strictness_decides_what_counts_as_a_full_rep(depth, full_for):
    full = set()
    for level in ("beginner", "intermediate", "advanced"):
        events = run(Coach("squat", adapt=for_level(level)), squat_frames([depth, depth]))
        reps, partial = reps_of(events), reps_of(events, "partial_rep")
        assert len(reps) + len(partial) == 2
        if reps:
            full.add(level)
    assert full == full_for


def test_first_reps_calibrate_and_a_shallower_rep_is_called_out():
    coach = Coach("squat")
    events = run(coach, squat_frames([1.0, 1.0, 1.0, 0.85, 1.0]))
    reps = reps_of(events)
    assert [r["calibration"] for r in reps] == [True, True, True, False, False]
    assert reps[3]["faults"] == []  # within the exercise's rules...
    assert reps[3]["rom_vs_baseline"] < -10  # ...but well short of this person's own range
    cues = {c.data["rep"]: c.text for c in events if c.kind == "cue"}
    assert cues[4] == "Shallower than your first reps: keep the full range"
    assert 5 not in cues or "Shallower" not in cues[5]


def test_rushed_reps_are_compared_with_the_persons_own_tempo():
    baseline = PersonalBaseline("deg")
    for _ in range(3):
        assert baseline.add(80.0, 2.0)[1] is None
    assert baseline.add(80.0, 1.9)[1] is None
    data, comparison = baseline.add(80.0, 1.0)
    assert comparison is not None and comparison.text.startswith("Slow down")
    assert data["baseline_tempo_s"] == 2.0


@pytest.mark.parametrize(
    ("last_rom", "expected"),
    [
        (60.0, "Fuller range than your last session. Great work!"),
        (120.0, "Less range than last session: aim for your usual depth"),
        (None, None),  # a guest, or no earlier session
    ],
)
def test_members_set_is_compared_with_their_last_session(last_rom, expected):
    priors = {} if last_rom is None else {"squat": Baseline("squat", "s0", last_rom, "deg", 2.0, 5)}
    coach = Coach("squat", member="alice" if priors else "", priors=priors)
    events = run(coach, squat_frames([1.0, 1.0, 1.0]))
    third = [c for c in events if c.kind == "cue" and c.data["rep"] == 3]
    assert [c.text for c in third] == ([expected] if expected else [])
    member = [e.data.get("member") for e in events if e.kind == "rep"]
    assert member == ["alice"] * 3 if priors else member == [None] * 3

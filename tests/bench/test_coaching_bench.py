"""The coaching benchmark's own logic: reading labels, removing wall-clock
fields before runs are compared, and matching counted ids to labelled people."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.coaching import score
from bench.labels import ids_allowed, load_labels
from bench.pipeline_run import PipelineRun, canonical, first_difference, strip_wall_clock
from repcoach.common.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def write_labels(folder, entries):
    (folder / "labels.json").write_text(json.dumps(entries))
    return load_labels(folder)


def entry(**fields):
    base = {"file": "a.mp4", "exercise_id": "squat", "people": 1, "reps": 3, "partial_reps": 0}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("exercise_id", "text", "expected"),
    [
        ("squat", "bodyweight squat", "squat"),
        ("other", "seated machine chest fly (pec deck)", "pec_deck_fly"),
        ("other", "cable crossover", None),
    ],
)
def test_label_names_the_exercise_to_give(tmp_path, exercise_id, text, expected):
    [label] = write_labels(tmp_path, [entry(exercise_id=exercise_id, exercise=text)])
    assert label.exercise == expected


def test_people_may_be_a_sentence(tmp_path):
    [label] = write_labels(tmp_path, [entry(people="1 exerciser + his mirror reflection")])
    assert (label.people, label.people_text) == (1, "1 exerciser + his mirror reflection")


def test_bad_people_names_the_entry(tmp_path):
    with pytest.raises(UserError, match="a.mp4.*'people'"):
        write_labels(tmp_path, [entry(people="several")])


def test_wall_clock_fields_do_not_make_runs_differ():
    first = {"wall_s": 4.6, "people": [{"id": 1, "reps": 3}]}
    second = {"wall_s": 9.1, "people": [{"id": 1, "reps": 3}]}
    assert canonical(strip_wall_clock(first)) == canonical(strip_wall_clock(second))
    events = [
        {"type": "event", "id": "20261202-183055-d5b26e:26:2", "seq": 26},
        {"type": "frame", "seq": 26, "age_ms": 12.5},
    ]
    later = [
        {"type": "event", "id": "20261202-190001-0a0b0c:26:2", "seq": 26},
        {"type": "frame", "seq": 26, "age_ms": 40.0},
    ]
    assert canonical(strip_wall_clock(events)) == canonical(strip_wall_clock(later))


def test_first_difference_says_where():
    a = {"people": [{"id": 1, "reps": 3}]}
    b = {"people": [{"id": 1, "reps": 4}]}
    assert first_difference(a, b) == ".people[0].reps: 3 != 4"
    assert first_difference(a, a) is None


def summary(*people):
    return {
        "people": [
            {
                "id": pid,
                "exercises": [
                    {"exercise": ex, "reps": reps, "partial_reps": partial, "reps_detail": []}
                ],
            }
            for pid, ex, reps, partial in people
        ]
    }


def test_ids_are_matched_to_labelled_people_by_count(tmp_path):
    by_person = [{"person": "athlete", "reps": 8}, {"person": "coach", "reps": 0}]
    [label] = write_labels(
        tmp_path,
        [
            entry(
                exercise_id="other", exercise="pec deck", people=2, reps=8, reps_by_person=by_person
            )
        ],
    )
    run = PipelineRun("pec_deck_fly", None, 0, 1.0)
    run.summary = summary((3, "pec_deck_fly", 1, 1), (1, "pec_deck_fly", 8, 0), (7, "x", 2, 0))
    scored = score(run, label, "pec_deck_fly", auto=False)
    assert scored.main.id == 1 and scored.exact
    assert scored.exercisers == (8,)
    assert (scored.idle_reps, scored.idle_partial, scored.ids) == (3, 1, 3)


def test_ids_allowed_are_the_labelled_people_and_one_more_per_started_minute(tmp_path):
    [label] = write_labels(tmp_path, [entry(people=2, reps=3)])
    run = PipelineRun("squat", None, 0, 1.0)
    run.summary = {**summary((1, "squat", 3, 0), (2, "squat", 0, 0)), "duration_s": 59.0}
    assert score(run, label, "squat", auto=False).ids_allowed == 3
    run.summary["duration_s"] = 61.0
    assert score(run, label, "squat", auto=False).ids_allowed == 4
    assert ids_allowed(2, 0.0) == 2


def test_auto_is_exact_only_with_the_right_exercise(tmp_path):
    [label] = write_labels(tmp_path, [entry(reps=3)])
    run = PipelineRun("auto", None, 0, 1.0)
    run.summary = summary((1, "lunge", 3, 0))
    assert not score(run, label, "squat", auto=True).exact
    assert score(run, label, "squat", auto=False).exact


def test_floor_attributes_each_rep_and_cue_to_the_person_it_was_about():
    """Two rendered people; the coach's person changed track id mid-clip
    (its rep names both ids). Reps go where their frames' joints lie, a cue a
    rep earned goes with that rep, any other cue where its frame's joints lie."""
    import numpy as np

    from bench.clip_joints import ClipJoints
    from bench.coaching_floor import attribute
    from repcoach.common.messages import EventKind, FeedbackEvent, PersonJoints

    def at(track: int, x: float) -> PersonJoints:
        xy = np.tile(np.float32([x, 200.0]), (33, 1))
        return PersonJoints(track, xy, np.ones(33, np.float32), np.zeros((33, 3), np.float32))

    frames = tuple((at(1, 100.0), at(2 if i < 5 else 7, 400.0)) for i in range(10))
    clip = ClipJoints("floor", 30.0, 640, 480, frames)
    centres = [[[100.0, 200.0]] * 10, [[405.0, 200.0]] * 10]

    def event(kind: EventKind, track: int, seq: int, **data) -> FeedbackEvent:
        return FeedbackEvent(f"e{seq}", kind, track, seq, seq / 30.0, "", data=data)

    given = attribute(
        clip,
        centres,
        [
            event(EventKind.REP, 7, 9, start_frame=2, end_frame=8, tracks=[2, 7], exercise="squat"),
            event(EventKind.CUE, 7, 9, rep=1),
            event(EventKind.PARTIAL_REP, 1, 9, start_frame=0, end_frame=9),
            event(EventKind.CUE, 1, 4),
            event(EventKind.PERSON_ENTER, 1, 0),
        ],
    )
    assert [(g.reps, g.partial, g.cues) for g in given] == [(0, 1, 1), (1, 0, 1)]
    assert given[1].exercise == "squat"


@pytest.mark.slow
def test_a_failed_run_is_named_and_the_exit_code_says_so(tmp_path, video):
    """`--segmenter maskrcnn` without its weights: the real pipeline run fails
    with its one line, the figures say a run is missing, and the benchmark
    exits 1 rather than 0 over an incomplete table."""
    clips = tmp_path / "clips"
    clips.mkdir()
    video(12).rename(clips / "a.mp4")
    write_labels(clips, [entry(reps=0)])
    env = {
        **os.environ,
        "REPCOACH_WEIGHTS_DIR": str(tmp_path / "no_weights"),
        "REPCOACH_COACH_CACHE": str(tmp_path / "cache"),
    }
    args = [str(clips), "--no-synthetic", "--no-auto", "--segmenter", "maskrcnn"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "coaching.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "segmenter maskrcnn" in done.stdout
    assert "Mask R-CNN weights not found" in done.stdout
    assert "failed pipeline runs: 1" in done.stdout

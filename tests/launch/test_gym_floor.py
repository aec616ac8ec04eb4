"""A gym floor, rendered with exact truth, through the whole pipeline: an
athlete who rests between reps, a bystander, a walker crossing behind and
the athlete's mirror twin. Only the athlete is coached."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_jsonl

SOURCE = "synthetic:squat,reps=3,extra=bystander+walker,rest=2@1,mirror=1,seed=3"
COACHED = {"rep", "partial_rep", "cue", "exercise", "hold"}


@pytest.mark.parametrize("exercise", ["squat", "auto"])
def test_only_the_athlete_gets_reps_on_a_gym_floor(pipeline, tmp_path, exercise):
    summary, truth, events = tmp_path / "s.json", tmp_path / "t.json", tmp_path / "e.jsonl"
    result = pipeline.run(
        "up",
        "--source",
        SOURCE,
        "--exercise",
        exercise,
        "--truth",
        str(truth),
        "--summary",
        str(summary),
        "--sink",
        f"jsonl:path={events}",
        "--no-console",
        "--no-history",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    people = json.loads(summary.read_text())["people"]
    rendered = json.loads(truth.read_text())["people"]
    athletes = [p for p in rendered if p["exercising"]]
    assert [p["role"] for p in rendered] == ["athlete", "bystander", "walker", "mirror"]

    training = [p for p in people if p["training"]]
    assert len(training) == len(athletes) == 1, people
    (coached,) = training
    assert [(e["exercise"], e["reps"], e["partial_reps"]) for e in coached["exercises"]] == [
        ("squat", athletes[0]["rep_count"], 0)
    ]
    others = [p for p in people if not p["training"]]
    assert others, "the bystander and the mirror twin are in view the whole clip"
    assert all(p["exercises"] == [] for p in others)
    # Nobody but the athlete hears a count or a cue, or is told an exercise.
    spoken_to = {e["track"] for e in read_jsonl(events) if e.get("kind") in COACHED}
    assert spoken_to == {coached["id"]}

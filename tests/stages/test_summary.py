"""The session summary groups each person's reps by exercise and is atomic."""

from __future__ import annotations

import json

from repcoach.common.messages import (
    PHASE_IDLE,
    PHASE_REFLECTION,
    FeedbackEvent,
    FrameMeta,
    FramePacket,
    PersonScore,
    SessionState,
)
from repcoach.stages.sinks.summary import SummarySink


def rep_packet(seq: int, track: int, kind: str, data: dict, exercise: str) -> FramePacket:
    return FramePacket(
        FrameMeta("cam", seq, seq - 1, 0, 0.0, seq / 30, 8, 8),
        scores=(PersonScore(track, exercise=exercise),),
        events=(FeedbackEvent(f"cam:{seq}", kind, track, seq, seq / 30, "", "info", data),),
    )


def test_summary_lists_reps_with_details_per_person_and_exercise(tmp_path):
    path = tmp_path / "summary.json"
    sink = SummarySink(path)
    good = {"start_frame": 3, "end_frame": 40, "score": 95.0, "faults": []}
    bad = {"start_frame": 41, "end_frame": 80, "score": 60.0, "faults": ["shallow_depth"]}
    sink.on_result(rep_packet(40, 1, "rep", good, "squat"))
    sink.on_result(rep_packet(80, 1, "rep", bad, "squat"))
    sink.on_result(rep_packet(85, 1, "partial_rep", {}, "squat"))
    sink.on_result(rep_packet(90, 2, "rep", {**good, "exercise": "lunge"}, "squat"))
    people = (
        PersonScore(1, exercise="squat", reps=2),
        PersonScore(2),
        PersonScore(3, phase=PHASE_IDLE),
        PersonScore(4, phase=PHASE_REFLECTION),
    )
    sink.on_state(SessionState("cam", 91, 0, 91, 90, 3.03, 0.0, True, "end of source", people))
    sink.close(0)
    document = json.loads(path.read_text())
    assert document["frames"] == 91 and document["ended"] is True
    first, second, third, fourth = document["people"]
    assert first == {
        "id": 1,
        "member": None,
        "training": True,
        "state": "training",
        "exercises": [
            {"exercise": "squat", "reps": 2, "partial_reps": 1, "reps_detail": [good, bad]}
        ],
    }
    assert second["exercises"][0]["exercise"] == "lunge"
    # Present but never coached: listed, with what they were doing instead.
    guest = {"member": None, "training": False, "exercises": []}
    assert third == {"id": 3, "state": "idle", **guest}
    assert fourth == {"id": 4, "state": "reflection", **guest}
    assert not list(tmp_path.glob(".summary.json.*")), "no temporary files left behind"


def test_a_person_handed_to_a_new_track_keeps_every_rep(tmp_path):
    """The tracker lost the athlete and found him again as track 2; the
    coach handed his state over, and his next event names both ids."""
    path = tmp_path / "summary.json"
    sink = SummarySink(path)
    rep = {"start_frame": 3, "end_frame": 40, "score": 95.0, "faults": []}
    for seq in (40, 80, 120):
        sink.on_result(rep_packet(seq, 1, "rep", rep, "pushup"))
    sink.on_result(rep_packet(160, 2, "rep", {**rep, "tracks": [1, 2]}, "pushup"))
    sink.on_result(rep_packet(200, 2, "partial_rep", {"tracks": [1, 2]}, "pushup"))
    for malformed in ("1,3", 1, [True, 3], [2, 1]):  # not a list of ids ending with 3
        sink.on_result(rep_packet(210, 3, "partial_rep", {"tracks": malformed}, "pushup"))
    people = (PersonScore(2, exercise="pushup", reps=4, partial_reps=1), PersonScore(3))
    sink.on_state(SessionState("cam", 211, 0, 211, 210, 7.0, 0.0, True, "end of source", people))
    sink.close(0)
    athlete, other = json.loads(path.read_text())["people"]
    assert athlete["id"] == 2
    assert [(e["reps"], e["partial_reps"]) for e in athlete["exercises"]] == [(4, 1)]
    assert [(e["reps"], e["partial_reps"]) for e in other["exercises"]] == [(0, 4)]

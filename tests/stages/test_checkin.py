"""The coach binds the person holding a member's code to that member, and
lets go once they have been out of view longer than the check-in holds."""

from __future__ import annotations

import numpy as np
import pytest

from repcoach.common.member_codes import MemberCodes
from repcoach.common.messages import EventKind, FrameMeta, FramePacket, ShownCode
from repcoach.stages.coaching import Coach
from repcoach.stages.coaching.checkin import CheckIns
from tests.stages.test_coaching import FPS, front_pose, to_joints


def _standing(track: int, shift_px: float):
    joints = to_joints(front_pose(), track)
    moved = joints.image_xy + np.array([shift_px, 0.0], np.float32)
    return type(joints)(track, moved, joints.visibility, joints.world_xyz)


@pytest.fixture
def codes(tmp_path) -> MemberCodes:
    return MemberCodes(tmp_path / "member-codes.key", create=True)


def _frame(seq: int, people: tuple, codes: tuple = ()) -> FramePacket:
    meta = FrameMeta("test", seq, seq - 1, 0, 0.0, seq / FPS, 640, 480)
    return FramePacket(meta, joints=people, codes=codes)


def test_the_person_holding_the_code_is_checked_in_until_they_leave(codes):
    coach = Coach("squat", checkins=CheckIns(hold_s=2.0, codes=codes))
    left, right = _standing(1, -200), _standing(2, 150)
    beside_right = right.image_xy[:, 0].max() + 40, float(right.image_xy[:, 1].mean())
    card = ShownCode(codes.code_for("alice"), *beside_right)
    forged = ShownCode(card.text.replace("alice", "mallory"), *beside_right)

    first = coach.process(_frame(0, (left, right), (forged,)))
    assert not [e for e in first.events if e.kind == EventKind.CHECK_IN]
    assert coach.drops()["unknown-code"] == 1

    shown = coach.process(_frame(1, (left, right), (card,)))
    checked = [e for e in shown.events if e.kind == EventKind.CHECK_IN]
    assert [(e.track_id, e.data["member"]) for e in checked] == [(2, "alice")]
    assert {s.track_id: s.member for s in shown.scores} == {1: "", 2: "alice"}
    again = coach.process(_frame(2, (left, right), (card,)))  # still shown: said once
    assert not [e for e in again.events if e.kind == EventKind.CHECK_IN]

    # Out of view briefly: still alice. Gone longer than the hold: checked out.
    seq, events = 3, []
    for _ in range(round(1.0 * FPS)):
        events += coach.process(_frame(seq, (left,))).events
        seq += 1
    assert not [e for e in events if e.kind == EventKind.CHECK_OUT]
    back = coach.process(_frame(seq, (left, right)))
    assert {s.track_id: s.member for s in back.scores}[2] == "alice"
    for _ in range(round(2.5 * FPS)):
        seq += 1
        events += coach.process(_frame(seq, (left,))).events
    out = [e for e in events if e.kind == EventKind.CHECK_OUT]
    assert [(e.track_id, e.text) for e in out] == [(2, "alice checked out.")]
    later = coach.process(_frame(seq + 1, (left, right)))
    assert {s.track_id: s.member for s in later.scores}[2] == ""


def test_a_code_nobody_stands_near_binds_nobody(codes):
    coach = Coach("squat", checkins=CheckIns(hold_s=60.0, codes=codes))
    person = _standing(1, -200)
    far = ShownCode(codes.code_for("alice"), 630.0, 20.0)
    result = coach.process(_frame(0, (person,), (far,)))
    assert not [e for e in result.events if e.kind == EventKind.CHECK_IN]
    assert result.scores[0].member == ""


def test_a_member_moves_to_whoever_shows_their_code_next(codes):
    coach = Coach("squat", checkins=CheckIns(hold_s=60.0, codes=codes))
    one, two = _standing(1, -200), _standing(2, 150)
    text = codes.code_for("alice")
    near = {
        1: ShownCode(text, float(one.image_xy[:, 0].mean()), float(one.image_xy[:, 1].mean())),
        2: ShownCode(text, float(two.image_xy[:, 0].mean()), float(two.image_xy[:, 1].mean())),
    }
    coach.process(_frame(0, (one, two), (near[1],)))
    moved = coach.process(_frame(1, (one, two), (near[2],)))
    assert {s.track_id: s.member for s in moved.scores} == {1: "", 2: "alice"}

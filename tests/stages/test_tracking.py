"""Tracker on synthetic box sequences: crossing, occlusion, newcomers, leaving."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance
from repcoach.stages.tracking import Tracker

FPS = 30.0


def person(cx: float, cy: float = 240.0, w: float = 80.0, h: float = 200.0) -> PersonInstance:
    return PersonInstance((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 0.9)


def ids(persons: list[PersonInstance]) -> list[int]:
    return [p.track_id for p in persons]


def test_first_frame_gets_distinct_ids_in_input_order():
    out = Tracker().update([person(100), person(300), person(500)], 0.0)
    assert ids(out) == [1, 2, 3]
    assert [p.box for p in out] == [person(100).box, person(300).box, person(500).box]


@pytest.mark.parametrize("speed_px_s", [120.0, 300.0, 600.0])
def test_crossing_paths_keep_their_ids(speed_px_s):
    """Two people walk through each other; at the crossing their boxes
    coincide, and only their motion tells them apart."""
    tracker = Tracker()
    steps = int(FPS * 430 / speed_px_s)  # each covers 430 px; they meet between frames
    first = None
    for k in range(steps + 1):
        t = k / FPS
        a, b = person(100 + speed_px_s * t), person(530 - speed_px_s * t)
        if k % 2:  # input order must not matter
            b_id, a_id = ids(tracker.update([b, a], t))
        else:
            a_id, b_id = ids(tracker.update([a, b], t))
        now = (a_id, b_id)
        first = first or now
        assert now == first, f"ids swapped at t={t:.2f}s"


def test_half_second_occlusion_keeps_the_id():
    tracker = Tracker(max_age_s=1.0)
    pts = 0.0
    for k in range(30):  # 1 s moving right at 90 px/s
        pts = k / FPS
        (p,) = tracker.update([person(100 + 90 * pts)], pts)
    for _ in range(15):  # 0.5 s hidden
        pts += 1 / FPS
        assert tracker.update([], pts) == []
    assert tracker.active_ids == [p.track_id]
    pts += 1 / FPS
    (back,) = tracker.update([person(100 + 90 * pts)], pts)
    assert back.track_id == p.track_id
    assert tracker.pop_retired() == []


def test_newcomer_gets_a_new_id_and_others_keep_theirs():
    tracker = Tracker()
    (a,) = tracker.update([person(100)], 0.0)
    a2, b = tracker.update([person(102), person(500)], 1 / FPS)
    assert a2.track_id == a.track_id
    assert b.track_id not in (a.track_id, -1)


def test_a_person_who_leaves_is_retired_and_returns_with_a_new_id():
    tracker = Tracker(max_age_s=1.0)
    (a,) = tracker.update([person(100)], 0.0)
    tracker.update([], 0.9)
    assert tracker.pop_retired() == []
    tracker.update([], 1.05)
    assert tracker.pop_retired() == [a.track_id]
    assert tracker.pop_retired() == []  # reported once
    assert tracker.active_ids == []
    (again,) = tracker.update([person(100)], 1.1)
    assert again.track_id != a.track_id


def test_far_jump_is_a_different_person():
    tracker = Tracker()
    (a,) = tracker.update([person(100)], 0.0)
    (b,) = tracker.update([person(560)], 1 / FPS)
    assert b.track_id != a.track_id
    assert sorted(tracker.active_ids) == sorted([a.track_id, b.track_id])


def test_time_going_backwards_starts_over():
    tracker = Tracker()
    (a,) = tracker.update([person(100)], 5.0)
    (b,) = tracker.update([person(100)], 0.0)
    assert b.track_id != a.track_id
    assert tracker.pop_retired() == [a.track_id]


def test_reset_retires_everyone():
    tracker = Tracker()
    out = tracker.update([person(100), person(400)], 0.0)
    tracker.reset()
    assert sorted(tracker.pop_retired()) == sorted(ids(out))
    assert tracker.active_ids == []


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({}, nullcontext()),
        ({"max_age_s": 0.0}, pytest.raises(UserError)),
        ({"min_iou": 1.0}, pytest.raises(UserError)),
        ({"max_centre_dist": -1.0}, pytest.raises(UserError)),
        ({"velocity_smoothing": 0.0}, pytest.raises(UserError)),
    ],
)
def test_constructor_checks_arguments(kwargs, expect):
    with expect:
        Tracker(**kwargs)

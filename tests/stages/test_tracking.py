"""Tracker on synthetic sequences: crossing, occlusion, re-identification by
clothing colour, newcomers, duplicates, leaving, bounds and determinism."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from repcoach.common.errors import UserError
from repcoach.common.messages import PersonInstance, PersonJoints
from repcoach.stages.person_features import with_colours
from repcoach.stages.tracking import Tracker

FPS = 30.0
RED, BLUE, GREEN, GREY = (0, 0, 200), (200, 60, 0), (0, 170, 0), (90, 90, 90)


def person(cx: float, cy: float = 240.0, w: float = 80.0, h: float = 200.0) -> PersonInstance:
    return PersonInstance((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 0.9)


def dressed(p: PersonInstance) -> PersonInstance:
    """`p` with a full mask over its box (the frame gives the colours)."""
    x0, y0, x1, y1 = p.mask_box()
    return PersonInstance(p.box, p.score, np.ones((y1 - y0, x1 - x0), bool))


def frame_with(*people: tuple[PersonInstance, tuple, tuple]) -> np.ndarray:
    """A 640x480 frame with each person painted in (shirt, shorts) colours,
    later ones in front."""
    image = np.full((480, 640, 3), 40, np.uint8)
    for p, shirt, shorts in people:
        x0, y0, x1, y1 = (int(round(v)) for v in p.box)
        mid = (y0 + y1) // 2
        image[y0:mid, max(x0, 0) : x1] = shirt
        image[mid:y1, max(x0, 0) : x1] = shorts
    return image


def ids(persons: list[PersonInstance]) -> list[int]:
    return [p.track_id for p in persons]


def test_first_frame_gets_distinct_ids_in_input_order():
    out = Tracker(min_hits=1).update([person(100), person(300), person(500)], 0.0)
    assert ids(out) == [1, 2, 3]
    assert [p.box for p in out] == [person(100).box, person(300).box, person(500).box]


def test_a_newcomer_gets_an_id_only_once_seen_min_hits_frames_in_a_row():
    tracker = Tracker(min_hits=3)
    assert ids(tracker.update([person(100)], 0.0)) == [-1]
    assert ids(tracker.update([], 1 / FPS)) == []  # a one-frame ghost is forgotten
    seen = [ids(tracker.update([person(100)], k / FPS))[0] for k in range(2, 6)]
    assert seen == [-1, -1, 1, 1]
    assert tracker.pop_retired() == []


@pytest.mark.parametrize("speed_px_s", [120.0, 300.0, 600.0])
def test_crossing_paths_keep_their_ids(speed_px_s):
    """Two people walk through each other; at the crossing their boxes
    coincide, and only their motion tells them apart."""
    tracker = Tracker(min_hits=1)
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


def test_crossing_people_with_their_clothes_keep_their_ids():
    """As above on painted frames: the one in front hides the other's
    pixels, and the hidden one's mask is what is left of them."""
    tracker = Tracker()
    history: dict[str, set[int]] = {"red": set(), "blue": set()}
    for k in range(60):
        t = k / FPS
        red, blue = person(120 + 200 * t), person(520 - 200 * t)
        frame = frame_with((red, RED, GREY), (blue, BLUE, GREEN))
        out = tracker.update([dressed(red), dressed(blue)], t, frame)
        history["red"].add(out[0].track_id)
        history["blue"].add(out[1].track_id)
    assert len(history["red"] - {-1}) == 1 and len(history["blue"] - {-1}) == 1
    assert history["red"] - {-1} != history["blue"] - {-1}


def _walk_then_hide(tracker: Tracker, hidden_s: float) -> tuple[int, float]:
    pts = 0.0
    for k in range(30):  # 1 s moving right at 90 px/s
        pts = k / FPS
        (p,) = tracker.update([person(100 + 90 * pts)], pts)
    for _ in range(int(round(hidden_s * FPS))):
        pts += 1 / FPS
        assert tracker.update([], pts) == []
    return p.track_id, pts


@pytest.mark.parametrize("hidden_s", [0.5, 2.0])
def test_an_occlusion_of_up_to_two_seconds_keeps_the_id(hidden_s):
    tracker = Tracker()
    track_id, pts = _walk_then_hide(tracker, hidden_s)
    assert tracker.active_ids == [track_id]
    assert tracker.lost_ids == [track_id]
    pts += 1 / FPS
    (back,) = tracker.update([person(100 + 90 * pts)], pts)
    assert back.track_id == track_id
    assert tracker.pop_retired() == []


def _seen(frame: np.ndarray, by_worker: bool) -> tuple[list[PersonInstance], np.ndarray | None]:
    """What the tracker gets: the frame, or (as the segment workers send it)
    the colours measured on it and no pixels."""
    people = [dressed(person(300))]
    return (with_colours(people, frame), None) if by_worker else (people, frame)


@pytest.mark.parametrize("by_worker", [False, True], ids=["tracker", "worker"])
@pytest.mark.parametrize(
    ("shirt", "shorts", "same"),
    [((RED), GREY, True), (BLUE, GREEN, False), (GREEN, RED, False)],
)
def test_who_comes_back_to_the_same_spot_is_told_by_their_clothes(shirt, shorts, same, by_worker):
    """A person in red leaves; 1.5 s later someone stands where they stood:
    the same clothes get the old id back, different ones a new id, whether
    the tracker measures the colours or the segment worker did."""
    tracker = Tracker()
    first = None
    people, frame = _seen(frame_with((person(300), RED, GREY)), by_worker)
    for k in range(30):
        (first,) = tracker.update(people, k / FPS, frame)
    pts = 1.5 + 30 / FPS
    people, frame = _seen(frame_with((person(300), shirt, shorts)), by_worker)
    for k in range(5):
        (back,) = tracker.update(people, pts + k / FPS, frame)
    assert back.track_id >= 0
    assert (back.track_id == first.track_id) is same


def test_without_pixels_a_returning_person_is_placed_by_position():
    tracker = Tracker()
    track_id, pts = _walk_then_hide(tracker, 1.0)
    pts += 1 / FPS
    (far,) = tracker.update([person(620)], pts)  # too far for 1 s unseen
    assert far.track_id == -1
    assert tracker.lost_ids == [track_id]


def test_a_person_who_stays_away_is_retired_and_returns_with_a_new_id():
    tracker = Tracker(max_lost_s=1.0, min_hits=1)
    (a,) = tracker.update([person(100)], 0.0)
    tracker.update([], 0.9)
    assert tracker.pop_retired() == []
    tracker.update([], 1.05)
    assert tracker.pop_retired() == [a.track_id]
    assert tracker.pop_retired() == []  # reported once
    assert tracker.active_ids == []
    (again,) = tracker.update([person(100)], 1.1)
    assert again.track_id != a.track_id


def test_newcomer_gets_a_new_id_and_others_keep_theirs():
    tracker = Tracker(min_hits=1)
    (a,) = tracker.update([person(100)], 0.0)
    a2, b = tracker.update([person(102), person(500)], 1 / FPS)
    assert a2.track_id == a.track_id
    assert b.track_id not in (a.track_id, -1)


def test_a_newcomer_never_pushes_a_person_off_their_own_detection():
    """A second detection starts a track beside the athlete, then the next
    frame has the athlete plus one more detection that only the athlete's
    track can reach. The athlete keeps their id on their own detection
    (a single assignment over everyone gave it to the stray one, so that
    the newcomer's track could take the athlete)."""
    tracker = Tracker(min_hits=3)
    for k in range(4):
        (athlete,) = tracker.update([person(300)], k / FPS)
    assert athlete.track_id == 1
    tracker.update([person(300), person(380)], 4 / FPS)  # the newcomer: tentative
    out = tracker.update([person(300), person(230)], 5 / FPS)
    assert ids(out) == [1, -1]


def test_far_jump_is_a_different_person():
    tracker = Tracker(min_hits=1)
    (a,) = tracker.update([person(100)], 0.0)
    (b,) = tracker.update([person(560)], 1 / FPS)
    assert b.track_id != a.track_id
    assert sorted(tracker.active_ids) == sorted([a.track_id, b.track_id])


def _skeleton(p: PersonInstance, jitter: float = 0.0) -> PersonInstance:
    """`p` with 33 landmarks spread over its box (seen)."""
    x0, y0, x1, y1 = p.box
    grid = np.linspace(0.1, 0.9, 33)
    xy = np.stack([x0 + (x1 - x0) * grid[::-1], y0 + (y1 - y0) * grid], axis=1) + jitter
    joints = PersonJoints(-1, xy, np.ones(33), np.zeros((33, 3)))
    return PersonInstance(p.box, p.score, landmarks=joints)


def test_a_second_detection_of_the_same_body_is_dropped():
    tracker = Tracker(min_hits=1)
    body = _skeleton(person(300))
    ghost = PersonInstance((262.0, 150.0, 338.0, 330.0), 0.5, landmarks=body.landmarks)
    other = _skeleton(person(500))
    out = tracker.update([ghost, body, other], 0.0)
    assert [p.box for p in out] == [body.box, other.box]
    assert ids(out) == [1, 2]


def test_people_side_by_side_are_not_duplicates():
    """Overlapping boxes whose landmarks differ are two people."""
    tracker = Tracker(min_hits=1)
    a, b = _skeleton(person(300)), _skeleton(person(330), jitter=25.0)
    assert len(tracker.update([a, b], 0.0)) == 2


def test_tables_stay_bounded():
    """Crowds come and go: held and lost ids never exceed their caps, and
    every id that goes is reported retired once."""
    tracker = Tracker(max_lost=3, max_tracks=5, min_hits=1, max_lost_s=10.0)
    given: set[int] = set()
    retired: list[int] = []
    rng = np.random.default_rng(7)
    for k in range(300):
        xs = rng.uniform(50, 590, size=int(rng.integers(0, 7)))
        out = tracker.update([person(float(x), w=20.0, h=50.0) for x in xs], k / FPS)
        given |= {p.track_id for p in out if p.track_id >= 0}
        retired += tracker.pop_retired()
        assert len(tracker.active_ids) <= 5
        assert len(tracker.lost_ids) <= 3
    assert len(retired) == len(set(retired))
    assert set(retired) | set(tracker.active_ids) == given


def test_same_frames_same_ids():
    def run() -> list[list[int]]:
        tracker, out = Tracker(), []
        rng = np.random.default_rng(3)
        for k in range(120):
            people = [
                person(100 + 2 * k + rng.normal(0, 3)),
                person(500 - 2 * k + rng.normal(0, 3)),
            ]
            if 40 <= k < 70:
                people = people[:1]  # the second is hidden for 1 s
            frame = frame_with((people[0], RED, GREY), *[(p, BLUE, GREEN) for p in people[1:]])
            out.append(ids(tracker.update([dressed(p) for p in people], k / FPS, frame)))
        return out

    first = run()
    assert first == run()
    assert {i for frame in first for i in frame} == {-1, 1, 2}


def test_time_going_backwards_starts_over():
    tracker = Tracker(min_hits=1)
    (a,) = tracker.update([person(100)], 5.0)
    (b,) = tracker.update([person(100)], 0.0)
    assert b.track_id != a.track_id
    assert tracker.pop_retired() == [a.track_id]


def test_reset_retires_everyone():
    tracker = Tracker(min_hits=1)
    out = tracker.update([person(100), person(400)], 0.0)
    tracker.reset()
    assert sorted(tracker.pop_retired()) == sorted(ids(out))
    assert tracker.active_ids == []


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({}, nullcontext()),
        ({"max_lost_s": 0.0}, pytest.raises(UserError, match="max_lost_s")),
        ({"max_lost": -1}, pytest.raises(UserError, match="max_lost")),
        ({"max_tracks": 0}, pytest.raises(UserError, match="max_tracks")),
        ({"min_hits": 0}, pytest.raises(UserError, match="min_hits")),
        ({"max_shift": 0.0}, pytest.raises(UserError, match="max_shift")),
        ({"max_reach": 0.1}, pytest.raises(UserError, match="max_reach")),
        ({"max_colour_distance": 0.0}, pytest.raises(UserError, match="colour")),
        ({"velocity_smoothing": 0.0}, pytest.raises(UserError, match="velocity")),
    ],
)
def test_constructor_checks_arguments(kwargs, expect):
    with expect:
        Tracker(**kwargs)

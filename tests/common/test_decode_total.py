"""`decode()` is total: whatever bytes arrive, it returns a message or raises
`MessageError`, with what the peer sent only truncated in the error text;
masks and boxes are bounded by the frame they belong to."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.common.messages import (
    SCHEMA_VERSION,
    EndOfStream,
    FrameMeta,
    FramePacket,
    MessageError,
    PersonInstance,
    PersonJoints,
    PersonScore,
    SessionState,
    StageReport,
    decode,
)

MAX_ERROR_CHARS = 400


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def frame(width: int = 64, height: int = 48, **changes) -> FramePacket:
    meta = FrameMeta("cam", 7, 6, 123, 1.5, 0.25, width, height, total=100, chunk=0)
    return FramePacket(meta=meta, **changes)


def joints(track: int = 3) -> PersonJoints:
    return PersonJoints(
        track,
        np.full((NUM_LANDMARKS, 2), 10.0, np.float32),
        np.full(NUM_LANDMARKS, 0.9, np.float32),
        np.zeros((NUM_LANDMARKS, 3), np.float32),
    )


def valid_messages() -> list[list[bytes]]:
    person = PersonInstance((2.0, 3.0, 12.5, 20.0), 0.8, np.ones((17, 11), bool), 4, joints())
    pixels = np.zeros((48, 64, 3), np.uint8)
    full = frame(
        pixels=pixels,
        persons=(person,),
        joints=(joints(),),
        scores=(PersonScore(3, {"knee": 91.5}, "squat", 2, 1, "down", 0.7, "lower"),),
    )
    report = StageReport("joints", 42, 10, 9, {"stale": 1}, {"malformed": 2}, 0, 3.0, 1, 2, 50, 60)
    state = SessionState("cam", 5, 1, 100, 4, 0.2, 1e9, False, "", (PersonScore(1),))
    wires = [
        full.to_wire(),
        full.to_wire(with_pixels=False),
        EndOfStream("cam", 6, 7, 0, "end of file").to_wire(),
        state.to_wire(),
        report.to_wire(),
    ]
    return [[bytes(memoryview(p)) for p in wire] for wire in wires]


VALID = valid_messages()


def assert_total(parts) -> None:
    """decode() returns a message or raises MessageError with a short text."""
    try:
        decode(parts)
    except MessageError as error:
        assert len(str(error)) < MAX_ERROR_CHARS, str(error)[:200]


def nested(depth: int, leaf=2):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --- the findings, one by one


@pytest.mark.parametrize(
    "header",
    [
        {"v": SCHEMA_VERSION, "type": []},  # unhashable type: was a TypeError
        {"v": SCHEMA_VERSION, "type": {"a": 1}},
        {"v": nested(1000), "type": "frame"},  # was RecursionError while printing
        {"v": SCHEMA_VERSION, "type": nested(1000, "frame")},
        {"v": True, "type": "eos"},
        {"v": 2.0, "type": "eos"},
    ],
)
def test_hostile_headers_are_rejected_not_raised(header):
    with pytest.raises(MessageError) as caught:
        decode([pack(header)])
    assert len(str(caught.value)) < MAX_ERROR_CHARS


def test_a_long_value_is_truncated_in_the_error_text():
    with pytest.raises(MessageError) as caught:
        decode([pack({"v": "x" * 100_000, "type": "frame"})])
    assert len(str(caught.value)) < 200


def _frame_header(**changes) -> dict:
    head = frame().header()
    head.update(changes)
    return head


def test_a_mask_far_larger_than_its_frame_is_refused():
    side = 5000  # a 64x48 frame
    person = {"box": [0, 0, side, side], "score": 0.9, "track": 1}
    person["mask"] = b"\xff" * ((side * side + 7) // 8)
    with pytest.raises(MessageError, match="outside the 64x48 frame"):
        decode([pack(_frame_header(persons=[person]))])


@pytest.mark.parametrize(
    "box, ok",
    [
        ([0, 0, 64, 48], True),
        ([-20, -10, 80, 60], True),  # a crop reaching past the edges: within the margin
        ([-40, 0, 10, 10], False),
        ([0, 0, 10, 100], False),
        ([0, 0, float("nan"), 10], False),
        ([0, 0, True, 10], False),
    ],
)
def test_person_boxes_are_bounded_by_their_frame(box, ok):
    person = {"box": box, "score": 0.5, "track": -1}
    parts = [pack(_frame_header(persons=[person]))]
    if ok:
        assert isinstance(decode(parts), FramePacket)
    else:
        with pytest.raises(MessageError):
            decode(parts)


def test_lists_in_a_frame_are_bounded():
    persons = [{"box": [0, 0, 1, 1], "score": 0.5, "track": i} for i in range(300)]
    with pytest.raises(MessageError, match="entries"):
        decode([pack(_frame_header(persons=persons))])


@pytest.mark.parametrize(
    "field, value",
    [
        ("dropped", {"stale": "many"}),
        ("rejected", {"x" * 200: 1}),
        ("rejected", {str(i): 1 for i in range(100)}),
        ("dropped", {"stale": -1}),
        ("stage", ""),
        ("fps", float("inf")),
        ("stations", []),
        ("stations", {f"s{i}": {} for i in range(100)}),
        ("stations", {"x" * 100: {}}),
        ("stations", {"rack1": {"frames": 1}}),
        ("stations", {"rack1": {"frames": 1, "dropped": 0, "fps": 1.0, "age_ms_p95": 1.0,
                                "people": 0, "events": {}, "age_counts": [1, 2],
                                "age_sum_s": 0.1}}),
        ("stations", {"rack1": {"frames": "1", "dropped": 0, "fps": 1.0, "age_ms_p95": 1.0,
                                "people": 0, "events": {}}}),
    ],
)  # fmt: skip
def test_stage_report_fields_are_checked(field, value):
    report = StageReport("joints", 42, 10, 9, {}, {}, 0, 3.0, 1, 2, 50, 60)
    head = msgpack.unpackb(report.to_wire()[0])
    head[field] = value
    with pytest.raises(MessageError):
        decode([pack(head)])


def test_non_finite_landmarks_are_refused():
    bad = joints()
    xy = bad.image_xy.copy()
    xy[0, 0] = np.inf
    wire = frame(joints=(PersonJoints(1, xy, bad.visibility, bad.world_xyz),)).to_wire()
    with pytest.raises(MessageError, match="non-finite"):
        decode(wire)


def test_valid_messages_still_round_trip():
    for parts in VALID:
        assert decode(parts) is not None


# --- properties over random and mutated input

wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.lists(st.binary(max_size=200), max_size=4))
def test_random_bytes_never_escape(parts):
    assert_total(parts)


@FAST
@given(st.sampled_from(VALID), st.data())
def test_bit_flips_and_truncations_never_escape(parts, data):
    index = data.draw(st.integers(0, len(parts) - 1))
    raw = bytearray(parts[index])
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = list(parts)
    mutated[index] = bytes(raw[:cut] if data.draw(st.booleans()) else raw)
    assert_total(mutated)


def _paths(value, prefix=()):
    """Every (path, value) inside a decoded header."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


@FAST
@given(st.sampled_from(VALID), st.data())
def test_any_field_replaced_by_anything_never_escapes(parts, data):
    head = msgpack.unpackb(parts[0], raw=False)
    paths = [p for p, _ in _paths(head) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        target = head
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = data.draw(wire_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this path
    assert_total([pack(head), *parts[1:]])


@pytest.mark.parametrize("depth", [10, 100, 1000, 5000])
def test_deep_nesting_anywhere_never_escapes(depth):
    for parts in VALID:
        head = msgpack.unpackb(parts[0], raw=False)
        for key in list(head):
            changed = dict(head)
            changed[key] = nested(depth)
            try:
                packed = pack(changed)
            except (ValueError, RecursionError):  # msgpack refuses to pack that deep
                continue
            assert_total([packed, *parts[1:]])


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 1e308, float("nan"), float("-inf")])
def test_huge_numbers_in_every_numeric_field_never_escape(value):
    for parts in VALID:
        head = msgpack.unpackb(parts[0], raw=False)
        for path, item in _paths(head):
            if not path or isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            changed = msgpack.unpackb(parts[0], raw=False)
            target = changed
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            assert_total([pack(changed), *parts[1:]])

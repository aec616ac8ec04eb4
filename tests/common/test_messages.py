"""Every wire type round-trips, and bad messages are refused with a kind."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import msgpack
import numpy as np
import pytest

from repcoach.common.messages import (
    SCHEMA_VERSION,
    EndOfStream,
    FeedbackEvent,
    FrameMeta,
    FramePacket,
    MessageError,
    PersonInstance,
    PersonJoints,
    PersonScore,
    SessionState,
    StageReport,
    StationReport,
    decode,
)


def meta(seq=7, w=64, h=48) -> FrameMeta:
    return FrameMeta("cam", seq, seq - 1, 123456789, 1700000000.5, seq / 30, w, h, total=90)


def person(track=3) -> PersonInstance:
    mask = np.zeros((21, 11), dtype=bool)
    mask[5:15, 2:9] = True
    return PersonInstance((10.4, 5.2, 20.6, 25.9), 0.93, mask, track)


def joints(track=3) -> PersonJoints:
    rng = np.random.default_rng(1)
    return PersonJoints(
        track,
        rng.random((33, 2), dtype=np.float32) * 100,
        rng.random(33, dtype=np.float32),
        rng.random((33, 3), dtype=np.float32),
    )


def full_packet() -> FramePacket:
    pixels = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    return FramePacket(
        meta=meta(),
        pixels=pixels,
        persons=(person(),),
        joints=(joints(),),
        scores=(PersonScore(3, {"left_knee": 91.5}, "squat", 4, 1, "down", 88.0, "Chest up"),),
        events=(FeedbackEvent("cam:7:1", "rep", 3, 7, 0.23, "4!", "info", {"rep": 4}),),
    )


def test_frame_packet_round_trips_with_pixels_masks_and_joints():
    packet = full_packet()
    decoded = decode(packet.to_wire())
    assert decoded.meta == packet.meta
    assert np.array_equal(decoded.pixels, packet.pixels)
    assert decoded.persons[0].box == packet.persons[0].box
    assert np.array_equal(decoded.persons[0].mask, packet.persons[0].mask)
    assert np.allclose(decoded.joints[0].image_xy, packet.joints[0].image_xy)
    assert decoded.scores == packet.scores
    assert decoded.events == packet.events


def test_pixels_travel_as_their_own_part_and_masks_are_bit_packed():
    parts = full_packet().to_wire()
    assert len(parts) == 2 and parts[1].nbytes == 48 * 64 * 3
    header = msgpack.unpackb(parts[0])
    assert len(header["persons"][0]["mask"]) == (21 * 11 + 7) // 8
    without = full_packet().to_wire(with_pixels=False)
    assert len(without) == 1 and decode(without).pixels is None


def test_full_mask_pastes_the_crop_back_in_place():
    p = person()
    full = p.full_mask(64, 48)
    assert full.sum() == p.mask.sum()
    assert full[5 + 10, 10 + 5] and not full[0, 0]


@pytest.mark.parametrize(
    "message",
    [
        EndOfStream("cam", 41, 42, 3, "end of source"),
        EndOfStream("cam", 41, 42, 3, "end of source", station="door"),
        SessionState("cam", 40, 2, 90, 41, 1.4, 1.0, True, "stopped", (PersonScore(1),)),
        SessionState(
            "cam",
            40,
            2,
            90,
            41,
            1.4,
            1.0,
            False,
            "",
            (PersonScore(2, member="ann", heart_rate=131, rr_ms=(458, 461)),),
        ),
        StageReport("joints", 1, 5, 5, {"stale": 1}, {}, 0, 29.5, 3.0, 9.0, 100.0, 120.0),
        StageReport(
            "score",
            1,
            5,
            5,
            {},
            {},
            0,
            29.5,
            3.0,
            9.0,
            100.0,
            120.0,
            latency_counts=(0, 4, 1, *[0] * 10),
            latency_sum_s=0.009,
            stations={
                "rack1": StationReport(
                    5, 1, 29.5, 41.0, 2, {"rep:info": 2}, (0, 0, 0, 0, 2, 3, *[0] * 7), 0.2
                )
            },
        ),  # fmt: skip
    ],
)
def test_small_messages_round_trip(message):
    assert decode(message.to_wire()) == message


def _header(**changes):
    head = full_packet().header(with_pixels=False)
    head.update(changes)
    return [msgpack.packb(head)]


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (full_packet().to_wire(), nullcontext()),
        ([b"\xc1\xc1"], pytest.raises(MessageError, match="malformed")),
        ([msgpack.packb([1, 2])], pytest.raises(MessageError, match="malformed")),
        (_header(v=SCHEMA_VERSION + 1), pytest.raises(MessageError, match="wrong-version")),
        (_header(type="teapot"), pytest.raises(MessageError, match="unknown-type")),
        (_header(meta={"src": "cam"}), pytest.raises(MessageError, match="lacks field 'seq'")),
        (_header(persons="nope"), pytest.raises(MessageError, match="persons is str")),
        (_header(px=True), pytest.raises(MessageError, match="promises pixels")),
        (
            [full_packet().to_wire()[0], b"\x00" * 10],
            pytest.raises(MessageError, match="truncated"),
        ),
        ([b"a", b"b", b"c"], pytest.raises(MessageError, match="expected 1 or 2 parts")),
    ],
)
def test_decode_validates(parts, expected):
    with expected:
        decode(parts)


@pytest.mark.parametrize("counts", [[1, 2, 3], [-1] * 13, ["a"] * 13, [True] * 13])
def test_a_report_with_bad_histogram_counts_is_malformed(counts):
    report = StageReport("score", 1, 5, 5, {}, {}, 0, 29.5, 3.0, 9.0, 100.0, 120.0)
    head = msgpack.unpackb(report.to_wire()[0])
    head["latency_counts"] = counts
    with pytest.raises(MessageError, match="histogram counts"):
        decode([msgpack.packb(head)])


def test_bad_mask_and_joint_sizes_are_truncated_not_crashes():
    head = full_packet().header(with_pixels=False)
    head["persons"][0]["mask"] = b"\x01"
    with pytest.raises(MessageError, match="truncated"):
        decode([msgpack.packb(head)])
    head = full_packet().header(with_pixels=False)
    head["joints"][0]["xy"] = b"\x00" * 8
    with pytest.raises(MessageError, match="truncated"):
        decode([msgpack.packb(head)])


def test_landmarks_found_by_the_segmenter_travel_inside_their_person():
    found = dataclasses.replace(person(track=-1), landmarks=joints(track=-1))
    packet = dataclasses.replace(full_packet(), persons=(found,))
    decoded = decode(packet.to_wire()).persons[0]
    assert decoded.landmarks is not None and decoded.landmarks.track_id == -1
    assert np.array_equal(decoded.landmarks.world_xyz, found.landmarks.world_xyz)
    assert decoded.with_track(5).landmarks is decoded.landmarks
    assert decode(full_packet().to_wire()).persons[0].landmarks is None

    head = packet.header(with_pixels=False)
    head["persons"][0]["landmarks"]["vis"] = b"\x00" * 3
    with pytest.raises(MessageError, match="truncated"):
        decode([msgpack.packb(head)])
    head["persons"][0]["landmarks"] = [1, 2]
    with pytest.raises(MessageError, match="malformed"):
        decode([msgpack.packb(head)])


def test_clothing_colours_travel_inside_their_person_and_are_checked():
    shares = np.full((2, 20), np.nan)
    shares[0] = np.arange(20) / np.arange(20).sum()
    packet = dataclasses.replace(
        full_packet(), persons=(dataclasses.replace(person(), colours=shares),), pixels=None
    )
    decoded = decode(packet.to_wire()).persons[0]
    assert np.array_equal(decoded.colours, shares, equal_nan=True)
    assert decode(full_packet().to_wire()).persons[0].colours is None

    head = packet.header(with_pixels=False)
    for bad in (b"\x00" * 24, b"\x00" * 16 * 200, np.full((2, 3), 7.0).tobytes()):
        head["persons"][0]["colours"] = bad
        with pytest.raises(MessageError, match="malformed"):
            decode([msgpack.packb(head)])


def test_constructors_check_shapes():
    with pytest.raises(ValueError, match="mask must be bool"):
        PersonInstance((0, 0, 10, 10), 0.5, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="image_xy must have shape"):
        PersonJoints(1, np.zeros((17, 2)), np.zeros(33), np.zeros((33, 3)))
    with pytest.raises(ValueError, match="pixels must be uint8"):
        FramePacket(meta(), np.zeros((10, 10, 3), np.uint8))


def test_an_event_of_an_unknown_kind_or_severity_is_malformed():
    from repcoach.common.messages import EventKind, FeedbackEvent, Severity

    event = FeedbackEvent("e1", EventKind.REP, 1, 5, 0.2, "Rep 1", Severity.INFO)
    wire = event.to_wire()
    assert wire["kind"] == "rep" and type(wire["kind"]) is str
    assert FeedbackEvent.from_wire(wire) == event
    with pytest.raises(MessageError, match="event kind 'teapot' unknown .valid: rep, partial_rep"):
        FeedbackEvent.from_wire(wire | {"kind": "teapot"})
    with pytest.raises(MessageError, match=r"event severity 'x+\.\.\.x+' unknown"):
        FeedbackEvent.from_wire(wire | {"sev": "x" * 1000})


@pytest.mark.parametrize("rr", [[0], [70_000], [1.5], [True], "500", list(range(1, 40))])
def test_a_score_with_bad_rr_intervals_is_malformed(rr):
    wire = PersonScore(2, heart_rate=120).to_wire() | {"rr": rr}
    with pytest.raises(MessageError, match="score.rr"):
        PersonScore.from_wire(wire)

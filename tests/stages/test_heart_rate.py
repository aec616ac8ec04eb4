"""Heart-rate readings: notifications from a strap (untrusted bytes), the
sample the score stage takes, `--strap` values, and a person's trace."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repcoach.common.config import make_straps
from repcoach.common.errors import UserError
from repcoach.common.messages import HeartRateSample, MessageError
from repcoach.stages.coaching.heart import HeartTrace, time_in_zones, zone_of
from repcoach.stages.wearables import Measurement, parse_measurement


def test_measurements_in_every_layout_the_service_allows():
    assert parse_measurement(bytes([0x00, 72])) == Measurement(72, ())
    assert parse_measurement(bytes([0x01]) + struct.pack("<H", 201)) == Measurement(201, ())
    rr = struct.pack("<HH", 800, 820)
    assert parse_measurement(bytes([0x10, 75]) + rr) == Measurement(75, (800 / 1024, 820 / 1024))
    energy = struct.pack("<H", 12)
    assert parse_measurement(bytes([0x18, 75]) + energy + rr).rr == (800 / 1024, 820 / 1024)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x01\x48", b"\x00\x00", b"\x10\x48\x01", b"\x08\x48\x01", b"\x01\xff\xff"],
)
def test_what_is_not_a_measurement_is_refused(data):
    assert parse_measurement(data) is None


@given(st.binary(max_size=40))
def test_any_bytes_parse_or_are_refused_without_raising(data):
    measurement = parse_measurement(data)
    assert measurement is None or (0 < measurement.bpm < 300 and len(measurement.rr) <= 16)


def test_a_sample_is_checked_when_it_arrives():
    sample = HeartRateSample("C0:11:22:33:44:55", "alice", "", 120, (0.5,), 1000.0)
    assert HeartRateSample.from_plain(sample.to_plain()) == sample
    gap = HeartRateSample("C0:11:22:33:44:55", "", "rack1", None, (), 1000.0)
    assert HeartRateSample.from_plain(gap.to_plain()) == gap
    for bad in (
        {},
        {"heart_rate": []},
        {"heart_rate": {**sample.to_plain()["heart_rate"], "bpm": 900}},
        {"heart_rate": {**sample.to_plain()["heart_rate"], "rr": [1.0] * 40}},
        {"heart_rate": {**sample.to_plain()["heart_rate"], "member": "x" * 500}},
        {"heart_rate": {**sample.to_plain()["heart_rate"], "t_wall": "now"}},
    ):
        with pytest.raises(MessageError):
            HeartRateSample.from_plain(bad)


def test_strap_options_are_one_line_each():
    straps = make_straps(["c0:11:22:33:44:55=alice", "C0:11:22:33:44:66@rack1"])
    assert [(s.address, s.member, s.station) for s in straps] == [
        ("C0:11:22:33:44:55", "alice", ""),
        ("C0:11:22:33:44:66", "", "rack1"),
    ]
    for text in ("C0:11:22:33:44:55", "strap=alice", "C0:11:22:33:44:55=", "C0:11@rack"):
        with pytest.raises(UserError, match="ADDRESS=MEMBER or ADDRESS@STATION"):
            make_straps([text])
    with pytest.raises(UserError, match="given twice"):
        make_straps(["C0:11:22:33:44:55=a", "C0:11:22:33:44:55=b"])


def test_a_trace_shows_no_value_in_a_gap_or_when_stale():
    trace = HeartTrace()
    assert trace.now(at=100.0) is None
    trace.add(100.0, 120)
    assert trace.now(at=101.0) == 120
    assert trace.now(at=110.0) is None  # stale: never carried over
    trace.add(101.0, None)
    assert trace.now(at=101.5) is None  # the strap went away
    assert trace.rr_now(at=101.5) == ()
    trace.add(102.0, 130, rr=(0.4619, 0.4600))
    assert trace.rr_now(at=102.5) == (462, 460)
    trace.add(103.0, 140)
    assert trace.rr_now(at=103.5) == ()  # that reading came without intervals
    assert trace.rr_now(at=120.0) == ()
    rep = {"start_pts": 1.5, "end_pts": 3.5}
    assert trace.during(t_wall=104.0, pts=4.0, rep=rep) == {"hr_mean": 135, "hr_peak": 140}
    assert trace.during(t_wall=104.0, pts=4.0, rep={}) == {}


def test_zones_are_shares_of_the_maximum():
    assert [zone_of(bpm, 200) for bpm in (99, 100, 119, 120, 140, 160, 180, 230)] == [
        0, 1, 1, 2, 3, 4, 5, 5,
    ]  # fmt: skip


def test_time_in_zones_counts_measured_time_only():
    nan = math.nan
    times = [0.0, 0.1, 0.2, 0.3, nan, 5.0, 5.1, 9.0]
    bpms = [110, 110, 150, nan, nan, 185, 185, 185]  # a gap, a break, a long silence
    seconds = time_in_zones(times, bpms, 200, gap_s=1.0)
    assert seconds == pytest.approx([0, 0.2, 0, 0.1, 0, 0.1 + 1.0])
    assert time_in_zones([], [], 200, 1.0) == [0.0] * 6

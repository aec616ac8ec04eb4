"""Frame age on the capture's host and on another one."""

import time

import pytest

from repcoach.common.clock import CLOCK_ID, frame_age_s
from repcoach.common.messages import FrameMeta, MessageError


def test_on_the_capture_host_age_follows_the_monotonic_clock():
    # The wall stamp is deliberately wrong (a clock step after capture):
    # the steady clock decides.
    ten_s_ago = time.monotonic_ns() - 10_000_000_000
    age = frame_age_s(ten_s_ago, time.time() + 3600.0, CLOCK_ID)
    assert age == pytest.approx(10.0, abs=0.5)


def test_on_another_host_age_follows_the_wall_clock():
    # A worker host up for a year longer than the capture host: its
    # monotonic clock is a year ahead, which must not make frames look old.
    year_ns = 365 * 24 * 3600 * 10**9
    age = frame_age_s(time.monotonic_ns() - year_ns, time.time() - 0.2, "capture-host")
    assert age == pytest.approx(0.2, abs=0.1)


def test_a_capture_clock_slightly_ahead_gives_age_zero_not_negative():
    assert frame_age_s(0, time.time() + 0.05, "capture-host") == 0.0


def test_the_clock_id_travels_with_the_frame_and_is_bounded():
    meta = FrameMeta("cam", 1, 0, time.monotonic_ns(), time.time(), 0.0, 64, 48, clock=CLOCK_ID)
    assert FrameMeta.from_wire(meta.to_wire()).clock == CLOCK_ID
    wire = meta.to_wire() | {"clk": "x" * 65}
    with pytest.raises(MessageError, match="clock id of 65 characters"):
        FrameMeta.from_wire(wire)

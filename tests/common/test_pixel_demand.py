"""Pixels past the segment workers only while a sink takes video: the score
stage's word on the tap (b"px") decides, over real sockets."""

from __future__ import annotations

import time

import numpy as np
import pytest

from repcoach.common import graph, transport
from repcoach.common.config import FlowPolicy, PipelineConfig, make_stations
from repcoach.common.endpoints import Topology
from repcoach.common.messages import FrameMeta, FramePacket
from repcoach.common.runner import TOPIC_PIXELS, PixelDemand


@pytest.fixture
def tap(tmp_path, monkeypatch):
    monkeypatch.setenv("REPCOACH_RUN_DIR", str(tmp_path))
    config = PipelineConfig(
        "px", make_stations(["a.mp4"]), FlowPolicy.LOSSLESS, topology=Topology.local("px").to_dict()
    )
    sock = graph.open_port(config, "score", "tap")
    yield config, sock
    transport.close_all(sock)


def _frame() -> FramePacket:
    meta = FrameMeta(
        source_id="a.mp4", seq=0, prev_seq=-1, pts=0.0, t_mono_ns=0, t_wall=0.0,
        clock="test", width=4, height=2, total=1,
    )  # fmt: skip
    return FramePacket(meta=meta, pixels=np.zeros((2, 4, 3), np.uint8))


def _say(tap_sock, demand: PixelDemand, parts: list[bytes], expected: bool) -> None:
    """Publish until the subscriber has heard (a new SUB joins after a moment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        while tap_sock.poll(0):  # subscription notices
            transport.recv_parts(tap_sock)
        transport.send(tap_sock, parts)
        time.sleep(0.02)
        if demand() is expected:
            return
    raise AssertionError(f"the demand never became {expected}")


def test_pixels_travel_only_while_a_sink_takes_video(tap):
    config, tap_sock = tap
    rejects = transport.RejectCounter("joints")
    demand = PixelDemand(config, "joints", rejects)
    try:
        assert demand.pass_on(_frame()).pixels is not None  # nothing said yet: they travel
        _say(tap_sock, demand, [TOPIC_PIXELS, b"0"], False)
        stripped = demand.pass_on(_frame())
        assert stripped.pixels is None and not stripped.tombstone
        assert stripped.to_wire()[0] and len(stripped.to_wire()) == 1
        _say(tap_sock, demand, [TOPIC_PIXELS, b"1"], True)
        assert demand.pass_on(_frame()).pixels is not None
        # A malformed word is counted and changes nothing.
        transport.send(tap_sock, [TOPIC_PIXELS, b"maybe"])
        transport.send(tap_sock, [TOPIC_PIXELS])
        deadline = time.monotonic() + 10
        while rejects.counts["malformed"] < 2 and time.monotonic() < deadline:
            demand()
            time.sleep(0.02)
        assert rejects.counts["malformed"] == 2 and demand() is True
    finally:
        demand.close()


def test_a_stage_whose_successor_uses_the_pixels_never_drops_them(tap):
    config, tap_sock = tap
    demand = PixelDemand(config, "segment", transport.RejectCounter("segment-0"), needed=True)
    transport.send(tap_sock, [TOPIC_PIXELS, b"0"])
    assert demand.sub is None and demand.pass_on(_frame()).pixels is not None
    demand.close()

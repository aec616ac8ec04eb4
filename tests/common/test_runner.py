"""The stage roles in one process, over real ipc sockets opened from the
pipeline graph: capture's dispatcher, the ordered joints stage and the
publisher, each run by the one loop on a thread while the test plays the
stages around it. Every receive has a timeout, so a fault fails, never hangs."""

from __future__ import annotations

import dataclasses
import signal
import threading

import numpy as np
import pytest

from repcoach.common import graph, transport
from repcoach.common.config import FlowPolicy, PipelineConfig, Station
from repcoach.common.dispatch import EOS_KEY, HELLO, STOP, Dispatcher, FairShare, done
from repcoach.common.endpoints import Topology
from repcoach.common.loop import run_loop
from repcoach.common.messages import (
    EndOfStream,
    FrameMeta,
    FramePacket,
    PersonScore,
    SessionState,
    StageReport,
    decode,
    encode_plain,
)
from repcoach.common.runner import (
    TOPIC_EOS,
    TOPIC_RESULT,
    TOPIC_STATE,
    OrderedStage,
    Publisher,
)
from repcoach.common.stage_context import StageContext
from repcoach.stages.base import PassThrough

WAIT_MS = 10_000


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("REPCOACH_RUN_DIR", str(tmp_path))
    return PipelineConfig(
        "rt",
        (Station("a", "a.mp4"), Station("b", "b.mp4")),
        FlowPolicy.LOSSLESS,
        topology=Topology.local("rt").to_dict(),
        stall_s=10,
    )


@pytest.fixture
def context(config):
    """A stage context; its signal handlers are the test process's only for the test."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    made: list[StageContext] = []

    def make(name: str, with_config: PipelineConfig | None = None) -> StageContext:
        made.append(StageContext(name, with_config or config, supervised=False))
        return made[-1]

    yield make
    for ctx in made:
        ctx.close()
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def receive(sock) -> list:
    assert sock.poll(WAIT_MS), "nothing arrived in time"
    return transport.recv_parts(sock)


def frame(seq: int, prev_seq: int, station: str = "a") -> FramePacket:
    meta = FrameMeta(
        f"{station}.mp4", seq, prev_seq, 0, 0.0, seq / 30, 4, 2, total=3, clock="t", station=station
    )
    return FramePacket(meta, pixels=np.full((2, 4, 3), seq, np.uint8))


def eos(station: str, last_seq: int = 2) -> EndOfStream:
    return EndOfStream(f"{station}.mp4", last_seq, last_seq + 1, 0, "end of file", station)


class Peer(threading.Thread):
    """A neighbouring stage, played on its own thread with its own sockets
    (as in the pipeline, every socket lives in one thread); the role under
    test runs in the test's own thread, as in a stage process."""

    def __init__(self, play, *args):
        super().__init__(daemon=True)
        self.play, self.args = play, args
        self.result = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.play(*self.args)
        except BaseException as error:  # reported by `outcome`
            self.error = error

    def outcome(self):
        self.join(WAIT_MS / 1000)
        assert not self.is_alive(), "the peer did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def test_the_ordered_stage_puts_each_stations_frames_in_order_and_ends_at_every_eos(
    config, context
):
    ctx = context("joints")
    stage = OrderedStage(PassThrough, ctx)

    def worker():
        out, peer = graph.open_port(config, "segment", "segmented")
        try:
            transport.send(out, _a_report().to_wire())  # no business here: counted
            for packet in (frame(2, 1), frame(1, 0, "b"), frame(0, -1), frame(1, 0), eos("a")):
                transport.send(out, packet.to_wire())
            # b's first frame comes last: b's frames wait for it, a's do not.
            for packet in (frame(2, 1, "b"), eos("b"), frame(0, -1, "b")):
                transport.send(out, packet.to_wire())
            peer.wait_until_gone(lambda: False, WAIT_MS / 1000)  # the stage has it all
        finally:
            peer.close()
            transport.close_all(out)

    def score():
        inbox = graph.open_port(config, "score", "joined")
        try:
            return [decode(receive(inbox)) for _ in range(8)]
        finally:
            transport.close_all(inbox)  # leaving lets the stage finish its hand-over

    sender, receiver = Peer(worker), Peer(score)
    run_loop(ctx, stage)
    out = receiver.outcome()
    sender.outcome()
    a = [m for m in out if _station(m) == "a"]
    b = [m for m in out if _station(m) == "b"]
    assert [m.meta.seq for m in a[:3]] == [0, 1, 2] == [m.meta.seq for m in b[:3]]
    assert isinstance(a[3], EndOfStream) and isinstance(b[3], EndOfStream)
    assert out.index(a[3]) < out.index(b[0]), "station a waited for station b"
    assert ctx.rejects.counts["unknown-type"] == 1
    # No score stage has said whether a sink takes video: pixels travel.
    assert [int(m.pixels[0, 0, 0]) for m in a[:3]] == [0, 1, 2]


def _a_report() -> StageReport:
    return StageReport("joints", 1, 0, 0, {}, {}, 0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _a_state() -> SessionState:
    return SessionState("a.mp4", 0, 0, 3, -1, 0.0, 0.0, False, "", station="a")


def _station(message) -> str:
    return message.meta.station if isinstance(message, FramePacket) else message.station


class Counting:
    """Score logic that counts the frames it saw (the publisher is under test)."""

    def __init__(self) -> None:
        self.seen = 0

    def process(self, packet: FramePacket) -> FramePacket:
        self.seen += 1
        return packet

    def end(self, eos: EndOfStream) -> FramePacket | None:
        return None

    def people(self) -> tuple[PersonScore, ...]:
        return ()


def test_the_publisher_numbers_results_and_ends_with_state_and_eos(config, context):
    config = dataclasses.replace(config, expect_sinks=1)  # frames wait for the sink
    ctx = context("score", config)
    coaches: dict[str, Counting] = {}
    publisher = Publisher(lambda station: coaches.setdefault(station, Counting()), ctx)

    def joints():
        out, peer = graph.open_port(config, "joints", "joined")
        try:
            # A state or a report on the frame socket used to crash the stage.
            transport.send(out, _a_state().to_wire())
            transport.send(out, _a_report().to_wire())
            for seq in range(3):
                transport.send(out, frame(seq, seq - 1).to_wire())
            transport.send(out, eos("a").to_wire())
            transport.send(out, frame(0, -1, "b").to_wire())
            transport.send(out, eos("b", 0).to_wire())
            peer.wait_until_gone(lambda: False, WAIT_MS / 1000)
        finally:
            peer.close()
            transport.close_all(out)

    def sink():
        sub = graph.open_port(config, "sink", "results")
        transport.subscribe(sub, (TOPIC_RESULT, TOPIC_STATE, TOPIC_EOS))
        numbers, states, ended = [], {}, []
        try:
            while len(ended) < 2:
                topic, *rest = [transport.raw_bytes(p) for p in receive(sub)]
                if topic.startswith(TOPIC_RESULT):
                    numbers.append(int.from_bytes(topic[len(TOPIC_RESULT) :], "big"))
                elif topic == TOPIC_STATE:
                    state = decode(rest)
                    states[state.station] = state
                elif topic == TOPIC_EOS:
                    ended.append(decode(rest).station)
            return numbers, states, ended
        finally:
            transport.close_all(sub)

    sender, receiver = Peer(joints), Peer(sink)
    run_loop(ctx, publisher)
    numbers, states, ended = receiver.outcome()
    sender.outcome()
    assert numbers == [0, 1, 2, 3] and ended == ["a", "b"]
    assert all(isinstance(s, SessionState) and s.ended for s in states.values())
    assert (states["a"].frames, states["b"].frames) == (3, 1)
    assert (coaches["a"].seen, coaches["b"].seen) == (3, 1)  # a coach per station
    assert ctx.stats.frames_out == 4
    assert ctx.rejects.counts["unknown-type"] == 2


class Frames:
    """A source of `count` tiny frames."""

    live, fps, source_id = False, 30.0, "mem"

    def __init__(self, count: int, source_id: str = "mem", fps: float = 30.0):
        self.total, self.left, self.source_id, self.fps = count, count, source_id, fps

    def read(self) -> np.ndarray | None:
        if self.left == 0:
            return None
        self.left -= 1
        return np.zeros((2, 4, 3), np.uint8)

    def close(self) -> None:
        pass


def test_the_dispatcher_deals_every_stations_frames_once_in_turn_then_eos_then_stop(
    config, context
):
    ctx = context("capture")

    def worker():
        sock = graph.open_port(config, "segment", "work", identity=b"segment-0")
        try:
            # As a worker does, it says hello until capture answers.
            for _ in range(10):
                transport.send(sock, [HELLO, encode_plain({"credits": 2})])
                if sock.poll(1000):
                    break
            keys = []
            while True:
                parts = receive(sock)
                if transport.raw_bytes(parts[0]) == STOP:
                    return keys
                message = decode(parts)
                key = message.meta.seq if isinstance(message, FramePacket) else EOS_KEY
                keys.append((_station(message), key))
                transport.send(sock, done(key, _station(message)))
        finally:
            transport.close_all(sock)

    peer = Peer(worker)
    Dispatcher(ctx, [Frames(5, "a.mp4"), Frames(3, "b.mp4")]).run()
    keys = peer.outcome()
    for station, count in (("a", 5), ("b", 3)):
        assert [k for s, k in keys if s == station] == [*range(count), EOS_KEY]
    # Neither station waited for the other's end: b's frames came among a's.
    first_b, last_a = keys.index(("b", 0)), keys.index(("a", 4))
    assert first_b < last_a


def test_stations_share_by_frame_rate_and_one_coming_back_starts_level():
    share = FairShare([30.0, 15.0, 30.0])

    def serve(count: int, ready: set[int]) -> list[int]:
        served = []
        for _ in range(count):
            index = next(i for i in share.order() if i in ready)
            share.served(index)
            served.append(index)
        return served

    # While all three have frames: shares by frame rate (2 : 1 : 2).
    first = serve(50, {0, 1, 2})
    assert [first.count(i) for i in range(3)] == [20, 10, 20]
    # Station 2's camera drops for a while; the others share its part.
    away = serve(30, {0, 1})
    assert [away.count(i) for i in range(2)] == [20, 10]
    # Back: level with the others, not owed the frames it missed.
    back = serve(10, {0, 1, 2})
    assert [back.count(i) for i in range(3)] == [4, 2, 4]

"""The socket loops that run a stage's logic. Stage logic never sees a socket.

    capture (dispatch.py) --ROUTER/DEALER credits--> segment workers x N
        --PUSH/PULL--> joints (re-orders by prev_seq) --PUSH/PULL--> score
        --XPUB topics--> sinks (SUB), plus a snapshot ROUTER for late joiners

Published topics: b"res" + 8-byte publication number (per-frame results, no
pixels), b"vid" (the same with pixels, only sent while someone subscribes),
b"st" (SessionState, twice a second and on request), b"eos"; on the tap
also b"px" (whether any sink takes video: the segment workers and the joints
stage pass a frame's pixels on only while one does, see `PixelDemand`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from typing import Protocol

from repcoach.common import graph, transport
from repcoach.common.chunks import continues
from repcoach.common.clock import frame_age_s
from repcoach.common.config import FlowPolicy, PipelineConfig
from repcoach.common.dispatch import DONE, EOS_KEY, HELLO, MAX_CREDITS, STOP
from repcoach.common.messages import (
    EndOfStream,
    FrameMeta,
    FramePacket,
    MessageError,
    PersonScore,
    SessionState,
    encode_plain,
    short,
)
from repcoach.common.reorder import MAX_HELD, Reorderer
from repcoach.common.stage_context import StageContext
from repcoach.stages.base import CountsDrops, PacketStage, Segmenter

log = logging.getLogger(__name__)

TOPIC_RESULT = b"res"
TOPIC_VIDEO = b"vid"
TOPIC_STATE = b"st"
TOPIC_EOS = b"eos"
# On the tap only: b"1" while some sink takes frames with pixels (or the
# built-in sinks have not all subscribed yet), else b"0" (see PixelDemand).
TOPIC_PIXELS = b"px"
SNAPSHOT = b"SNAPSHOT"
STATE_INTERVAL_S = 0.5
IDLE_HELLO_S = 2.0
SILENCE_S = 5.0  # state is published twice a second: this long without any is telling
# Live: how fast seq may run ahead of the last released frame while nothing
# is released (capture skips frames while no worker is free); well above any
# camera's frame rate.
LIVE_SEQ_PER_S = 240.0
_TOPICS = (TOPIC_RESULT, TOPIC_VIDEO, TOPIC_STATE, TOPIC_EOS, TOPIC_PIXELS)


def _age_s(packet: FramePacket) -> float:
    meta = packet.meta
    return frame_age_s(meta.t_mono_ns, meta.t_wall, meta.clock)


def _hand_over(out, peer: transport.PeerWatch, ctx: StageContext) -> None:
    """Close a stage's output to the next stage without losing what it holds.
    Lossless: whatever was sent is owed downstream (capture counts a frame
    done once a worker has queued its result), so the connection stays open
    until the next stage leaves, which it does after end-of-stream (see
    `PeerWatch`), for as long as the stall watchdog would wait. Live: a short
    grace; late frames are stale anyway."""
    linger_ms = transport.OUTPUT_LINGER_MS
    if ctx.config.policy is FlowPolicy.LOSSLESS:
        stall_s = ctx.config.stall_s
        peer.wait_until_gone(ctx.should_stop, stall_s if stall_s > 0 else None)
        linger_ms = -1 if stall_s <= 0 else max(int(stall_s * 1000), linger_ms)
    peer.close()
    transport.close_linger(out, linger_ms)


def _is_stale(ctx: StageContext, packet: FramePacket) -> bool:
    return ctx.config.policy is FlowPolicy.LATEST and _age_s(packet) > ctx.config.max_age_s


class PixelDemand:
    """Whether a frame's pixels must travel past this stage. A frame is
    megabytes and every hop copies it; past the segment workers only a sink
    showing video needs them (the workers measured what the tracker needs).
    The score stage says on the tap whether any sink takes video; until it
    has said anything, pixels travel. `needed`: the next stage works on the
    pixels itself (a landmark model in the joints stage), so they always do."""

    def __init__(
        self,
        config: PipelineConfig,
        kind: str,
        rejects: transport.RejectCounter,
        needed: bool = False,
    ):
        self.rejects = rejects
        self.wanted = True
        self.sub = None if needed else graph.open_port(config, kind, "tap")
        if self.sub is not None:
            transport.subscribe(self.sub, (TOPIC_PIXELS,))

    def __call__(self) -> bool:
        while self.sub is not None and self.sub.poll(0):
            parts = [transport.raw_bytes(p) for p in transport.recv_parts(self.sub)]
            if len(parts) == 2 and parts[0] == TOPIC_PIXELS and parts[1] in (b"0", b"1"):
                self.wanted = parts[1] == b"1"
            else:
                self.rejects.reject(MessageError("malformed", f"pixel demand {short(parts)}"))
        return self.wanted

    def pass_on(self, packet: FramePacket) -> FramePacket:
        """`packet`, without its pixels if nobody further on wants them."""
        if packet.pixels is None or self():
            return packet
        return packet.replace(pixels=None)

    def close(self) -> None:
        transport.close_all(self.sub)


# --- segment workers


def run_segment_worker(
    segmenter: Segmenter, ctx: StageContext, identity: str, joints_use_pixels: bool = True
) -> None:
    work = graph.open_port(ctx.config, "segment", "work", identity=identity.encode())
    out, joints = graph.open_port(ctx.config, "segment", "segmented")
    demand = PixelDemand(ctx.config, "segment", ctx.rejects, needed=joints_use_pixels)
    hello = [HELLO, encode_plain({"credits": ctx.config.prefetch})]
    transport.send(work, hello)
    last_message = time.monotonic()
    segmented: FrameMeta | None = None  # the frame whose people the segmenter follows
    try:
        while not ctx.should_stop():
            ctx.tick()
            if not work.poll(100):
                # Idle: say hello again so a restarted capture learns about us.
                if time.monotonic() - last_message > IDLE_HELLO_S:
                    # Never blocks: with capture gone the queue fills, and a
                    # blocked send would not notice a stop request.
                    with contextlib.suppress(transport.Again):
                        transport.send(work, hello, nonblocking=True)
                    last_message = time.monotonic()
                continue
            last_message = time.monotonic()
            parts = transport.recv_parts(work)
            if len(parts) == 1 and transport.raw_bytes(parts[0]) == STOP:
                log.info("capture says the stream is done")
                return
            message = transport.decode_parts(parts, ctx.rejects)
            if isinstance(message, FramePacket):
                ctx.stats.received()
                started = time.perf_counter()
                if _is_stale(ctx, message):
                    ctx.stats.drop("stale")
                    result = message.replace(pixels=None, tombstone=True)
                else:
                    meta = message.meta
                    persons = segmenter.segment(
                        message.pixels, meta.pts, continues(segmented, meta)
                    )
                    segmented = meta
                    result = demand.pass_on(message.replace(persons=tuple(persons)))
                if not transport.send_patiently(out, result.to_wire(), ctx.waiting):
                    return
                ctx.stats.emitted(time.perf_counter() - started)
                transport.send(work, [DONE, str(message.meta.seq).encode()])
            elif isinstance(message, EndOfStream) and transport.send_patiently(
                out, message.to_wire(), ctx.waiting
            ):
                transport.send(work, [DONE, str(EOS_KEY).encode()])
    finally:
        demand.close()
        transport.close_all(work)
        _hand_over(out, joints, ctx)


# --- ordered transform stage (joints)


def _newest_only(items: list, ctx: StageContext) -> list:
    """Keep the last frame of a batch (and end-of-stream); count the rest."""
    frames = [i for i in items if isinstance(i, FramePacket) and not i.tombstone]
    superseded = {id(f) for f in frames[:-1]}
    for _ in superseded:
        ctx.stats.received()
        ctx.stats.drop("superseded")
    return [i for i in items if id(i) not in superseded]


def run_ordered_stage(logic: PacketStage, ctx: StageContext) -> None:
    """Re-orders what the workers send, then runs `logic` on each frame."""
    inbox = graph.open_port(ctx.config, "joints", "segmented")
    out, score = graph.open_port(ctx.config, "joints", "joined")
    demand = PixelDemand(ctx.config, "joints", ctx.rejects)
    live = ctx.config.policy is FlowPolicy.LATEST
    # A restarted stage lost what its predecessor held (counted downstream as
    # dropped); it picks up the order from the first frame that arrives.
    restarted = int(os.environ.get("REPCOACH_RESTARTS", "0")) > 0
    # Live: a full buffer skips the missing frame, so it stays small (what the
    # workers can have in flight). Lossless: frames cannot be skipped, and a
    # slow worker holding a chunk lets the others run ahead of it by more than
    # capture has in flight, so the bound is a generous frame count.
    max_held = ctx.config.workers * MAX_CREDITS + 24 if live else MAX_HELD
    reorder = Reorderer(
        gap_timeout_s=2 * ctx.config.max_age_s if live else None,
        resume=restarted,
        growth_per_s=LIVE_SEQ_PER_S if live else 0.0,
        max_held=max_held,
    )
    try:
        while not ctx.should_stop():
            ctx.tick()
            released = []
            if inbox.poll(100):
                # Live: take everything that is waiting, so only the newest
                # frame is worked on (the workers can outpace this stage).
                for _ in range(64 if live else 1):
                    message = transport.receive(inbox, ctx.rejects)
                    if message is not None:
                        released += reorder.push(message)
                    if not inbox.poll(0):
                        break
            released += reorder.expire()
            if live:
                released = _newest_only(released, ctx)
            ctx.stats.queue_depth = len(reorder)
            ctx.stats.dropped["duplicate"] = reorder.duplicates
            ctx.stats.dropped["lost"] = reorder.skipped
            if reorder.refused:  # forged or far out-of-order frames
                ctx.rejects.counts["out-of-window"] = reorder.refused
            for item in released:
                if isinstance(item, EndOfStream):
                    logic.end(item)
                    transport.send_patiently(out, item.to_wire(), ctx.waiting)
                    return
                if item.tombstone:
                    continue
                ctx.stats.received()
                if _is_stale(ctx, item):
                    ctx.stats.drop("stale")
                    continue
                started = time.perf_counter()
                result = demand.pass_on(logic.process(item))
                if not transport.send_patiently(out, result.to_wire(), ctx.waiting):
                    return
                ctx.stats.emitted(time.perf_counter() - started)
    finally:
        demand.close()
        transport.close_all(inbox)
        _hand_over(out, score, ctx)


# --- publisher (score)


class ScoringLogic(Protocol):
    """The score stage's logic: `end` may return a last packet of events
    (a hold still under way when the stream ended), published before EOS."""

    def process(self, packet: FramePacket) -> FramePacket: ...

    def end(self, eos: EndOfStream) -> FramePacket | None: ...

    def people(self) -> tuple[PersonScore, ...]: ...


class SessionCounters:
    """What the publisher knows about the session as a whole."""

    def __init__(self) -> None:
        self.source_id = ""
        self.frames = 0
        self.total = 0
        self.last_seq = -1
        self.first_pts: float | None = None
        self.last_pts = 0.0
        self.frame_interval = 0.0
        self.started_wall = time.time()
        self.ended = False
        self.reason = ""
        self.read_at_end: int | None = None
        self.dropped_at_end = 0

    def count(self, packet: FramePacket) -> None:
        meta = packet.meta
        self.source_id, self.total = meta.source_id, meta.total
        if self.first_pts is None:
            self.first_pts = meta.pts
        elif meta.seq > self.last_seq:
            self.frame_interval = (meta.pts - self.last_pts) / max(meta.seq - self.last_seq, 1)
        self.frames += 1
        self.last_seq, self.last_pts = meta.seq, meta.pts

    def end(self, eos: EndOfStream) -> None:
        self.source_id = self.source_id or eos.source_id
        self.ended, self.reason = True, eos.reason
        self.read_at_end = eos.frames_read

    def state(self, people: tuple[PersonScore, ...]) -> SessionState:
        read = self.read_at_end if self.read_at_end is not None else self.last_seq + 1
        duration = 0.0
        if self.first_pts is not None:
            duration = self.last_pts - self.first_pts + self.frame_interval
        return SessionState(
            source_id=self.source_id,
            frames=self.frames,
            dropped=max(read - self.frames, 0),
            total=self.total,
            last_seq=self.last_seq,
            duration_s=round(duration, 3),
            started_wall=self.started_wall,
            ended=self.ended,
            reason=self.reason,
            people=people,
        )


def run_publisher(logic: ScoringLogic, ctx: StageContext) -> None:
    """Scores each frame and publishes results, state and end-of-stream."""
    lossless = ctx.config.policy is FlowPolicy.LOSSLESS
    inbox = graph.open_port(ctx.config, "score", "joined")
    pub = graph.open_port(ctx.config, "score", "results")
    snapshots = graph.open_port(ctx.config, "score", "snapshot")
    # Attached sinks: never waited for. XPUB drops what a subscriber's full
    # queue cannot take, for that subscriber alone (it sees the gap).
    tap = graph.open_port(ctx.config, "score", "tap")
    session = SessionCounters()
    subscribers: dict[object, Counter[bytes]] = {pub: Counter(), tap: Counter()}
    waiting_since = time.monotonic()
    expect_sinks = ctx.config.expect_sinks
    # Until the built-in sinks have subscribed, frames wait upstream (no loss).
    poll_control = transport.Poller(pub, tap, snapshots)
    poll_all = transport.Poller(pub, tap, snapshots, inbox)
    published = 0
    last_state = 0.0
    said_pixels: bool | None = None

    def current_state() -> SessionState:
        return session.state(logic.people())

    def publish(parts: list, topic: bytes = b"") -> None:
        """To the built-in sinks, then the tap; `topic` set: only where
        someone subscribes to it (frames with pixels are costly)."""
        for sock in (pub, tap):
            if topic and subscribers[sock][topic] <= 0:
                continue
            if sock is tap or not lossless:
                with contextlib.suppress(transport.Again):  # XPUB drops for a full peer
                    transport.send(sock, parts, nonblocking=True)
            elif not transport.send_patiently(sock, parts, ctx.waiting):
                ctx.stats.drop("stopped")  # asked to stop while a built-in sink was full

    try:
        while not ctx.should_stop():
            ctx.tick()
            ready_for_frames = subscribers[pub][TOPIC_EOS] >= expect_sinks
            if not ready_for_frames and time.monotonic() - waiting_since > 30:
                log.warning("expected %d sink(s); starting without them", expect_sinks)
                expect_sinks = 0
            ready = (poll_all if ready_for_frames else poll_control).ready(100)
            for sock in (pub, tap):
                while sock in ready and sock.poll(0):
                    change = _subscription(transport.recv_parts(sock), ctx)
                    if change is not None:
                        subscribers[sock][change[0]] += change[1]
            if snapshots in ready:
                while snapshots.poll(0):
                    identity = _snapshot_request(transport.recv_parts(snapshots), ctx)
                    if identity is not None:
                        reply = [b"", *current_state().to_wire()]
                        transport.route(snapshots, identity, reply)
            if inbox in ready:
                message = transport.receive(inbox, ctx.rejects)
                if isinstance(message, FramePacket):
                    ctx.stats.received()
                    started = time.perf_counter()
                    result = logic.process(message)
                    _own_drops(logic, ctx)
                    session.count(result)
                    _count_events(result, ctx)
                    topic = TOPIC_RESULT + published.to_bytes(8, "big")
                    publish([topic, *result.to_wire(with_pixels=False)])
                    if result.pixels is not None:
                        publish([TOPIC_VIDEO, *result.to_wire()], topic=TOPIC_VIDEO)
                    published += 1
                    ctx.stats.emitted(time.perf_counter() - started)
                elif isinstance(message, EndOfStream):
                    final = logic.end(message)
                    if final is not None and final.events:
                        _count_events(final, ctx)
                        topic = TOPIC_RESULT + published.to_bytes(8, "big")
                        publish([topic, *final.to_wire(with_pixels=False)])
                        published += 1
                    session.end(message)
                    publish([TOPIC_STATE, *current_state().to_wire()])
                    publish([TOPIC_EOS, *message.to_wire()])
                    log.info("end of stream (%s): %d frames published", message.reason, published)
                    return
            # Until every built-in sink has subscribed, nobody knows yet
            # whether one of them takes video: pixels travel.
            wants_pixels = not ready_for_frames or any(
                subscribers[sock][TOPIC_VIDEO] > 0 for sock in (pub, tap)
            )
            periodic = time.monotonic() - last_state > STATE_INTERVAL_S
            if periodic or wants_pixels != said_pixels:
                said_pixels = wants_pixels
                with contextlib.suppress(transport.Again):  # the tap drops for a full peer
                    transport.send(
                        tap, [TOPIC_PIXELS, b"1" if wants_pixels else b"0"], nonblocking=True
                    )
            if periodic:
                last_state = time.monotonic()
                state = current_state()
                ctx.stats.people = len(state.people)
                publish([TOPIC_STATE, *state.to_wire()])
    finally:
        transport.close_all(inbox, snapshots)
        transport.close_linger(pub, transport.OUTPUT_LINGER_MS)
        transport.close_linger(tap, transport.OUTPUT_LINGER_MS)


def _count_events(packet: FramePacket, ctx: StageContext) -> None:
    for event in packet.events:
        ctx.stats.events[f"{event.kind}:{event.severity}"] += 1


def _subscription(parts: list, ctx: StageContext) -> tuple[bytes, int] | None:
    """A subscriber joining (+1) or leaving (-1) one of the published topics.
    XPUB also hands up other subscriptions (counted nowhere: they are legal
    but match nothing) and anything an XSUB peer sends (rejected)."""
    event = transport.raw_bytes(parts[0])
    if len(parts) != 1 or not event or event[0] not in (0, 1):
        ctx.rejects.reject(MessageError("malformed", f"subscription event {short(event)}"))
        return None
    topic = event[1:]
    if topic not in _TOPICS:
        return None  # only known topics are tracked: the table stays bounded
    return topic, 1 if event[0] == 1 else -1


def _snapshot_request(parts: list, ctx: StageContext) -> bytes | None:
    """The identity of a well-formed snapshot request ([id, b"", SNAPSHOT]
    from a REQ socket), else None (counted as rejected)."""
    raw = [transport.raw_bytes(p) for p in parts]
    if len(raw) == 3 and raw[1] == b"" and raw[2] == SNAPSHOT:
        return raw[0]
    ctx.rejects.reject(
        MessageError("malformed", f"snapshot request of {len(raw)} part(s) {short(raw[1:3])}")
    )
    return None


def _own_drops(part: object, ctx: StageContext) -> None:
    """What stage logic or a sink refused on its own side (people beyond the
    coach's table, a slow client), if it counts that (`CountsDrops`)."""
    if isinstance(part, CountsDrops):
        for reason, count in part.drops().items():  # running totals
            ctx.stats.dropped[reason] = count


# --- sinks


class Sink(Protocol):
    """A consumer of published results (console, JSONL, summary, ...)."""

    topics: tuple[bytes, ...]

    def on_state(self, state: SessionState) -> None: ...

    def on_result(self, packet: FramePacket) -> None: ...

    def on_eos(self, eos: EndOfStream) -> None: ...

    def tick(self) -> None: ...

    def close(self, missed: int) -> None: ...

    # Optional: `drops()` (`CountsDrops`), what the sink dropped on its own side.


def run_sink(sink: Sink, ctx: StageContext, exit_on_eos: bool = True, feed: str = "results") -> int:
    """Subscribe to `feed` ("results": the sinks `up` started; "tap": sinks
    attached later, cut loose when they fall behind), take the current state
    at once, then follow the stream. Returns how many published results this
    sink missed (also in its reports, so `pipeline status` shows them)."""
    topo = ctx.config.endpoints()
    # Frames with pixels are ~1 MB each: a sink taking them keeps a short queue.
    hwm = 64 if TOPIC_VIDEO in sink.topics else None
    sub = graph.open_port(ctx.config, "sink", feed, hwm=hwm)
    # A sink on both topics gets each frame twice: count it once.
    counted_topic = TOPIC_RESULT if TOPIC_RESULT in sink.topics else TOPIC_VIDEO
    transport.subscribe(sub, (*sink.topics, TOPIC_STATE, TOPIC_EOS))
    reply = transport.request(topo.connect("snapshot"), SNAPSHOT, timeout_s=3.0)
    if reply:
        state = transport.decode_parts(reply, ctx.rejects)
        if isinstance(state, SessionState):
            sink.on_state(state)
    # An attached sink may miss end-of-stream (dropped while it was behind):
    # after a silence it asks whether the pipeline is still there.
    heard_at = time.monotonic() if reply else None
    last_number: int | None = None
    missed = 0
    drops_read = 0.0
    try:
        while not ctx.should_stop():
            ctx.tick()
            sink.tick()
            if time.monotonic() - drops_read > 1.0:
                drops_read = time.monotonic()
                _own_drops(sink, ctx)
            if not sub.poll(100):
                if feed == "tap" and heard_at and time.monotonic() - heard_at > SILENCE_S:
                    if transport.request(topo.connect("snapshot"), SNAPSHOT, 3.0) is None:
                        log.warning("%s: the pipeline is gone (end of stream not seen)", ctx.name)
                        return missed
                    heard_at = time.monotonic()
                continue
            heard_at = time.monotonic()
            for _ in range(1000):  # drain what is queued, then refresh the view
                parts = transport.recv_parts(sub)
                topic = transport.raw_bytes(parts[0])
                message = transport.decode_parts(parts[1:], ctx.rejects)
                if isinstance(message, FramePacket):
                    if topic.startswith(TOPIC_RESULT) and len(topic) == len(TOPIC_RESULT) + 8:
                        number = int.from_bytes(topic[len(TOPIC_RESULT) :], "big")
                        if last_number is not None and number > last_number + 1:
                            missed += number - last_number - 1
                            ctx.stats.dropped["missed"] = missed
                        last_number = number
                    # the score stage's last events-only packet is not a frame
                    counted = topic.startswith(counted_topic) and not message.tombstone
                    if counted:
                        ctx.stats.received()
                        ctx.stats.arrived(_age_s(message))
                    sink.on_result(message)
                    if counted:
                        ctx.stats.emitted()
                elif isinstance(message, SessionState):
                    sink.on_state(message)
                elif isinstance(message, EndOfStream):
                    sink.on_eos(message)
                    if exit_on_eos:
                        return missed
                if not sub.poll(0):
                    break
    finally:
        ctx.stats.dropped["missed"] = missed
        sink.close(missed)
        transport.close_all(sub)
    return missed

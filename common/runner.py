"""Each stage kind's part in the one stage loop (`repcoach.common.loop`): the
segment worker, the ordered joints stage, the publisher and a sink's feed.
Stage logic never sees a socket.

    capture (dispatch.py) --ROUTER/DEALER credits--> segment workers x N
        --PUSH/PULL--> joints (re-orders by prev_seq) --PUSH/PULL--> score
        --XPUB topics--> sinks (SUB), plus a snapshot ROUTER for late joiners

Published topics: b"res" + 8-byte publication number (per-frame results, no
pixels), b"vid" (the same with pixels, only sent while someone subscribes),
b"st" (SessionState, twice a second and on request), b"eos"; on the tap
also b"px" (whether any sink takes video: the segment workers and the joints
stage pass a frame's pixels on only while one does, see `PixelDemand`).

A role opens its sockets from the pipeline graph (`repcoach.common.graph`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from repcoach.common import graph, transport
from repcoach.common.chunks import continues
from repcoach.common.clock import frame_age_s
from repcoach.common.config import MAX_STATIONS, FlowPolicy, PipelineConfig, Station
from repcoach.common.dispatch import EOS_KEY, HELLO, MAX_CREDITS, STOP, done
from repcoach.common.member_codes import CodeScanner
from repcoach.common.messages import (
    EndOfStream,
    FrameMeta,
    FramePacket,
    HeartRateSample,
    MessageError,
    PersonScore,
    SessionState,
    ShownCode,
    decode_plain,
    encode_plain,
    short,
)
from repcoach.common.reorder import MAX_HELD, Reorderer
from repcoach.common.stage_context import StageContext
from repcoach.common.stats import StationStats
from repcoach.stages.base import CountsDrops, PacketStage, Segmenter, batch_of

log = logging.getLogger(__name__)

TOPIC_RESULT = b"res"
TOPIC_VIDEO = b"vid"
TOPIC_STATE = b"st"
TOPIC_EOS = b"eos"
# On the tap only: b"1" while some sink takes frames with pixels (or the
# built-in sinks have not all subscribed yet), else b"0" (see PixelDemand).
TOPIC_PIXELS = b"px"
SNAPSHOT = b"SNAPSHOT"
MAX_CHECK_IN_BYTES = 1024  # a request on the snapshot socket: SNAPSHOT or a check-in
STATE_INTERVAL_S = 0.5
IDLE_HELLO_S = 2.0
SILENCE_S = 5.0  # state is published twice a second: this long without any is telling
# Live: how fast seq may run ahead of the last released frame while nothing
# is released (capture skips frames while no worker is free); well above any
# camera's frame rate.
LIVE_SEQ_PER_S = 240.0
# Check-in codes are looked for on every this many frames (3-4 times a
# second): a member shows theirs for a second or more, and looking costs
# 5-11 ms on a 720p gym frame (less at lower resolutions).
CODE_SCAN_EVERY = 8
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
    """A live station's frame older than `max_age_s` (a file's frames never are)."""
    station = ctx.station(packet.meta.station)
    policy = ctx.config.policy if station is None else station.policy
    return policy is FlowPolicy.LATEST and _age_s(packet) > ctx.config.max_age_s


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


class SegmentWorker:
    """Takes frames from capture (credits), segments them, passes them on."""

    ends_on_stop = True

    def __init__(
        self, segmenter: Segmenter, ctx: StageContext, identity: str, joints_use_pixels: bool
    ):
        self.segmenter, self.ctx = segmenter, ctx
        self.work = graph.open_port(ctx.config, "segment", "work", identity=identity.encode())
        self.out, self.joints = graph.open_port(ctx.config, "segment", "segmented")
        self.demand = PixelDemand(ctx.config, "segment", ctx.rejects, needed=joints_use_pixels)
        self.batch = batch_of(segmenter)
        self.passes = self.batched = 0  # a batching backend's forward passes and their frames
        self.scanner = CodeScanner() if ctx.config.checkin else None
        # A batching backend asks for a batch's worth of frames at a time.
        credits = min(max(ctx.config.prefetch, self.batch), MAX_CREDITS)
        self.hello = [HELLO, encode_plain({"credits": credits})]
        transport.send(self.work, self.hello)
        self.last_message = time.monotonic()
        # Each station's frame whose people it follows (bounded like the segmenter's).
        self.segmented: dict[str, FrameMeta] = {}

    def sockets(self) -> tuple:
        return (self.work,)

    def turn(self, ready: set) -> bool:
        ctx = self.ctx
        if self.work not in ready:
            # Idle: say hello again so a restarted capture learns about us.
            if time.monotonic() - self.last_message > IDLE_HELLO_S:
                # Never blocks: with capture gone the queue fills, and a
                # blocked send would not notice a stop request.
                with contextlib.suppress(transport.Again):
                    transport.send(self.work, self.hello, nonblocking=True)
                self.last_message = time.monotonic()
            return False
        self.last_message = time.monotonic()
        # A batching backend takes what is already waiting, up to its batch
        # (frames of any stations); others take one message a turn.
        messages, stop = [], False
        while len(messages) < self.batch and self.work.poll(0):
            parts = transport.recv_parts(self.work)
            if len(parts) == 1 and transport.raw_bytes(parts[0]) == STOP:
                log.info("capture says the stream is done")
                stop = True
                break
            message = transport.decode_parts(parts, ctx.rejects)
            if isinstance(message, (FramePacket, EndOfStream)):
                messages.append(message)
        started = time.perf_counter()
        frames = [m for m in messages if isinstance(m, FramePacket)]
        fresh = [m for m in frames if not _is_stale(ctx, m)]
        found = self._segment(fresh)
        share = (time.perf_counter() - started) / max(len(frames), 1)
        for message in messages:
            if isinstance(message, EndOfStream):
                if not transport.send_patiently(self.out, message.to_wire(), ctx.waiting):
                    return True
                transport.send(self.work, done(EOS_KEY, message.station))
                continue
            ctx.stats.received()
            if id(message) in found:
                persons = found[id(message)]
                codes = self._codes(message, persons)
                result = self.demand.pass_on(message.replace(persons=tuple(persons), codes=codes))
            else:
                ctx.stats.drop("stale")
                result = message.replace(pixels=None, tombstone=True)
            if not transport.send_patiently(self.out, result.to_wire(), ctx.waiting):
                return True
            ctx.stats.emitted(share)
            transport.send(self.work, done(message.meta.seq, message.meta.station))
        return stop

    def _codes(self, frame: FramePacket, persons: list) -> tuple[ShownCode, ...]:
        """Check-in codes held by the people found, looked for on every
        `CODE_SCAN_EVERY`th frame (by its number, so a file's are the same
        every run) and only around them (a code nobody holds binds nobody)."""
        if self.scanner is None or frame.meta.seq % CODE_SCAN_EVERY:
            return ()
        near = [p.box for p in persons]
        return tuple(ShownCode(*code) for code in self.scanner.scan(frame.pixels, near))

    def _segment(self, frames: list[FramePacket]) -> dict[int, list]:
        """Each frame's people, by `id(frame)`: in one pass for a batching
        backend, else frame by frame, each station's people followed apart."""
        if self.batch > 1 and frames:
            found = self.segmenter.segment_batch([f.pixels for f in frames])
            self.passes += 1
            self.batched += len(frames)
            return {id(f): persons for f, persons in zip(frames, found, strict=True)}
        people = {}
        for frame in frames:
            meta = frame.meta
            self.segmenter.switch_to(meta.station)
            previous = self.segmented.pop(meta.station, None)
            people[id(frame)] = self.segmenter.segment(
                frame.pixels, meta.pts, continues(previous, meta)
            )
            self.segmented[meta.station] = meta
            while len(self.segmented) > MAX_STATIONS:  # forged station names
                del self.segmented[next(iter(self.segmented))]
        return people

    def close(self) -> None:
        if self.passes:
            log.info(
                "%d frames in %d forward passes of up to %d", self.batched, self.passes, self.batch
            )
        self.demand.close()
        transport.close_all(self.work)
        _hand_over(self.out, self.joints, self.ctx)


# --- ordered transform stage (joints)


def _newest_only(items: list, ctx: StageContext) -> list:
    """Keep the last frame of a batch (and end-of-stream); count the rest."""
    frames = [i for i in items if isinstance(i, FramePacket) and not i.tombstone]
    superseded = {id(f) for f in frames[:-1]}
    for _ in superseded:
        ctx.stats.received()
        ctx.stats.drop("superseded")
    return [i for i in items if id(i) not in superseded]


def _frame_or_end(message, ctx: StageContext) -> FramePacket | EndOfStream | None:
    """`message` if it is a frame or an end-of-stream; anything else that
    decoded (a state, a report) has no business on a frame socket: counted."""
    if message is None or isinstance(message, (FramePacket, EndOfStream)):
        return message
    ctx.rejects.reject(MessageError("unknown-type", f"{type(message).__name__} among frames"))
    return None


def _station_of(message: FramePacket | EndOfStream) -> str:
    return message.meta.station if isinstance(message, FramePacket) else message.station


class StationRoster:
    """The stations a stage waits for the end of: those it started with and
    those an end-of-stream names (added since), where the pipeline's config
    has them (a forged name is not waited for)."""

    def __init__(self, ctx: StageContext, names: tuple[str, ...]):
        self.ctx, self.names = ctx, set(names)

    def add(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name not in self.names and self.ctx.station(name) is not None:
                self.names.add(name)

    def all_in(self, ended: set[str]) -> bool:
        return self.names <= ended


class _StationLine:
    """One station's frames in the ordered stage: its re-order buffer and
    its own logic (tracks and their smoothing are per station). `live`: a
    camera's, where only the newest frame is worth working on."""

    def __init__(self, logic: PacketStage, reorder: Reorderer, live: bool):
        self.logic, self.reorder, self.live = logic, reorder, live
        self.ended = False


class OrderedStage:
    """Re-orders what the workers send, station by station, then runs each
    station's own `logic` (made by `make_logic`) on its frames in order."""

    ends_on_stop = True

    def __init__(self, make_logic: Callable[[], PacketStage], ctx: StageContext):
        self.ctx = ctx
        self.inbox = graph.open_port(ctx.config, "joints", "segmented")
        self.out, self.score = graph.open_port(ctx.config, "joints", "joined")
        self.demand = PixelDemand(ctx.config, "joints", ctx.rejects)
        # A restarted stage lost what its predecessor held (counted downstream
        # as dropped); it picks up the order from the first frame that arrives.
        self.restarted = int(os.environ.get("REPCOACH_RESTARTS", "0")) > 0
        self.make_logic = make_logic
        self.lines: dict[str, _StationLine] = {}
        for station in ctx.config.stations:
            self._open_line(station)
        # The stations whose end-of-stream ends this stage: those it started
        # with and those end-of-stream names (added since).
        self.expected = StationRoster(ctx, ctx.config.station_names)

    def _open_line(self, station: Station) -> _StationLine:
        live = station.policy is FlowPolicy.LATEST
        line = _StationLine(self.make_logic(), self._reorderer(self.restarted, live), live)
        self.lines[station.name] = line
        self.any_live = any(line.live for line in self.lines.values())
        return line

    def _reorderer(self, restarted: bool, live: bool) -> Reorderer:
        # Live: a full buffer skips the missing frame, so it stays small (what
        # the workers can have in flight). Lossless: frames cannot be skipped,
        # and a slow worker holding a chunk lets the others run ahead of it by
        # more than capture has in flight, so the bound is a generous count.
        # A restarted lossless stage is the exception: the frames that were on
        # their way to its predecessor are gone, so a gap that holds the line
        # for a quarter of the stall timeout is given up (counted as lost;
        # the run already fails for the restart) instead of stalling it.
        config = self.ctx.config
        gap_timeout_s = 2 * config.max_age_s if live else None
        if restarted and not live:
            gap_timeout_s = config.stall_s / 4
        return Reorderer(
            gap_timeout_s=gap_timeout_s,
            resume=restarted,
            growth_per_s=LIVE_SEQ_PER_S if live else 0.0,
            max_held=config.workers * MAX_CREDITS + 24 if live else MAX_HELD,
        )

    def sockets(self) -> tuple:
        return (self.inbox,)

    def turn(self, ready: set) -> bool:
        ctx = self.ctx
        released: dict[str, list] = {name: [] for name in self.lines}
        if self.inbox in ready:
            # Live: take everything that is waiting, so only the newest frame
            # is worked on (the workers can outpace this stage).
            for _ in range(64 if self.any_live else 1):
                message = _frame_or_end(transport.receive(self.inbox, ctx.rejects), ctx)
                if message is not None:
                    self._push(message, released)
                if not self.inbox.poll(0):
                    break
        for name, line in self.lines.items():
            released[name] += line.reorder.expire()
            if line.live:
                released[name] = _newest_only(released[name], ctx)
        self._count()
        for name, items in released.items():
            if not self._run(self.lines[name], items):
                return True
        ended = {name for name, line in self.lines.items() if line.ended}
        return len(ended) == len(self.lines) and self.expected.all_in(ended)

    def _push(self, message: FramePacket | EndOfStream, released: dict[str, list]) -> None:
        """Into its station's re-order buffer (a station added since this
        stage started gets one); what that releases joins `released`."""
        name = _station_of(message)
        line = self.lines.get(name)
        if line is None:
            station = self.ctx.station(name)
            if station is None:
                self.ctx.rejects.reject(MessageError("unknown-station", f"station {short(name)}"))
                return
            log.info("station %s: first frames", name)
            line = self._open_line(station)
            released.setdefault(name, [])
        released[name] += line.reorder.push(message)

    def _count(self) -> None:
        stats, orders = self.ctx.stats, [line.reorder for line in self.lines.values()]
        stats.queue_depth = sum(len(r) for r in orders)
        stats.dropped["duplicate"] = sum(r.duplicates for r in orders)
        stats.dropped["lost"] = sum(r.skipped for r in orders)
        refused = sum(r.refused for r in orders)
        if refused:  # forged or far out-of-order frames
            self.ctx.rejects.counts["out-of-window"] = refused

    def _run(self, line: _StationLine, items: list) -> bool:
        """Process one station's released items in order; False once a send
        gave up (asked to stop)."""
        ctx = self.ctx
        for item in items:
            if isinstance(item, EndOfStream):
                line.logic.end(item)
                line.ended = True
                self.expected.add(item.stations)
                return transport.send_patiently(self.out, item.to_wire(), ctx.waiting)
            if item.tombstone:
                continue
            ctx.stats.received()
            if _is_stale(ctx, item):
                ctx.stats.drop("stale")
                continue
            started = time.perf_counter()
            result = self.demand.pass_on(line.logic.process(item))
            if not transport.send_patiently(self.out, result.to_wire(), ctx.waiting):
                return False
            ctx.stats.emitted(time.perf_counter() - started)
        return True

    def close(self) -> None:
        self.demand.close()
        transport.close_all(self.inbox)
        _hand_over(self.out, self.score, self.ctx)


# --- publisher (score)


@runtime_checkable
class BindsPeople(Protocol):
    """Scoring logic that knows who people are (`Coach`): `check_in` binds
    a person to a member, None when done, else why not (one line);
    `heart_rate` gives a strap's reading to its wearer, False if they are
    not in view."""

    def check_in(self, track: int, member: str) -> str | None: ...

    def heart_rate(self, sample: HeartRateSample) -> bool: ...


class ScoringLogic(Protocol):
    """The score stage's logic: `end` may return a last packet of events
    (a hold still under way when the stream ended), published before EOS."""

    def process(self, packet: FramePacket) -> FramePacket: ...

    def end(self, eos: EndOfStream) -> FramePacket | None: ...

    def people(self) -> tuple[PersonScore, ...]: ...


class SessionCounters:
    """What the publisher knows about one station's session as a whole."""

    def __init__(self, station: str = "") -> None:
        self.station = station
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
            station=self.station,
        )


class _StationSession:
    """One station's coach, session counters and reported figures in the score stage."""

    def __init__(self, logic: ScoringLogic, name: str):
        self.logic, self.counters, self.stats = logic, SessionCounters(name), StationStats()

    def state(self) -> SessionState:
        return self.counters.state(self.logic.people())


class Publisher:
    """Scores each frame with its station's logic (made by `make_logic(station)`)
    and publishes results, each station's state and end-of-stream."""

    ends_on_stop = True

    def __init__(self, make_logic: Callable[[str], ScoringLogic], ctx: StageContext):
        self.ctx = ctx
        self.make_logic = make_logic
        self.stations: dict[str, _StationSession] = {}
        for name in ctx.config.station_names:
            self._open_session(name)
        self.lossless = ctx.config.policy is FlowPolicy.LOSSLESS
        self.inbox = graph.open_port(ctx.config, "score", "joined")
        self.pub = graph.open_port(ctx.config, "score", "results")
        self.snapshots = graph.open_port(ctx.config, "score", "snapshot")
        # Attached sinks: never waited for. XPUB drops what a subscriber's
        # full queue cannot take, for that subscriber alone (it sees the gap).
        self.tap = graph.open_port(ctx.config, "score", "tap")
        self.subscribers: dict[object, Counter[bytes]] = {self.pub: Counter(), self.tap: Counter()}
        self.waiting_since = time.monotonic()
        self.expect_sinks = ctx.config.expect_sinks
        self.published = 0
        self.last_state = 0.0
        self.said_pixels: bool | None = None

    def ready_for_frames(self) -> bool:
        """Until the built-in sinks have subscribed, frames wait upstream (no loss)."""
        return self.subscribers[self.pub][TOPIC_EOS] >= self.expect_sinks

    def sockets(self) -> tuple:
        control = (self.pub, self.tap, self.snapshots)
        return (*control, self.inbox) if self.ready_for_frames() else control

    def _open_session(self, name: str) -> _StationSession:
        session = self.stations[name] = _StationSession(self.make_logic(name), name)
        self.ctx.stats.stations[name] = session.stats
        return session

    def _session(self, name: str) -> _StationSession | None:
        """`name`'s session, opened (and its state published, so sinks
        know it) when the station was added since this stage started; None
        for a station the pipeline does not have."""
        session = self.stations.get(name)
        if session is None and self.ctx.station(name) is not None:
            log.info("station %s joined", name)
            session = self._open_session(name)
            self._publish_state(session)
        return session

    def states(self) -> list[SessionState]:
        return [station.state() for station in self.stations.values()]

    def publish(self, parts: list, topic: bytes = b"") -> None:
        """To the built-in sinks, then the tap; `topic` set: only where
        someone subscribes to it (frames with pixels are costly)."""
        for sock in (self.pub, self.tap):
            if topic and self.subscribers[sock][topic] <= 0:
                continue
            if sock is self.tap or not self.lossless:
                with contextlib.suppress(transport.Again):  # XPUB drops for a full peer
                    transport.send(sock, parts, nonblocking=True)
            elif not transport.send_patiently(sock, parts, self.ctx.waiting):
                self.ctx.stats.drop("stopped")  # asked to stop while a built-in sink was full

    def publish_result(self, packet: FramePacket) -> None:
        topic = TOPIC_RESULT + self.published.to_bytes(8, "big")
        self.publish([topic, *packet.to_wire(with_pixels=False)])
        self.published += 1

    def turn(self, ready: set) -> bool:
        ctx = self.ctx
        ready_for_frames = self.ready_for_frames()
        if not ready_for_frames and time.monotonic() - self.waiting_since > 30:
            log.warning("expected %d sink(s); starting without them", self.expect_sinks)
            self.expect_sinks = 0
        for sock in (self.pub, self.tap):
            while sock in ready and sock.poll(0):
                change = _subscription(transport.recv_parts(sock), ctx)
                if change is not None:
                    self.subscribers[sock][change[0]] += change[1]
        if self.snapshots in ready:
            while self.snapshots.poll(0):
                request = _snapshot_request(transport.recv_parts(self.snapshots), ctx)
                if request is None:
                    continue
                identity, body = request
                if body == SNAPSHOT:
                    reply = [b"", *(part for st in self.states() for part in st.to_wire())]
                else:
                    reply = [b"", encode_plain(self._request(body))]
                transport.route(self.snapshots, identity, reply)
        if self.inbox in ready and self._take(transport.receive(self.inbox, ctx.rejects)):
            return True
        self._tell_pixels_and_state(ready_for_frames)
        return False

    def _take(self, message) -> bool:
        """Score a frame, or end its station at end-of-stream; True once
        every station has ended."""
        ctx = self.ctx
        message = _frame_or_end(message, ctx)
        if message is None:
            return False
        station = self._session(_station_of(message))
        if station is None:
            ctx.rejects.reject(MessageError("unknown-station", short(_station_of(message))))
            return False
        logic = station.logic
        if isinstance(message, FramePacket):
            ctx.stats.received()
            started = time.perf_counter()
            result = logic.process(message)
            station.counters.count(result)
            station.stats.scored(_age_s(result), _event_names(result))
            self.publish_result(result)
            if result.pixels is not None:
                self.publish([TOPIC_VIDEO, *result.to_wire()], topic=TOPIC_VIDEO)
            ctx.stats.emitted(time.perf_counter() - started)
            return False
        final = logic.end(message)
        if final is not None and final.events:
            station.stats.events.update(_event_names(final))
            self.publish_result(final)
        station.counters.end(message)
        station.stats.ended = message.reason
        # Stations added while this one ran: known (and their state out)
        # before this end-of-stream reaches the sinks, so they wait for them.
        for name in message.stations:
            self._session(name)
        self._publish_state(station)
        _own_drops([s.logic for s in self.stations.values()], ctx)
        self.publish([TOPIC_EOS, *message.to_wire()])
        log.info(
            "%s: end of stream (%s): %d frames published",
            message.station,
            message.reason,
            self.published,
        )
        return all(s.counters.ended for s in self.stations.values())

    def _request(self, body: bytes) -> dict:
        """A request other than a snapshot: a check-in made by hand (the
        dashboard) or a strap's heart-rate reading; the answer says done or
        why not."""
        try:
            request = decode_plain(body)
            if isinstance(request, dict) and "heart_rate" in request:
                return self._heart_rate(HeartRateSample.from_plain(request))
        except MessageError as error:
            self.ctx.rejects.reject(error)
            return {"error": "malformed request"}
        fields = request.get("check_in") if isinstance(request, dict) else None
        if not isinstance(fields, dict):
            self.ctx.rejects.reject(MessageError("unknown-type", f"request {short(body[:20])}"))
            return {"error": "not a check-in request"}
        return self._check_in(fields)

    def _heart_rate(self, sample: HeartRateSample) -> dict:
        """Give a strap's reading to its station's person, or to wherever its
        member is checked in."""
        sessions = list(self.stations.values())
        if sample.station:
            sessions = [self.stations[sample.station]] if sample.station in self.stations else []
        for session in sessions:
            if isinstance(session.logic, BindsPeople) and session.logic.heart_rate(sample):
                return {"taken": True}
        return {"taken": False}  # nobody it belongs to is in view now

    def _check_in(self, fields: dict) -> dict:
        session = self.stations.get(fields.get("station"))
        if session is None or not isinstance(session.logic, BindsPeople):
            return {"error": f"no station {short(fields.get('station'))} that checks people in"}
        track, member = fields.get("person"), fields.get("member")
        if type(track) is not int or not isinstance(member, str):
            return {"error": "give a person's number and a member's name"}
        problem = session.logic.check_in(track, member)
        return {"error": problem} if problem else {"checked_in": member, "person": track}

    def _tell_pixels_and_state(self, ready_for_frames: bool) -> None:
        # Until every built-in sink has subscribed, nobody knows yet whether
        # one of them takes video: pixels travel.
        wants_pixels = not ready_for_frames or any(
            self.subscribers[sock][TOPIC_VIDEO] > 0 for sock in (self.pub, self.tap)
        )
        periodic = time.monotonic() - self.last_state > STATE_INTERVAL_S
        if periodic or wants_pixels != self.said_pixels:
            self.said_pixels = wants_pixels
            demand = [TOPIC_PIXELS, b"1" if wants_pixels else b"0"]
            with contextlib.suppress(transport.Again):  # the tap drops for a full peer
                transport.send(self.tap, demand, nonblocking=True)
        if periodic:
            self.last_state = time.monotonic()
            for station in self.stations.values():
                self._publish_state(station)
            # What the coaches refused on their side (people beyond a table),
            # read with the states rather than per frame.
            _own_drops([s.logic for s in self.stations.values()], self.ctx)

    def _publish_state(self, station: _StationSession) -> None:
        state = station.state()
        station.stats.people, station.stats.dropped = len(state.people), state.dropped
        self.publish([TOPIC_STATE, *state.to_wire()])

    def close(self) -> None:
        transport.close_all(self.inbox, self.snapshots)
        transport.close_linger(self.pub, transport.OUTPUT_LINGER_MS)
        transport.close_linger(self.tap, transport.OUTPUT_LINGER_MS)


def _event_names(packet: FramePacket) -> list[str]:
    """The packet's events by "kind:severity" (what the reports count)."""
    return [f"{event.kind}:{event.severity}" for event in packet.events]


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


def _snapshot_request(parts: list, ctx: StageContext) -> tuple[bytes, bytes] | None:
    """(identity, body) of a well-formed request from a REQ socket
    ([id, b"", body]: SNAPSHOT or a check-in), else None (counted)."""
    raw = [transport.raw_bytes(p) for p in parts]
    if len(raw) == 3 and raw[1] == b"" and len(raw[2]) <= MAX_CHECK_IN_BYTES:
        return raw[0], raw[2]
    ctx.rejects.reject(
        MessageError("malformed", f"snapshot request of {len(raw)} part(s) {short(raw[1:3])}")
    )
    return None


def _own_drops(parts: list, ctx: StageContext) -> None:
    """What stage logic or a sink refused on its own side (people beyond the
    coach's table, a slow client), added up over `parts` that count that
    (`CountsDrops`)."""
    totals: Counter[str] = Counter()
    for part in parts:
        if isinstance(part, CountsDrops):
            totals.update(part.drops())  # running totals
    for reason, count in totals.items():
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


class SinkFeed:
    """Subscribes a sink to `feed` ("results": the sinks `up` started; "tap":
    sinks attached later, cut loose when they fall behind), gives it the
    current state at once, then the stream: every station's, or only
    `station`'s. `missed`: published results this sink did not get (also in
    its reports, so `pipeline status` shows them)."""

    ends_on_stop = True

    def __init__(
        self,
        sink: Sink,
        ctx: StageContext,
        feed: str = "results",
        exit_on_eos=True,
        station: str | None = None,
    ):
        self.sink, self.ctx, self.feed, self.exit_on_eos = sink, ctx, feed, exit_on_eos
        self.station = station
        # The stations whose end-of-stream ends this sink (stations added
        # later join when an end-of-stream names them), and those ended.
        self.open = {station} if station is not None else set(ctx.config.station_names)
        self.closed: set[str] = set()
        self.snapshot_at = ctx.config.endpoints().connect("snapshot")
        if hasattr(sink, "pipeline_at"):  # a sink that asks the pipeline (check-ins)
            sink.pipeline_at = self.snapshot_at
        # Frames with pixels are ~1 MB each: a sink taking them keeps a short queue.
        hwm = 64 if TOPIC_VIDEO in sink.topics else None
        self.sub = graph.open_port(ctx.config, "sink", feed, hwm=hwm)
        # A sink on both topics gets each frame twice: count it once.
        self.counted_topic = TOPIC_RESULT if TOPIC_RESULT in sink.topics else TOPIC_VIDEO
        transport.subscribe(self.sub, (*sink.topics, TOPIC_STATE, TOPIC_EOS))
        reply = transport.request(self.snapshot_at, SNAPSHOT, timeout_s=3.0)
        for part in (reply or [])[:MAX_STATIONS]:  # one state per station
            state = transport.decode_parts([part], ctx.rejects)
            if isinstance(state, SessionState) and self._mine(state.station):
                sink.on_state(state)
                if state.ended:  # its end-of-stream has passed: never wait for it
                    self.open.discard(state.station)
                    self.closed.add(state.station)
        # An attached sink may miss end-of-stream (dropped while it was
        # behind): after a silence it asks whether the pipeline is still there.
        self.heard_at = time.monotonic() if reply else None
        self.last_number: int | None = None
        self.missed = 0
        self.drops_read = 0.0

    def sockets(self) -> tuple:
        return (self.sub,)

    def turn(self, ready: set) -> bool:
        ctx = self.ctx
        if self.exit_on_eos and not self.open:
            return True  # every station it serves had ended before it joined
        self.sink.tick()
        if time.monotonic() - self.drops_read > 1.0:
            self.drops_read = time.monotonic()
            _own_drops([self.sink], ctx)
        if self.sub not in ready:
            silent = self.heard_at and time.monotonic() - self.heard_at > SILENCE_S
            if self.feed == "tap" and silent:
                if transport.request(self.snapshot_at, SNAPSHOT, 3.0) is None:
                    log.warning("%s: the pipeline is gone (end of stream not seen)", ctx.name)
                    return True
                self.heard_at = time.monotonic()
            return False
        self.heard_at = time.monotonic()
        for _ in range(1000):  # drain what is queued, then refresh the view
            if self._take(transport.recv_parts(self.sub)):
                return True
            if not self.sub.poll(0):
                break
        return False

    def _take(self, parts: list) -> bool:
        """One published message; True at end-of-stream when that ends the sink."""
        ctx, sink = self.ctx, self.sink
        topic = transport.raw_bytes(parts[0])
        message = transport.decode_parts(parts[1:], ctx.rejects)
        if isinstance(message, FramePacket):
            if topic.startswith(TOPIC_RESULT) and len(topic) == len(TOPIC_RESULT) + 8:
                number = int.from_bytes(topic[len(TOPIC_RESULT) :], "big")
                if self.last_number is not None and number > self.last_number + 1:
                    self.missed += number - self.last_number - 1
                    ctx.stats.dropped["missed"] = self.missed
                self.last_number = number
            if not self._mine(message.meta.station):
                return False
            # the score stage's last events-only packet is not a frame
            counted = topic.startswith(self.counted_topic) and not message.tombstone
            if counted:
                ctx.stats.received()
                ctx.stats.arrived(_age_s(message))
            sink.on_result(message)
            if counted:
                ctx.stats.emitted()
        elif isinstance(message, SessionState) and self._mine(message.station):
            sink.on_state(message)
        elif isinstance(message, EndOfStream) and self._mine(message.station):
            sink.on_eos(message)
            self.closed.add(message.station)
            self.open.discard(message.station)
            for name in message.stations:
                known = len(self.open) + len(self.closed)
                if self._mine(name) and name not in self.closed and known < MAX_STATIONS:
                    self.open.add(name)
            return self.exit_on_eos and not self.open
        return False

    def _mine(self, station: str) -> bool:
        return self.station is None or station == self.station

    def close(self) -> None:
        self.ctx.stats.dropped["missed"] = self.missed
        try:
            self.sink.close(self.missed)
        finally:
            transport.close_all(self.sub)

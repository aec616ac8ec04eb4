"""Capture side of the pipeline: reads a source and hands frames to the
segment workers that ask for them.

Workers connect DEALER sockets to capture's ROUTER and announce how many
frames they may hold (`HELLO`, credits); each finished frame returns one credit
(`DONE <key>`). Capture keeps every frame a worker holds until it is done, so a
worker that dies (its restarted self says HELLO again) or goes silent loses
nothing: its frames go to the front of the queue. Duplicates that this can
create are removed by the re-order buffer downstream.

Lossless streams are cut into chunks (`repcoach.common.chunks`): every frame
of a chunk goes to the worker that took its first frame, beyond its credits
if need be (up to a chunk's length), so a file's result does not depend on
which worker was free.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from repcoach.common import graph, transport
from repcoach.common.chunks import MAX_CHUNK_FRAMES, NOT_CHUNKED, Chunker
from repcoach.common.clock import CLOCK_ID
from repcoach.common.config import FlowPolicy, Station
from repcoach.common.errors import UserError
from repcoach.common.loop import run_loop
from repcoach.common.messages import (
    END_OF_SOURCE,
    REMOVED,
    STOPPED,
    EndOfStream,
    FrameMeta,
    FramePacket,
    MessageError,
    decode_plain,
    short,
)
from repcoach.common.redact import mask_url
from repcoach.common.stage_context import StageContext

log = logging.getLogger(__name__)

EOS_KEY = -2
# Credits one worker may claim (it asks for `prefetch`, 1 or 2, or a
# batching backend's batch): bounds the frames (with pixels) capture keeps
# for each worker slot.
MAX_CREDITS = 8
# Worker slots beyond the configured workers (restarts, remote workers).
SPARE_WORKER_SLOTS = 4
# Refused peers remembered (to tell them STOP when the stream ends).
REFUSED_PEERS_KEPT = 64
# A worker slot holding nothing and unheard of this long may be reused when
# the table is full (idle workers say HELLO every 2 s).
IDLE_SLOT_S = 10.0
# Chunks whose worker is remembered: enough for frames re-sent after a crash.
_OWNERS_KEPT = 16
STOP = b"STOP"
HELLO = b"HELLO"
DONE = b"DONE"
WAKEUP_ENDPOINT = "inproc://capture-feed"
CONFIG_CHECK_S = 0.25  # how often the run folder's config is looked at (one stat)


@dataclass
class CapturedFrame:
    seq: int
    pixels: np.ndarray
    t_mono_ns: int
    t_wall: float
    pts: float


class FrameFeed:
    """Reads the source on its own thread so decoding overlaps dispatch.

    LOSSLESS keeps up to `capacity` frames and makes the reader wait when full.
    LATEST keeps only the newest frame: an unsent older one is dropped and
    counted, so a live camera is never read late.
    """

    def __init__(self, source, policy: FlowPolicy, capacity: int = 4):
        self.source = source
        self.lossless = policy is FlowPolicy.LOSSLESS
        self.capacity = capacity if self.lossless else 1
        self.frames_read = 0
        self.dropped = 0
        self.ended = False
        self.error: str | None = None
        self._items: deque[CapturedFrame] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        source.should_stop = lambda: self._stopping
        self._wakeup = transport.open_socket(transport.PUSH, WAKEUP_ENDPOINT, bind=False, hwm=64)
        self._thread = threading.Thread(target=self._run, name="frame-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def reading(self) -> bool:
        """The reader thread still runs (or has yet to start)."""
        return not self.ended

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def take(self) -> CapturedFrame | None:
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def discard_waiting(self) -> int:
        with self._cond:
            count = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return count

    def exhausted(self) -> bool:
        with self._cond:
            return self.ended and not self._items

    def _run(self) -> None:
        started = time.monotonic()
        seq = 0
        try:
            while not self._stopping:
                pixels = self.source.read()
                if pixels is None:
                    break
                now_ns = time.monotonic_ns()
                pts = seq / self.source.fps if not self.source.live else now_ns / 1e9 - started
                item = CapturedFrame(seq, pixels, now_ns, time.time(), pts)
                with self._cond:
                    while self.lossless and len(self._items) >= self.capacity:
                        if self._stopping:
                            return
                        self._cond.wait(0.1)
                    if len(self._items) >= self.capacity:
                        self._items.popleft()
                        self.dropped += 1
                    self._items.append(item)
                    self.frames_read = seq + 1
                self._notify()
                seq += 1
        except Exception as exc:  # a broken decoder must still end the stream cleanly
            log.exception("source failed")
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._cond:
                self.ended = True
            self._notify()
            self._wakeup.close(0)

    def _notify(self) -> None:
        # A full wake-up queue means the dispatcher is already due to look.
        with contextlib.suppress(transport.Again):
            transport.send(self._wakeup, [b""], nonblocking=True)


Key = tuple[int, int]
"""What a worker holds: (station index, frame seq or `EOS_KEY`)."""


@dataclass
class WorkerSlot:
    credits: int = 0
    outstanding: dict[Key, FramePacket | EndOfStream] = field(default_factory=dict)
    last_seen: float = 0.0


class FairShare:
    """Start-time fair queueing of the stations' frames. Each frame handed
    out is tagged with the media time its station has been served up to
    (`start`); the station with the lowest tag goes next. So stations share
    the workers by frame rate (a 30 fps camera gets twice a 15 fps one's
    frames while the workers are the limit), one with nothing ready (a
    camera reconnecting) is passed over, and one coming back starts level
    with the others instead of catching up on the time it was away."""

    def __init__(self, fps: list[float]):
        self.frame_s = [1.0 / f if f > 0 else 1.0 / 30 for f in fps]
        self.finish = [0.0] * len(fps)  # where each station's served time reaches
        self.clock = 0.0  # the start tag of the last frame handed out

    def order(self) -> list[int]:
        """Station indices, the one due first first."""
        count = len(self.finish)
        return sorted(range(count), key=lambda i: (max(self.finish[i], self.clock), i))

    def served(self, index: int) -> None:
        start = max(self.finish[index], self.clock)
        self.finish[index], self.clock = start + self.frame_s[index], start

    def add(self, fps: float) -> None:
        """A station added while the others run: it starts level with them."""
        self.frame_s.append(1.0 / fps if fps > 0 else 1.0 / 30)
        self.finish.append(self.clock)


class StationFeed:
    """One station's source as capture reads it: its own frame numbering,
    chunks, end-of-stream and frames waiting for a worker, so one station's
    stall or busy chunk owner never holds another's frames back."""

    def __init__(self, index: int, name: str, source, policy: FlowPolicy, roster: list[str]):
        self.index, self.name, self.source = index, name, source
        self.roster = roster  # every station capture has taken on (named in end-of-stream)
        self.ending: str | None = None  # why it ends early (removed, failed to open)
        self.released = False
        self.feed = FrameFeed(source, policy)
        self.chunker = Chunker() if policy is FlowPolicy.LOSSLESS else None
        self.chunk_owners: dict[int, bytes] = {}
        self.requeue: deque[FramePacket | EndOfStream] = deque()
        self.pending: FramePacket | EndOfStream | None = None  # taken, its worker busy
        self.prev_dispatched = -1
        self.eos: EndOfStream | None = None
        self.eos_done = False
        self.discarded = 0
        self.taken = 0  # frames read from the source and numbered

    def next_item(self, stopping: bool) -> FramePacket | EndOfStream | None:
        if self.requeue:
            return self.requeue.popleft()
        if self.eos is not None:
            return None
        if not (stopping or self.ending):
            captured = self.feed.take()
            if captured is not None:
                return self._packet(captured)
            if not self.feed.exhausted():
                return None
            reason = f"source failed: {self.feed.error}" if self.feed.error else END_OF_SOURCE
        else:
            self.discarded += self.feed.discard_waiting()
            reason = self.ending or STOPPED
        self.eos = EndOfStream(
            source_id=self.source.source_id,
            prev_seq=self.prev_dispatched,
            frames_read=self.feed.frames_read,
            dropped=self.feed.dropped + self.discarded,
            reason=reason,
            station=self.name,
            stations=tuple(self.roster),
        )
        return self.eos

    def release(self) -> None:
        """Close the source once its stream has ended and its reader has
        stopped (a removed camera is free for others at once); once only.
        Never waits: a reader still inside a camera read is left for later."""
        if not self.released and not self.feed.reading():
            self.released = True
            self.source.close()

    def end_early(self, reason: str) -> None:
        """End this station's stream now (frames not yet handed out are
        dropped and counted): removed from the pipeline, or never opened."""
        if self.ending is None:
            self.ending = reason
            self.feed.stop()

    def _packet(self, captured: CapturedFrame) -> FramePacket:
        h, w = captured.pixels.shape[:2]
        meta = FrameMeta(
            source_id=self.source.source_id,
            seq=captured.seq,
            prev_seq=self.prev_dispatched,
            t_mono_ns=captured.t_mono_ns,
            t_wall=captured.t_wall,
            clock=CLOCK_ID,
            pts=captured.pts,
            width=w,
            height=h,
            total=self.source.total,
            chunk=NOT_CHUNKED if self.chunker is None else self.chunker.chunk_of(captured.pts),
            station=self.name,
        )
        self.prev_dispatched = captured.seq
        self.taken += 1
        return FramePacket(meta=meta, pixels=captured.pixels)

    def idle(self) -> bool:
        """Nothing of this station is waiting for a worker."""
        return not self.requeue and self.pending is None


class _Unopened:
    """Stands in for a source that could not be opened: ends at once."""

    live, fps, total = False, 30.0, 0

    def __init__(self, source_id: str):
        self.source_id = source_id
        self.should_stop = lambda: False

    def read(self) -> None:
        return None

    def close(self) -> None:
        pass


class _Opening:
    """A station's source being opened on a thread of its own (a network
    camera may take seconds to answer; the other stations go on meanwhile)."""

    def __init__(self, station: Station, opener: Callable[[Station], object]):
        self.station = station
        self.source = None
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._open, args=(opener,), name=f"open-{station.name}", daemon=True
        )
        self._thread.start()

    def _open(self, opener: Callable[[Station], object]) -> None:
        try:
            self.source = opener(self.station)
        except UserError as error:
            self.error = str(error)
        except Exception as error:  # a broken backend must not take capture down
            self.error = f"{type(error).__name__}: {error}"

    def done(self) -> bool:
        return not self._thread.is_alive()


class Dispatcher:
    """Hands frames of every station to segment workers that have credit:
    each station's frames in capture order, the stations by their fair
    share (`FairShare`). Follows the run folder's config: a station added
    there is opened and joins the share, a removed one ends its stream."""

    def __init__(
        self,
        ctx: StageContext,
        sources: list,
        opener: Callable[[Station], object] | None = None,
        stop_grace_s: float = 15.0,
    ):
        self.ctx = ctx
        self.config = ctx.config
        self.opener = opener
        self.roster = [station.name for station in ctx.config.stations]
        self.stations = [
            StationFeed(i, station.name, source, station.policy, self.roster)
            for i, (station, source) in enumerate(zip(ctx.config.stations, sources, strict=True))
        ]
        self.by_name = {s.name: s for s in self.stations}
        self.share = FairShare([s.source.fps for s in self.stations])
        self.opening: dict[str, _Opening] = {}
        self.turned_away: set[str] = set()  # added while the run was ending
        self.config_read_at = time.monotonic()
        self.workers: dict[bytes, WorkerSlot] = {}
        self.stopping_since: float | None = None
        self.stop_grace_s = stop_grace_s
        # Peers refused a worker slot lately (bounded), told STOP at the end.
        self.refused_peers: dict[bytes, None] = {}

    ends_on_stop = False  # a stop request is handled here: in-flight frames drain first

    def run(self) -> None:
        self.router = graph.open_port(self.config, "capture", "work")
        self.wakeups = transport.open_socket(transport.PULL, WAKEUP_ENDPOINT, bind=True, hwm=64)
        for station in self.stations:
            station.feed.start()
        run_loop(self.ctx, self)

    # --- the loop's role

    def sockets(self) -> tuple:
        return (self.router, self.wakeups)

    def turn(self, ready: set) -> bool:
        if self.wakeups in ready:
            while self.wakeups.poll(0):
                self.wakeups.recv()
        if self.router in ready:
            self._drain_worker_messages()
        self._handle_stop_request()
        self._follow_stations()
        self._requeue_silent_workers()
        self._dispatch()
        stats = self.ctx.stats
        stats.queue_depth = sum(len(w.outstanding) for w in self.workers.values())
        stats.frames_in = sum(s.taken for s in self.stations)
        stats.dropped["stale"] = sum(s.feed.dropped for s in self.stations)
        if not self._finished():
            return False
        # Workers refused a slot (the table was full) wait for the end too.
        for identity in [*self.workers, *self.refused_peers]:
            transport.route(self.router, identity, [STOP])
        return True

    def close(self) -> None:
        for station in self.stations:
            station.feed.stop()
        for station in self.stations:
            station.feed.join(timeout=5.0)
        transport.close_all(self.wakeups)
        transport.close_linger(self.router, 2000)  # let STOP reach the workers
        for station in self.stations:
            station.release()

    # --- worker messages

    def _drain_worker_messages(self) -> None:
        while self.router.poll(0):
            parts = [transport.raw_bytes(p) for p in transport.recv_parts(self.router)]
            try:
                self._worker_message(parts)
            except MessageError as error:
                self.ctx.rejects.reject(error)

    def _worker_message(self, parts: list[bytes]) -> None:
        """One message from a worker: `HELLO {credits}` or `DONE <key> <station>`.
        Anything else raises `MessageError` (counted and dropped)."""
        if len(parts) < 2:
            raise MessageError("malformed", f"expected 2 to 4 parts, got {len(parts)}")
        identity, kind, rest = parts[0], parts[1], parts[2:]
        if kind == HELLO:
            if len(rest) > 1:
                raise MessageError(
                    "malformed", f"HELLO takes credits only, got {len(rest)} part(s)"
                )
            credits = self._declared_credits(rest)
            slot = self.workers.get(identity)
            if slot is None:
                slot = self._new_slot(identity)
            self._take_back(identity, slot, "restarted or reconnected")
            slot.credits = credits
            slot.last_seen = time.monotonic()
        elif kind == DONE:
            if len(rest) != 2:
                raise MessageError(
                    "malformed", f"DONE needs a key and a station, got {len(rest)} part(s)"
                )
            station = self.by_name.get(rest[1].decode("utf-8", errors="replace"))
            if station is None:
                raise MessageError("unknown-station", f"DONE for station {short(rest[1])}")
            key = (station.index, _done_key(rest[0]))
            slot = self.workers.get(identity)
            if slot is None:
                raise MessageError("unknown-peer", "DONE from a worker that never said HELLO")
            slot.last_seen = time.monotonic()
            # Credit only for frames we still count as held: after a HELLO
            # the worker's credits were reset and its old frames re-sent.
            if slot.outstanding.pop(key, None) is None:
                raise MessageError("unknown-key", f"DONE {key[1]}: that worker does not hold it")
            slot.credits += 1
            if key[1] == EOS_KEY:
                station.eos_done = True
        else:
            raise MessageError("unknown-type", f"worker message {short(kind)} ({len(parts)} parts)")

    @staticmethod
    def _declared_credits(rest: list[bytes]) -> int:
        if not rest:
            return 1
        body = decode_plain(rest[0])
        credits = body.get("credits") if isinstance(body, dict) else None
        if type(credits) is not int or credits < 1:
            raise MessageError("malformed", f"HELLO credits {short(credits)}")
        return min(credits, MAX_CREDITS)

    def _new_slot(self, identity: bytes) -> WorkerSlot:
        """A slot for a new worker, if the table has room (an idle, silent
        slot is reused when it has not): a flood of HELLOs cannot grow it."""
        limit = max_worker_slots(self.config.workers)
        if len(self.workers) >= limit:
            now = time.monotonic()
            idle = [
                (s.last_seen, i)
                for i, s in self.workers.items()
                if not s.outstanding and now - s.last_seen > IDLE_SLOT_S
            ]
            if not idle:
                self.refused_peers.pop(identity, None)
                self.refused_peers[identity] = None
                while len(self.refused_peers) > REFUSED_PEERS_KEPT:
                    del self.refused_peers[next(iter(self.refused_peers))]
                raise MessageError("too-many-workers", f"worker table full ({limit})")
            del self.workers[min(idle)[1]]
            for station in self.stations:
                owners = station.chunk_owners
                station.chunk_owners = {c: o for c, o in owners.items() if o in self.workers}
        slot = self.workers[identity] = WorkerSlot()
        return slot

    def _take_back(self, identity: bytes, slot: WorkerSlot, why: str) -> None:
        if slot.outstanding:
            log.warning(
                "worker %s %s holding %d frame(s); re-sending them",
                identity.decode(errors="replace"),
                why,
                len(slot.outstanding),
            )
            for index, key in sorted(slot.outstanding, reverse=True):
                self.stations[index].requeue.appendleft(slot.outstanding[index, key])
            self.ctx.stats.drop("resent", len(slot.outstanding))
            slot.outstanding.clear()

    def _requeue_silent_workers(self) -> None:
        now = time.monotonic()
        for identity, slot in list(self.workers.items()):
            if slot.outstanding and now - slot.last_seen > self.config.work_timeout_s:
                self._take_back(identity, slot, "went silent")
                del self.workers[identity]

    # --- stations added and removed at run time

    def _follow_stations(self) -> None:
        now = time.monotonic()
        if self.opener is not None and now - self.config_read_at >= CONFIG_CHECK_S:
            self.config_read_at = now
            if self.ctx.refresh_config():
                for station in self.ctx.config.stations:
                    self._follow(station)
        for name, opening in list(self.opening.items()):
            if opening.done():
                del self.opening[name]
                self._start(opening)
        for station in self.stations:
            if station.eos_done:
                station.release()

    def _follow(self, station: Station) -> None:
        feed = self.by_name.get(station.name)
        if station.removed:
            if feed is not None and feed.ending is None and feed.eos is None:
                log.info("station %s removed: ending its stream", station.name)
                feed.end_early(REMOVED)
            return
        if feed is not None or station.name in self.opening or station.name in self.turned_away:
            return
        # Taken on only while some station's end-of-stream is still to come:
        # that one names it, so every later stage waits for it too.
        if self.stopping_since is not None or all(s.eos is not None for s in self.stations):
            log.warning("station %s not started: the pipeline is ending", station.name)
            self.turned_away.add(station.name)
            return
        log.info("station %s added: opening %s", station.name, mask_url(station.source))
        self.roster.append(station.name)
        self.opening[station.name] = _Opening(station, self.opener)

    def _start(self, opening: _Opening) -> None:
        station = opening.station
        source = opening.source or _Unopened(mask_url(station.source))
        feed = StationFeed(len(self.stations), station.name, source, station.policy, self.roster)
        self.stations.append(feed)
        self.by_name[station.name] = feed
        self.share.add(source.fps)
        now = self.ctx.config.station(station.name)
        if opening.error is not None:
            log.warning("station %s: %s", station.name, opening.error)
            feed.end_early(f"source failed: {opening.error}")
        elif now is None or now.removed:
            feed.end_early(REMOVED)
        elif self.stopping_since is not None:
            feed.feed.stop()
        feed.feed.start()

    # --- dispatch

    def _handle_stop_request(self) -> None:
        if self.ctx.should_stop() and self.stopping_since is None:
            log.info("stop requested: finishing frames in flight")
            self.stopping_since = time.monotonic()
            for station in self.stations:
                station.feed.stop()

    def _dispatch(self) -> None:
        """Hand out frames until no station can send more: each station's in
        its order, the stations by their fair share (`FairShare`)."""
        stopping = self.stopping_since is not None
        while True:
            for index in self.share.order():
                if self._send_one(self.stations[index], stopping):
                    self.share.served(index)
                    break
            else:
                return

    def _send_one(self, station: StationFeed, stopping: bool) -> bool:
        """Hand one of `station`'s items to a worker; False if none could go."""
        while True:
            item = station.pending or station.next_item(stopping)
            if item is None:
                return False
            identity = self._worker_for(station, item)
            if identity is None:
                station.pending = item  # its worker is busy: keep the order
                return False
            station.pending = None
            slot = self.workers[identity]
            key = EOS_KEY if isinstance(item, EndOfStream) else item.meta.seq
            if not transport.route(self.router, identity, item.to_wire()):
                station.requeue.appendleft(item)
                self._take_back(identity, slot, "is unreachable")
                del self.workers[identity]
                continue
            slot.credits -= 1
            slot.outstanding[station.index, key] = item
            if isinstance(item, FramePacket):
                self.ctx.stats.emitted()
            return True

    def _worker_for(self, station: StationFeed, item: FramePacket | EndOfStream) -> bytes | None:
        """Who takes `item`: the worker that holds its chunk (it may go up to
        a chunk's length past its credits), else the least busy one with
        credit, which then holds the chunk."""
        chunk = item.meta.chunk if isinstance(item, FramePacket) else NOT_CHUNKED
        owner = station.chunk_owners.get(chunk)
        if owner is not None and owner in self.workers:
            return owner if self.workers[owner].credits > -MAX_CHUNK_FRAMES else None
        identity = self._worker_with_credit()
        if identity is not None and chunk != NOT_CHUNKED:
            station.chunk_owners[chunk] = identity
            while len(station.chunk_owners) > _OWNERS_KEPT:
                del station.chunk_owners[next(iter(station.chunk_owners))]
        return identity

    def _worker_with_credit(self) -> bytes | None:
        candidates = [(len(s.outstanding), i) for i, s in self.workers.items() if s.credits > 0]
        return min(candidates)[1] if candidates else None

    def _finished(self) -> bool:
        if (
            not self.opening
            and all(s.eos_done and s.idle() for s in self.stations)
            and not any(s.outstanding for s in self.workers.values())
        ):
            return True
        if self.stopping_since is not None:
            if time.monotonic() - self.stopping_since > self.stop_grace_s:
                log.warning("frames still in flight after %.0f s; giving up", self.stop_grace_s)
                return True
            if self.ctx.stop_requests > 1:
                return True
        return False


def done(key: int, station: str) -> list[bytes]:
    """A worker's message that it has finished a frame (`key`: its seq) or
    end-of-stream (`EOS_KEY`) of `station`."""
    return [DONE, str(key).encode(), station.encode()]


def max_worker_slots(workers: int) -> int:
    """Workers capture deals frames to at most (restarts, remote workers)."""
    return workers * 2 + SPARE_WORKER_SLOTS


def _done_key(raw: bytes) -> int:
    """The key of `DONE <key>`: a frame's seq, or `EOS_KEY`."""
    text = raw.decode("ascii", errors="replace")
    if not (0 < len(text) <= 20 and text.lstrip("-").isdigit() and text.count("-") <= 1):
        raise MessageError("malformed", f"DONE key {short(raw)}")
    key = int(text)
    if key < 0 and key != EOS_KEY:
        raise MessageError("malformed", f"DONE key {key}")
    return key

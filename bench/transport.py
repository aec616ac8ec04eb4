"""The pipeline's own frame transport, next to raw pyzmq measured in the same run.

Part 1, one hop: two processes (spawned), PUSH -> PULL over ipc:// in a temp
folder, 640x480 and 1920x1080 uint8 BGR frames.

  raw       plain pyzmq: [16-byte header (seq, send time), ndarray], copy=False
            on send and on receive, pyzmq's default HWM (1000).
  product   `FramePacket(meta, pixels).to_wire()` sent with
            `repcoach.common.transport.send`, received with `transport.receive`
            (validates and decodes) on `transport.open_socket` sockets, once
            with the pipeline's HWMs (PUSH 4 / PULL 8, as in common/runner.py)
            and once with the raw baseline's HWM (like for like).

  fps, GB/s   a burst sent as fast as possible, measured at the receiver;
              the best of the rounds (other load only ever slows one down)
  p50/p95     one-way latency at 30 fps pacing, over the rounds: sender's
              time.monotonic_ns() before it builds the message, to the
              receiver holding the decoded frame (same host, same clock)

  One sender and one receiver process take turns through the variants, round
  after round (the order flips each round), so a burst of load from other
  work on the machine hits them alike. Goal: product within 1.25x of raw at
  the same HWM, in throughput (median over rounds of raw/product within a
  round) and in p50 latency (product/raw).

Part 1b (`--part curve`), the price of CURVE per hop: the same one hop over
tcp on loopback, PUSH -> PULL, every variant with pyzmq's default HWM (1000):

  raw tcp       plain pyzmq, no security
  raw curve     plain pyzmq with CURVE keys set (the receiver's ZAP handler
                checks the key once, at the handshake)
  product tcp   the product's sockets with --insecure (plain tcp)
  product curve the product's sockets as `pipeline up --bind` opens them:
                CURVE, ZAP handler (`ThreadAuthenticator`), MAXMSGSIZE

  Each runs on two links: loopback (one host), and, where network namespaces
  can be made (root), two "hosts" (namespaces) joined by a veth pair shaped
  to 1 Gbit/s (tc's token bucket): the edge box and a GPU host on gigabit ethernet,
  the case CURVE is there for (on one host the pipeline uses ipc).

  Goal: product curve's one-way p50 at 640x480 within 1.3x of product tcp.
  The floor under any CURVE socket: libzmq encrypts and decrypts each part
  whole with libsodium's XSalsa20-Poly1305 (crypto_box_afternm), measured
  here at ~0.55 ms each way for a 640x480 frame (2-core AMD EPYC), so a hop
  gains >= ~1.1 ms over a ~1 ms plain hop whatever wraps the socket; the
  "p50 / raw curve" column is the product's own share.

Part 2, the whole pipeline: a rendered mp4v file through the real CLI,
`pipeline up --segmenter passthrough --joints none --no-console
--sink jsonl:path=F,frames=1` (capture -> segment worker(s) -> joints -> score
-> sink, pass-through logic), with 1 and 2 workers. Baseline: a raw pyzmq chain
of the same five processes (decode thread + PUSH, three PULL/PUSH relays,
a sink that writes the same kind of JSON line per frame), with the pipeline's
HWMs, pixels zero-copy on the first three hops and only the header on the
last (the pipeline publishes results without pixels). Both are measured the
same way: the JSONL records carry no write time, so a thread watches the file
grow and stamps each line when it appears; steady fps = frames between the
first and the last frame record / that time, best of a few interleaved rounds.
Every seq must appear exactly once; a run whose sink writes nothing for 15 s
is killed (with all its processes) and reported as hung. Then the same file
with `--realtime` (30 fps, as a camera): capture -> sink latency from the
records' `age_ms` (wall clock), next to the raw chain paced the same way.

  Goal: >= 300 fps of 640x480 through the 5-stage pass-through pipeline.

    .venv/bin/python bench/transport.py [--quick] [--part all|hop|curve|pipeline] [--json PATH]

Exits 1 if a run failed or lost or duplicated frames (not for a missed goal).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ports import free_port_block  # noqa: E402
from repcoach.common import transport  # noqa: E402
from repcoach.common.messages import FrameMeta, FramePacket  # noqa: E402

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
RAW, PRODUCT = "raw", "product"
RAW_HWM = 1000  # pyzmq's default
PIPELINE_PUSH_HWM, PIPELINE_PULL_HWM = 4, 8  # common/runner.py
PACE_FPS = 30.0
HOP_GOAL_RATIO = 1.25
CURVE_GOAL_RATIO = 1.3
IPC, TCP, CURVE = "ipc", "tcp", "curve"  # how a hop's two processes are linked
LOOPBACK, GIGABIT = "loopback", "1 Gbit/s veth"  # what a tcp hop runs over
# A token bucket at 1 Gbit/s; its bucket holds one 64 KiB segment (veth
# passes whole GSO segments) and a little more, so a frame leaves at the
# line's pace rather than in one burst.
GIGABIT_GBIT_S = 1.0
SHAPER = ("tbf", "rate", "1gbit", "burst", "96kb", "latency", "100ms")
CLONE_NEWNET = 0x40000000  # <sched.h>
PIPELINE_GOAL_FPS = 300.0
BURST_WARMUP = 20  # first frames of a burst: connection set-up, not throughput
PACED_WARMUP = 3
RECEIVE_TIMEOUT_MS = 20_000
RUN_TIMEOUT_S = 180.0
STALL_S = 15.0  # a pipeline whose sink writes nothing for this long has hung
BARRIER_TIMEOUT_S = 120.0
CHAIN_RUN = "raw chain"
HEADER = struct.Struct("<qqd")  # seq, send monotonic ns, send wall time


@dataclass(frozen=True)
class Scale:
    """How many frames and rounds each measurement uses (`--quick` shrinks them)."""

    burst: dict[str, int]  # one hop, per round
    paced: int  # one hop, over all rounds
    hop_rounds: int
    video: dict[str, int]
    pipeline_rounds: int

    @classmethod
    def of(cls, quick: bool) -> Scale:
        if quick:
            return cls(
                {"640x480": 400, "1920x1080": 100}, 60, 4, {"640x480": 300, "1920x1080": 60}, 2
            )
        return cls(
            {"640x480": 1000, "1920x1080": 250}, 300, 10, {"640x480": 600, "1920x1080": 240}, 3
        )


# --- frames


def sample_frames(width: int, height: int, count: int = 4) -> list[np.ndarray]:
    """A few distinct frames, sent in turn (never modified while in flight)."""
    rng = np.random.default_rng(width)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def write_video(path: Path, width: int, height: int, frames: int) -> int:
    """An mp4v file whose content changes every frame; returns its frame count."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), PACE_FPS, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here")
    ramp = np.linspace(0, 255, width, dtype=np.float32)
    background = np.repeat(np.tile(ramp.astype(np.uint8), (height, 1))[:, :, None], 3, axis=2)
    for i in range(frames):
        image = np.ascontiguousarray(np.roll(background, 8 * i, axis=1))
        x = (13 * i) % width
        cv2.circle(image, (x, height // 2), height // 8, (40, 200, 255), -1)
        cv2.putText(image, str(i), (20, height // 4), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
        writer.write(image)
    writer.release()
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


# --- part 1: one hop


@dataclass(frozen=True)
class HopVariant:
    path: str  # RAW or PRODUCT
    push_hwm: int
    pull_hwm: int
    link: str = IPC  # IPC, TCP (plain, loopback) or CURVE (tcp with CURVE keys)

    @property
    def label(self) -> str:
        return f"{self.path} {self.push_hwm}/{self.pull_hwm}" + (
            "" if self.link == IPC else f" {self.link}"
        )


HOP_VARIANTS = (
    HopVariant(RAW, RAW_HWM, RAW_HWM),
    HopVariant(PRODUCT, RAW_HWM, RAW_HWM),
    HopVariant(PRODUCT, PIPELINE_PUSH_HWM, PIPELINE_PULL_HWM),
)
CURVE_VARIANTS = tuple(
    HopVariant(path, RAW_HWM, RAW_HWM, link) for path in (RAW, PRODUCT) for link in (TCP, CURVE)
)
PRODUCT_TCP = HopVariant(PRODUCT, RAW_HWM, RAW_HWM, TCP)


@dataclass(frozen=True)
class HopPlan:
    """One sender and one receiver process take turns through every variant,
    `rounds` times, so a burst of load from elsewhere hits them all alike."""

    width: int
    height: int
    burst: int  # per round and variant
    paced: int  # per round and variant
    rounds: int
    folder: str
    tcp_port: int = 0  # tcp variants: first of consecutive free loopback ports
    # CURVE variants: (receiver public, receiver secret, sender public, sender secret)
    keys: tuple[bytes, ...] = ()
    # Over a veth pair: the receiver's and the sender's network namespace,
    # and the receiver's address there.
    namespaces: tuple[str, str] = ("", "")
    host: str = "127.0.0.1"

    @property
    def via(self) -> str:
        return GIGABIT if self.namespaces[0] else LOOPBACK

    @property
    def per_round(self) -> int:
        return BURST_WARMUP + self.burst + PACED_WARMUP + self.paced

    def endpoint(self, index: int, variant: HopVariant) -> str:
        if variant.link == IPC:
            return f"ipc://{self.folder}/hop-{self.width}-{index}.sock"
        return f"tcp://{self.host}:{self.tcp_port + index}"


def enter_namespace(name: str) -> None:
    """Moves this process (still single-threaded: before any zmq context)
    into network namespace `name` (made by `ip netns add`)."""
    if not name:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"cannot enter network namespace {name}")


class GigabitLink:
    """Two network namespaces joined by a veth pair, each end shaped to
    1 Gbit/s: the receiver's (10.232.X.1) and the sender's (10.232.X.2)."""

    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.receiver, self.sender = f"rcbR{tag}", f"rcbS{tag}"
        self.address = f"10.232.{tag % 200 + 20}.1"
        self._ends = (
            (self.receiver, f"rcbr{tag}", self.address),
            (self.sender, f"rcbs{tag}", f"10.232.{tag % 200 + 20}.2"),
        )

    def __enter__(self) -> GigabitLink:
        (ns_a, veth_a, _), (ns_b, veth_b, _) = self._ends
        try:
            for args in (
                ("netns", "add", ns_a),
                ("netns", "add", ns_b),
                ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
                ("link", "set", veth_a, "netns", ns_a),
                ("link", "set", veth_b, "netns", ns_b),
            ):
                _run("ip", *args)
            for ns, veth, address in self._ends:
                _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", veth)
                _run("ip", "-n", ns, "link", "set", veth, "up")
                _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", *SHAPER)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for ns, _, _ in self._ends:  # deleting a namespace deletes its veth end too
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=30)


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


def _curve(plan: HopPlan, bind: bool) -> transport.Curve:
    """The receiver binds as the CURVE server and lets in the sender's key."""
    server_public, server_secret, client_public, client_secret = plan.keys
    public, secret = (server_public, server_secret) if bind else (client_public, client_secret)
    return transport.Curve(public, secret, server_public, lambda key: key == client_public)


def _hop_socket(variant: HopVariant, plan: HopPlan, index: int, kind: int) -> zmq.Socket:
    bind = kind == zmq.PULL  # receivers bind, as the pipeline's stages do
    endpoint = plan.endpoint(index, variant)
    hwm = variant.pull_hwm if bind else variant.push_hwm
    options = [(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)]
    if variant.path == PRODUCT:
        secure = None  # ipc
        if variant.link == TCP:
            secure = transport.INSECURE
        elif variant.link == CURVE:
            secure = _curve(plan, bind)
        return transport.open_socket(
            kind, endpoint, bind=bind, hwm=hwm, options=options, secure=secure
        )
    sock = zmq.Context.instance().socket(kind)
    for option, value in [(zmq.LINGER, 0), (zmq.SNDHWM, hwm), (zmq.RCVHWM, hwm), *options]:
        sock.setsockopt(option, value)
    if variant.link == CURVE:
        curve = _curve(plan, bind)
        sock.curve_publickey, sock.curve_secretkey = curve.public, curve.secret
        if bind:
            # The same ZAP handler as the product's (opened first, in the same context).
            sock.zap_domain = transport.ZAP_DOMAIN.encode()
            sock.curve_server = True
        else:
            sock.curve_serverkey = curve.server
    sock.bind(endpoint) if bind else sock.connect(endpoint)
    return sock


def _send_raw(sock: zmq.Socket, plan: HopPlan, seq: int, pixels: np.ndarray) -> None:
    header = HEADER.pack(seq, time.monotonic_ns(), time.time())
    sock.send_multipart([header, pixels], copy=False)


def _send_product(sock: zmq.Socket, plan: HopPlan, seq: int, pixels: np.ndarray) -> None:
    meta = FrameMeta(
        source_id="bench",
        seq=seq,
        prev_seq=seq - 1,
        t_mono_ns=time.monotonic_ns(),
        t_wall=time.time(),
        pts=seq / PACE_FPS,
        width=plan.width,
        height=plan.height,
    )
    transport.send(sock, FramePacket(meta=meta, pixels=pixels).to_wire())


def _receive_raw(sock: zmq.Socket, plan: HopPlan, _rejects) -> tuple[int, int]:
    parts = sock.recv_multipart(copy=False)
    seq, sent_ns, _ = HEADER.unpack(parts[0].bytes)
    np.frombuffer(parts[1].buffer, np.uint8).reshape(plan.height, plan.width, 3)
    return seq, sent_ns


def _receive_product(sock: zmq.Socket, plan: HopPlan, rejects) -> tuple[int, int]:
    packet = transport.receive(sock, rejects)
    if not isinstance(packet, FramePacket) or packet.pixels is None:
        raise RuntimeError(f"expected a frame with pixels, got {packet!r:.80}")
    return packet.meta.seq, packet.meta.t_mono_ns


def _turns(plan: HopPlan, variants: tuple[HopVariant, ...]) -> list[tuple[int, int]]:
    """(round, variant index) in running order; the order flips every round so
    that no variant always runs first (or always right after the burst of another)."""
    turns = []
    for round_ in range(plan.rounds):
        order = range(len(variants)) if round_ % 2 == 0 else reversed(range(len(variants)))
        turns += [(round_, v) for v in order]
    return turns


def hop_sender(plan: HopPlan, variants: tuple[HopVariant, ...], barrier) -> None:
    enter_namespace(plan.namespaces[1])
    sockets = [_hop_socket(v, plan, i, zmq.PUSH) for i, v in enumerate(variants)]
    frames = sample_frames(plan.width, plan.height)
    for _, v in _turns(plan, variants):
        sock = sockets[v]
        send = _send_raw if variants[v].path == RAW else _send_product
        for seq in range(BURST_WARMUP + plan.burst):
            send(sock, plan, seq, frames[seq % len(frames)])
        barrier.wait(BARRIER_TIMEOUT_S)  # paced frames must not queue behind the burst
        next_at = time.monotonic()
        for seq in range(BURST_WARMUP + plan.burst, plan.per_round):
            time.sleep(max(next_at - time.monotonic(), 0.0))
            next_at += 1.0 / PACE_FPS
            send(sock, plan, seq, frames[seq % len(frames)])
        barrier.wait(BARRIER_TIMEOUT_S)  # linger is 0: closing early would drop frames
    for sock in sockets:
        sock.close(0)


def hop_receiver(plan: HopPlan, variants: tuple[HopVariant, ...], barrier, results) -> None:
    enter_namespace(plan.namespaces[0])
    # Product sockets first: a product CURVE socket starts the ZAP handler.
    order = sorted(range(len(variants)), key=lambda i: variants[i].path != PRODUCT)
    opened = {i: _hop_socket(variants[i], plan, i, zmq.PULL) for i in order}
    sockets = [opened[i] for i in range(len(variants))]
    rejects = transport.RejectCounter("bench")
    results.send("ready")
    # sent and received monotonic ns of every frame
    stamps = np.zeros((plan.rounds, len(variants), plan.per_round, 2), np.int64)
    out_of_order = 0
    for round_, v in _turns(plan, variants):
        receive = _receive_raw if variants[v].path == RAW else _receive_product
        for i in range(plan.per_round):
            seq, sent_ns = receive(sockets[v], plan, rejects)
            stamps[round_, v, i] = sent_ns, time.monotonic_ns()
            out_of_order += seq != i
            if i in (BURST_WARMUP + plan.burst - 1, plan.per_round - 1):
                barrier.wait(BARRIER_TIMEOUT_S)
    results.send((stamps, out_of_order, sum(rejects.counts.values())))
    for sock in sockets:
        sock.close(0)


def _stop_processes(processes: list, timeout_s: float = 10.0) -> None:
    for process in processes:
        process.join(timeout_s)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5)


@dataclass(frozen=True)
class HopResult:
    size: str
    path: str
    push_hwm: int
    pull_hwm: int
    fps: float  # best round: load from elsewhere only ever slows a round down
    fps_median: float
    fps_rounds: tuple[float, ...]
    gb_per_s: float
    latency_p50_ms: float  # over the paced frames of every round
    latency_p95_ms: float
    link: str = IPC
    via: str = LOOPBACK  # tcp links: loopback or a shaped veth pair

    @property
    def label(self) -> str:
        return HopVariant(self.path, self.push_hwm, self.pull_hwm, self.link).label


def _hop_result(size: str, plan: HopPlan, variant: HopVariant, stamps: np.ndarray) -> HopResult:
    """`stamps`: (rounds, frames, [sent, received]) for one variant."""
    burst_end = BURST_WARMUP + plan.burst
    elapsed_s = (stamps[:, burst_end - 1, 1] - stamps[:, BURST_WARMUP - 1, 1]) / 1e9
    fps_rounds = tuple(round(float(plan.burst / s), 1) for s in elapsed_s)
    paced = stamps[:, burst_end + PACED_WARMUP :].reshape(-1, 2)
    latency_ms = (paced[:, 1] - paced[:, 0]) / 1e6
    fps = max(fps_rounds)
    return HopResult(
        size=size,
        path=variant.path,
        push_hwm=variant.push_hwm,
        pull_hwm=variant.pull_hwm,
        fps=fps,
        fps_median=float(np.median(fps_rounds)),
        fps_rounds=fps_rounds,
        gb_per_s=round(fps * plan.width * plan.height * 3 / 1e9, 3),
        latency_p50_ms=round(float(np.percentile(latency_ms, 50)), 3),
        latency_p95_ms=round(float(np.percentile(latency_ms, 95)), 3),
        link=variant.link,
        via=plan.via,
    )


def run_hops(plan: HopPlan, size: str, variants=HOP_VARIANTS) -> list[HopResult]:
    spawn = mp.get_context("spawn")
    results, child_end = spawn.Pipe(duplex=False)
    barrier = spawn.Barrier(2)
    receiver = spawn.Process(target=hop_receiver, args=(plan, variants, barrier, child_end))
    sender = spawn.Process(target=hop_sender, args=(plan, variants, barrier))
    processes = [receiver]
    try:
        receiver.start()
        if not results.poll(60) or results.recv() != "ready":
            raise RuntimeError(f"one hop {size}: the receiver did not start")
        sender.start()
        processes.append(sender)
        budget = 120 + plan.rounds * len(variants) * plan.per_round / PACE_FPS
        if not results.poll(budget):
            raise RuntimeError(f"one hop {size}: frames did not arrive within {budget:.0f} s")
        stamps, out_of_order, rejected = results.recv()
    finally:
        _stop_processes(processes)
    if out_of_order or rejected:
        raise RuntimeError(f"one hop {size}: {out_of_order} out of order, {rejected} rejected")
    return [_hop_result(size, plan, v, stamps[:, i]) for i, v in enumerate(variants)]


def measure_hops(scale: Scale, folder: Path) -> list[HopResult]:
    results = []
    for size, (width, height) in SIZES.items():
        paced = -(-scale.paced // scale.hop_rounds)
        plan = HopPlan(width, height, scale.burst[size], paced, scale.hop_rounds, str(folder))
        results += run_hops(plan, size)
        print(f"  one hop {size}: " + ", ".join(f"{r.label} {r.fps:.0f} fps" for r in results[-3:]))
    return results


@dataclass(frozen=True)
class HopRatio:
    size: str
    product: str
    baseline: str
    throughput: float  # median over rounds of raw fps / product fps in the same round
    latency_p50: float  # product / raw
    latency_p95: float
    like_for_like: bool

    @property
    def passed(self) -> bool:
        return self.throughput <= HOP_GOAL_RATIO and self.latency_p50 <= HOP_GOAL_RATIO


def paired_ratio(baseline: tuple[float, ...], measured: tuple[float, ...]) -> float:
    """Median of baseline/measured over rounds run back to back: a slow spell
    on the shared machine then affects both sides of most ratios alike."""
    return round(float(np.median(np.divide(baseline, measured))), 3)


def hop_ratios(results: list[HopResult]) -> list[HopRatio]:
    ratios = []
    for size in SIZES:
        raw = next(r for r in results if r.size == size and r.path == RAW)
        for product in (r for r in results if r.size == size and r.path == PRODUCT):
            ratios.append(
                HopRatio(
                    size=size,
                    product=product.label,
                    baseline=raw.label,
                    throughput=paired_ratio(raw.fps_rounds, product.fps_rounds),
                    latency_p50=round(product.latency_p50_ms / raw.latency_p50_ms, 3),
                    latency_p95=round(product.latency_p95_ms / raw.latency_p95_ms, 3),
                    like_for_like=(product.push_hwm, product.pull_hwm)
                    == (raw.push_hwm, raw.pull_hwm),
                )
            )
    return ratios


# --- part 1b: CURVE's price per hop


def measure_curve(scale: Scale, folder: Path) -> list[HopResult]:
    results = []
    server, client = zmq.curve_keypair(), zmq.curve_keypair()
    with contextlib.ExitStack() as stack:
        links = [("", "", "127.0.0.1")]
        try:
            link = stack.enter_context(GigabitLink())
            links.append((link.receiver, link.sender, link.address))
        except (OSError, RuntimeError) as error:
            print(f"  no {GIGABIT} run: {error} (it needs root and iproute2's ip and tc)")
        for receiver_ns, sender_ns, host in links:
            for size, (width, height) in SIZES.items():
                needs_gbit_s = width * height * 3 * 8 * PACE_FPS / 1e9
                if receiver_ns and needs_gbit_s > GIGABIT_GBIT_S:
                    print(
                        f"  {size} over {GIGABIT}: not measured, {PACE_FPS:.0f} raw frames a "
                        f"second need {needs_gbit_s:.2f} Gbit/s, more than the link carries"
                    )
                    continue
                paced = -(-scale.paced // scale.hop_rounds)
                plan = HopPlan(
                    width,
                    height,
                    scale.burst[size],
                    paced,
                    scale.hop_rounds,
                    str(folder),
                    tcp_port=free_port_block(len(CURVE_VARIANTS)),
                    keys=(*server, *client),
                    namespaces=(receiver_ns, sender_ns),
                    host=host,
                )
                # The product refuses plain tcp off loopback: over the veth its
                # CURVE hop is held against raw pyzmq's plain one (stricter).
                variants = tuple(
                    v for v in CURVE_VARIANTS if host == "127.0.0.1" or v != PRODUCT_TCP
                )
                measured = run_hops(plan, size, variants)
                results += measured
                print(
                    f"  tcp hop {size} over {plan.via}: "
                    + ", ".join(
                        f"{r.label} {r.fps:.0f} fps p50 {r.latency_p50_ms:.2f} ms" for r in measured
                    )
                )
    return results


@dataclass(frozen=True)
class CurveRatio:
    via: str  # LOOPBACK or GIGABIT
    size: str
    path: str  # RAW or PRODUCT: CURVE against plain tcp on the same path
    throughput: float  # median over rounds of plain fps / CURVE fps
    latency_p50: float  # CURVE / plain
    latency_p95: float
    p50_vs_raw_tcp: float  # this path's CURVE p50 / raw plain tcp p50
    p50_vs_raw_curve: float  # this path's CURVE p50 / raw pyzmq CURVE p50 (the product's own cost)

    @property
    def passed(self) -> bool | None:
        if self.path != PRODUCT or self.size != "640x480":
            return None
        return self.latency_p50 <= CURVE_GOAL_RATIO


def curve_ratios(results: list[HopResult]) -> list[CurveRatio]:
    ratios = []
    for via in dict.fromkeys(r.via for r in results):
        for size in dict.fromkeys(r.size for r in results if r.via == via):

            def find(path: str, link: str, size: str = size, via: str = via) -> HopResult:
                found = [
                    r for r in results if (r.via, r.size, r.path, r.link) == (via, size, path, link)
                ]
                if found or path == RAW:
                    return found[0]
                return find(RAW, link)  # the product has no plain tcp off loopback

            raw_tcp, raw_curve = find(RAW, TCP), find(RAW, CURVE)
            for path in (RAW, PRODUCT):
                plain, curve = find(path, TCP), find(path, CURVE)
                ratios.append(
                    CurveRatio(
                        via=via,
                        size=size,
                        path=path,
                        throughput=paired_ratio(plain.fps_rounds, curve.fps_rounds),
                        latency_p50=round(curve.latency_p50_ms / plain.latency_p50_ms, 3),
                        latency_p95=round(curve.latency_p95_ms / plain.latency_p95_ms, 3),
                        p50_vs_raw_tcp=round(curve.latency_p50_ms / raw_tcp.latency_p50_ms, 3),
                        p50_vs_raw_curve=round(curve.latency_p50_ms / raw_curve.latency_p50_ms, 3),
                    )
                )
    return ratios


def print_curve(results: list[HopResult], ratios: list[CurveRatio]) -> None:
    from rich.table import Table

    table = Table(
        title="One hop over tcp, 2 processes, HWM 1000 (fps: best burst; "
        f"latency: paced at {PACE_FPS:.0f} fps)"
    )
    columns = ("over", "frame", "path", "link", "fps best", "median", "GB/s", "p50 ms", "p95 ms")
    for column in columns:
        left = column in ("over", "frame", "path", "link")
        table.add_column(column, justify="left" if left else "right")
    for r in results:
        table.add_row(
            r.via,
            r.size,
            r.path,
            r.link,
            f"{r.fps:,.0f}",
            f"{r.fps_median:,.0f}",
            f"{r.gb_per_s:.2f}",
            f"{r.latency_p50_ms:.2f}",
            f"{r.latency_p95_ms:.2f}",
        )
    goal = Table(
        title=f"CURVE vs plain tcp, same path (goal: product p50 <= {CURVE_GOAL_RATIO}x at 640x480)"
    )
    for column in ("over", "frame", "path", "fps tcp/curve*", "p50 curve/tcp", "p95 curve/tcp"):
        goal.add_column(column)
    goal.add_column("p50 / raw tcp")
    goal.add_column("p50 / raw curve")
    goal.add_column("goal")
    for r in ratios:
        goal.add_row(
            r.via,
            r.size,
            r.path,
            f"{r.throughput:.2f}",
            f"{r.latency_p50:.2f}",
            f"{r.latency_p95:.2f}",
            f"{r.p50_vs_raw_tcp:.2f}",
            f"{r.p50_vs_raw_curve:.2f}",
            "" if r.passed is None else _verdict(r.passed),
        )
    console = _console()
    console.print(table)
    console.print(goal)
    console.print("* median over rounds of the ratio within a round (the variants take turns)")
    if any(r.via == GIGABIT for r in results):
        console.print(
            f"over the {GIGABIT}, the product's CURVE hop is held against raw pyzmq's plain "
            "tcp hop: the product refuses plain tcp off loopback"
        )


# --- part 2: whole pipeline and the raw chain


class FileGrowth:
    """Watches a file grow from a thread, so each line gets the time it appeared."""

    def __init__(self, path: Path, interval_s: float = 0.002):
        self.path = path
        self.interval_s = interval_s
        self.times: list[float] = []
        self.sizes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> FileGrowth:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self._observe()

    def _observe(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if not self.sizes or size != self.sizes[-1]:
            self.times.append(time.monotonic())
            self.sizes.append(size)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._observe()

    def appeared_at(self, end_offsets: np.ndarray) -> np.ndarray:
        """When the byte before each offset was first seen in the file."""
        index = np.searchsorted(np.asarray(self.sizes), end_offsets, side="left")
        return np.asarray(self.times)[np.minimum(index, len(self.times) - 1)]


@dataclass(frozen=True)
class FlowResult:
    size: str
    run: str
    expected: int
    frames: int
    missing: int
    duplicates: int
    missing_seqs: tuple[int, ...]  # the first few, to tell start-up from end losses
    wall_s: float
    steady_fps: float
    age_p50_ms: float | None
    age_p95_ms: float | None
    error: str | None = None  # why the run was stopped or failed


def analyse(
    size: str,
    run: str,
    jsonl: Path,
    growth: FileGrowth,
    expected: int,
    wall_s: float,
    error: str | None = None,
) -> FlowResult:
    raw = jsonl.read_bytes() if jsonl.exists() else b""
    lines = raw.splitlines(keepends=True)
    ends = np.cumsum([len(line) for line in lines]) if lines else np.zeros(0, np.int64)
    frames = [(json.loads(line), end) for line, end in zip(lines, ends, strict=True)]
    frames = [(record, end) for record, end in frames if record.get("type") == "frame"]
    seqs = [record["seq"] for record, _ in frames]
    unique = set(seqs)
    missing = sorted(set(range(expected)) - unique)
    steady_fps = 0.0
    if len(frames) >= 2:
        appeared = growth.appeared_at(np.array([end for _, end in frames]))
        steady_fps = (len(frames) - 1) / max(appeared[-1] - appeared[0], 1e-9)
    ages = [record["age_ms"] for record, _ in frames if "age_ms" in record]
    return FlowResult(
        size=size,
        run=run,
        expected=expected,
        frames=len(frames),
        missing=len(missing),
        missing_seqs=tuple(missing[:8]),
        duplicates=len(seqs) - len(unique),
        wall_s=round(wall_s, 2),
        steady_fps=round(float(steady_fps), 1),
        age_p50_ms=round(float(np.percentile(ages, 50)), 2) if ages else None,
        age_p95_ms=round(float(np.percentile(ages, 95)), 2) if ages else None,
        error=error,
    )


def pipeline_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from repcoach.launch.cli import main; main()"]


def _kill_tree(process: subprocess.Popen) -> None:
    """The supervisor starts each stage in its own session, so killing the
    supervisor's process group alone would leave the stages running."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait(10)
    psutil.wait_procs(family, timeout=10)


def run_pipeline(
    video: Path, expected: int, size: str, workers: int, realtime: bool, folder: Path, name: str
) -> FlowResult:
    out = folder / f"{name}.jsonl"
    log = folder / f"{name}.log"
    command = [
        *pipeline_command(),
        "up",
        "--source",
        str(video),
        "--segmenter",
        "passthrough",
        "--joints",
        "none",
        "--no-console",
        "--sink",
        f"jsonl:path={out},frames=1",
        "--workers",
        str(workers),
        "--name",
        name,
        *(["--realtime"] if realtime else []),
    ]
    env = {
        **os.environ,
        "REPCOACH_RUN_DIR": str(folder / "run"),
        "REPCOACH_DATA_DIR": str(folder / "data"),
    }
    with FileGrowth(out) as growth, log.open("wb") as log_file:
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            stalled = _wait_while_flowing(process, growth, limit_s=40 + 3 * expected / PACE_FPS)
        finally:
            if process.poll() is None:
                _kill_tree(process)
        wall_s = time.monotonic() - started
    said = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    error = None
    if stalled:
        error = f"{stalled}, killed; it said: {said}"
    elif process.returncode != 0:
        error = f"exit code {process.returncode}: {said}"
    if error:
        print(f"  {name}: {error}", flush=True)
    run = f"pipeline w{workers}"
    return analyse(size, run, out, growth, expected, wall_s, error)


def _wait_while_flowing(process: subprocess.Popen, growth: FileGrowth, limit_s: float) -> str:
    """Waits for the pipeline to end by itself; says why not ('' if it did)."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.5)
            return ""
        now = time.monotonic()
        if growth.times and now - growth.times[-1] > STALL_S:
            return f"hung (no output for {STALL_S:.0f} s)"
        if now - started > limit_s:
            return f"still running after {limit_s:.0f} s"


# raw chain: source -> relay -> relay -> relay -> sink, like capture -> segment
# -> joints -> score -> sink


def _chain_socket(kind: int, endpoint: str, hwm: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if kind == zmq.PULL:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)
    return sock


def _close_delivering(sock: zmq.Socket) -> None:
    sock.close(linger=10_000)
    zmq.Context.instance().term()


def chain_source(video: str, endpoint: str, pace_fps: float) -> None:
    """Decodes on a thread (as capture does) and pushes [header, pixels]."""
    import cv2

    frames: queue.Queue = queue.Queue(maxsize=4)

    def read() -> None:
        capture = cv2.VideoCapture(video)
        next_at = time.monotonic()
        while True:
            if pace_fps:
                time.sleep(max(next_at - time.monotonic(), 0.0))
                next_at += 1.0 / pace_fps
            ok, image = capture.read()
            if not ok:
                break
            frames.put((image, time.monotonic_ns(), time.time()))
        capture.release()
        frames.put(None)

    threading.Thread(target=read, daemon=True).start()
    sock = _chain_socket(zmq.PUSH, endpoint, PIPELINE_PUSH_HWM)
    seq = 0
    while (item := frames.get()) is not None:
        image, mono_ns, wall = item
        sock.send_multipart([HEADER.pack(seq, mono_ns, wall), image], copy=False)
        seq += 1
    sock.send_multipart([b"eos"])
    _close_delivering(sock)


def chain_relay(inbox_endpoint: str, out_endpoint: str, keep_pixels: bool) -> None:
    inbox = _chain_socket(zmq.PULL, inbox_endpoint, PIPELINE_PULL_HWM)
    out = _chain_socket(zmq.PUSH, out_endpoint, PIPELINE_PUSH_HWM)
    inbox.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS * 3)
    while True:
        parts = inbox.recv_multipart(copy=False)
        if len(parts) == 2:
            np.frombuffer(parts[1].buffer, np.uint8)  # the view a stage would work on
        out.send_multipart(parts if keep_pixels else parts[:1], copy=False)
        if parts[0].bytes == b"eos":
            break
    inbox.close(0)
    _close_delivering(out)


def chain_sink(inbox_endpoint: str, path: str) -> None:
    inbox = _chain_socket(zmq.PULL, inbox_endpoint, RAW_HWM)
    inbox.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS * 3)
    with open(path, "a", encoding="utf-8") as out:
        while True:
            header = inbox.recv_multipart()[0]
            if header == b"eos":
                break
            seq, _, wall = HEADER.unpack(header)
            record = {"type": "frame", "seq": seq, "age_ms": round((time.time() - wall) * 1e3, 2)}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            out.flush()
    inbox.close(0)


def run_chain(
    video: Path, expected: int, size: str, pace_fps: float, folder: Path, name: str
) -> FlowResult:
    spawn = mp.get_context("spawn")
    out = folder / f"{name}.jsonl"
    hops = [f"ipc://{folder}/{name}-{i}.sock" for i in range(4)]
    processes = [
        spawn.Process(target=chain_sink, args=(hops[3], str(out))),
        spawn.Process(target=chain_relay, args=(hops[2], hops[3], False)),  # score: no pixels
        spawn.Process(target=chain_relay, args=(hops[1], hops[2], True)),
        spawn.Process(target=chain_relay, args=(hops[0], hops[1], True)),
        spawn.Process(target=chain_source, args=(str(video), hops[0], pace_fps)),
    ]
    with FileGrowth(out) as growth:
        started = time.monotonic()
        try:
            for process in processes:
                process.start()
            deadline = started + RUN_TIMEOUT_S
            for process in processes:
                process.join(max(deadline - time.monotonic(), 0.1))
        finally:
            _stop_processes(processes, timeout_s=0.1)
        wall_s = time.monotonic() - started
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"raw chain {name}: processes exited with {failed}")
    return analyse(size, CHAIN_RUN, out, growth, expected, wall_s)


@dataclass(frozen=True)
class PipelineFigures:
    throughput: list[FlowResult]
    live: list[FlowResult]


def measure_pipeline(scale: Scale, folder: Path) -> PipelineFigures:
    throughput, live = [], []
    runs = 0

    def name() -> str:
        nonlocal runs
        runs += 1
        return f"bench{os.getpid()}-{runs}"

    videos = {}
    for size, (width, height) in SIZES.items():
        video = folder / f"{size}.mp4"
        videos[size] = (video, write_video(video, width, height, scale.video[size]))
        print(f"  wrote {videos[size][1]} frames of {size} to {video.name}", flush=True)
    for size, (video, frames) in videos.items():
        for _ in range(scale.pipeline_rounds):  # interleaved, so load from elsewhere hits all alike
            throughput.append(run_chain(video, frames, size, 0.0, folder, name()))
            for workers in (1, 2):
                throughput.append(run_pipeline(video, frames, size, workers, False, folder, name()))
            fps = ", ".join(f"{r.run} {r.steady_fps:.0f}" for r in throughput[-3:])
            print(f"  {size} fps: {fps}", flush=True)
    video, frames = videos["640x480"]
    live.append(run_chain(video, frames, "640x480", PACE_FPS, folder, name()))
    live.append(run_pipeline(video, frames, "640x480", 1, True, folder, name()))
    return PipelineFigures(throughput, live)


@dataclass(frozen=True)
class FlowSummary:
    """The best round of one configuration, and what every round showed."""

    size: str
    run: str
    best: FlowResult
    fps_rounds: tuple[float, ...]
    missing: int  # over all rounds
    duplicates: int
    errors: tuple[str, ...]  # runs that failed or hung
    rounds: tuple[FlowResult, ...]
    raw_over_this: float | None  # raw chain's best fps / this best fps

    @property
    def meets_goal(self) -> bool | None:
        if self.run.startswith("raw") or self.size != "640x480":
            return None
        return self.best.steady_fps >= PIPELINE_GOAL_FPS


def summarise(results: list[FlowResult]) -> list[FlowSummary]:
    summaries = []
    keys = list(dict.fromkeys((r.size, r.run) for r in results))
    for size, run in keys:
        rounds = [r for r in results if (r.size, r.run) == (size, run)]
        raw = max(r.steady_fps for r in results if r.size == size and r.run == CHAIN_RUN)
        fps_rounds = tuple(r.steady_fps for r in rounds)
        clean = [r for r in rounds if r.error is None] or rounds
        best = max(clean, key=lambda r: r.steady_fps)
        summaries.append(
            FlowSummary(
                size=size,
                run=run,
                best=best,
                fps_rounds=fps_rounds,
                missing=sum(r.missing for r in rounds),
                duplicates=sum(r.duplicates for r in rounds),
                errors=tuple(r.error for r in rounds if r.error),
                rounds=tuple(rounds),
                raw_over_this=round(raw / best.steady_fps, 3) if best.steady_fps else None,
            )
        )
    return summaries


# --- report


def _verdict(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[red]FAIL[/]"


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 130)


def print_hops(results: list[HopResult], ratios: list[HopRatio]) -> None:
    from rich.table import Table

    table = Table(
        title="One hop, 2 processes, ipc:// (fps: best burst of the rounds; "
        f"latency: paced at {PACE_FPS:.0f} fps)"
    )
    columns = ("frame", "path", "HWM push/pull", "fps best", "median", "GB/s", "p50 ms", "p95 ms")
    for column in columns:
        table.add_column(column, justify="left" if column in ("frame", "path") else "right")
    for r in results:
        table.add_row(
            r.size,
            r.path,
            f"{r.push_hwm}/{r.pull_hwm}",
            f"{r.fps:,.0f}",
            f"{r.fps_median:,.0f}",
            f"{r.gb_per_s:.2f}",
            f"{r.latency_p50_ms:.2f}",
            f"{r.latency_p95_ms:.2f}",
        )
    goal = Table(title=f"One hop: product vs raw (goal <= {HOP_GOAL_RATIO}x in fps and p50)")
    for column in ("frame", "product", "vs", "fps raw/prod*", "p50 prod/raw", "p95 prod/raw"):
        goal.add_column(column)
    goal.add_column("goal")
    for r in ratios:
        note = "" if r.like_for_like else " (HWMs differ)"
        goal.add_row(
            r.size,
            r.product,
            r.baseline + note,
            f"{r.throughput:.2f}",
            f"{r.latency_p50:.2f}",
            f"{r.latency_p95:.2f}",
            _verdict(r.passed),
        )
    console = _console()
    console.print(table)
    console.print(goal)
    console.print("* median over rounds of the ratio within a round (the variants take turns)")


def _ages(r: FlowResult) -> str:
    if r.age_p50_ms is None:
        return "missing"
    return f"{r.age_p50_ms:.1f} / {r.age_p95_ms:.1f}"


def print_pipeline(summaries: list[FlowSummary], live: list[FlowResult]) -> None:
    from rich.table import Table

    table = Table(
        title="Whole pipeline, 5 stages, pass-through, lossless (best round; "
        "missing/dup over all rounds)"
    )
    columns = ("frame", "run", "frames", "missing/dup", "wall s", "steady fps", "per round")
    for column in columns:
        table.add_column(column, justify="left" if column in ("frame", "run") else "right")
    table.add_column("raw/this*", justify="right")
    table.add_column(f">= {PIPELINE_GOAL_FPS:.0f} fps")
    table.add_column("failed runs", justify="right")
    for s in summaries:
        table.add_row(
            s.size,
            s.run,
            f"{s.best.frames}/{s.best.expected}",
            f"{s.missing}/{s.duplicates}",
            f"{s.best.wall_s:.1f}",
            f"{s.best.steady_fps:.0f}",
            " ".join(f"{f:.0f}" for f in s.fps_rounds),
            "" if s.run == CHAIN_RUN or s.raw_over_this is None else f"{s.raw_over_this:.2f}",
            "" if s.meets_goal is None else _verdict(s.meets_goal),
            f"[red]{len(s.errors)}[/]" if s.errors else "0",
        )
    paced = Table(title=f"Live: 640x480 paced at {PACE_FPS:.0f} fps (--realtime), capture -> sink")
    for column in ("run", "frames", "missing/dup", "missing seqs", "wall s", "age p50 / p95 ms"):
        paced.add_column(column)
    for r in live:
        counts = f"{r.missing}/{r.duplicates}"
        seqs = " ".join(map(str, r.missing_seqs)) + (
            " ..." if r.missing > len(r.missing_seqs) else ""
        )
        paced.add_row(r.run, f"{r.frames}/{r.expected}", counts, seqs, f"{r.wall_s:.1f}", _ages(r))
    console = _console()
    console.print(table)
    console.print(
        "* best raw chain fps / best fps of this run (a few long rounds: the best is the one "
        "least slowed by other load)"
    )
    console.print(paced)
    for s in summaries:
        if s.missing:
            lost = sorted({q for r in s.rounds for q in r.missing_seqs})
            console.print(f"[red]lost frames[/] {s.size} {s.run}: seqs {lost} (first few per run)")
    failures = [(s.size, s.run, e) for s in summaries for e in s.errors]
    failures += [(r.size, f"{r.run}, --realtime", r.error) for r in live if r.error]
    for size, run, error in failures:
        console.print(f"[red]failed[/] {size} {run}: {error}", markup=True, highlight=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and rounds")
    parser.add_argument("--part", choices=("all", "hop", "curve", "pipeline"), default="all")
    parser.add_argument("--json", type=Path, help="also save the figures here")
    args = parser.parse_args()
    scale = Scale.of(args.quick)
    folder = Path(tempfile.mkdtemp(prefix="rcbt", dir="/tmp"))  # ipc paths must stay short
    figures: dict = {
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "quick": args.quick,
        "scale": asdict(scale),
    }
    ok = True
    try:
        if args.part in ("all", "hop"):
            print("one hop ...", flush=True)
            hops = measure_hops(scale, folder)
            ratios = hop_ratios(hops)
            print_hops(hops, ratios)
            figures["one_hop"] = [asdict(r) for r in hops]
            figures["one_hop_ratios"] = [asdict(r) | {"passed": r.passed} for r in ratios]
        if args.part in ("all", "curve"):
            print("one hop over tcp, plain and CURVE ...", flush=True)
            tcp_hops = measure_curve(scale, folder)
            tcp_ratios = curve_ratios(tcp_hops)
            print_curve(tcp_hops, tcp_ratios)
            figures["curve_hop"] = [asdict(r) for r in tcp_hops]
            figures["curve_ratios"] = [asdict(r) | {"passed": r.passed} for r in tcp_ratios]
        if args.part in ("all", "pipeline"):
            print("whole pipeline ...", flush=True)
            flows = measure_pipeline(scale, folder)
            summaries = summarise(flows.throughput)
            print_pipeline(summaries, flows.live)
            figures["pipeline"] = [asdict(s) | {"meets_goal": s.meets_goal} for s in summaries]
            figures["live"] = [asdict(r) for r in flows.live]
            ok = all(s.missing == 0 and s.duplicates == 0 and not s.errors for s in summaries)
            ok = ok and all(r.duplicates == 0 and r.error is None for r in flows.live)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures["load_average_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"figures saved to {args.json}")
    if not ok:
        print("error: a run failed, lost or duplicated frames (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

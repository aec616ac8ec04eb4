"""Fuzz every socket of a running pipeline; check nothing crashes, memory
stays flat and every unusable message is counted.

    .venv/bin/python bench/fuzz.py [--count 100000] [--quick] [--seed 0]

Starts `pipeline up --source synthetic:squat --loop --realtime` (2 passthrough
workers, a jsonl sink) in a fresh run folder, then sends `--count` messages,
spread over the eight sockets a peer can reach (capture's `work` ROUTER, the
joints stage's `segmented` PULL, the score stage's `joined` PULL, `results`
and `tap` XPUB and `snapshot` ROUTER, the supervisor's `reports` PULL and `control`
ROUTER): random bytes, bit-flipped and truncated valid messages, fields
replaced by values of the wrong type, huge and non-finite numbers, nesting
thousands deep, wrong part counts, and valid-looking but hostile messages
(forged seqs, floods of tracks, oversized masks, forged reports).

Checks, printed as a table and reflected in the exit code (0 all passed):

- crashed: every supervised stage alive with 0 restarts and the same pid as
  before, the supervisor alive.
- memory: each process's RSS after the fuzz vs after a warm-up (the first
  tenth of the messages, at least 3,000: Python's allocator grows once, and
  capture holds the frames dealt to the fuzz's own worker slots): at most
  `--max-growth-mb` (default 25 MB); capture may also hold the frames it
  dealt to the worker slots the fuzz's own valid HELLOs got (at most
  MAX_CREDITS frames each, until they are re-sent).
- counted: per receiving process, the growth of its rejected counters vs
  what was sent to it. Each message is classified on the sender's side:
  *must reject* (it cannot be decoded or is outside the socket's protocol:
  the receiver has to count it), or *usable* (it decodes and fits the
  protocol: a valid HELLO, a well-formed DONE, a well-formed frame with forged content, a report
  for an unknown stage, a subscription, a STATUS request; the receiver may
  use it, or refuse it on content and count that too: out-of-window frames,
  a full worker table, forged report pids). The check is
  must-reject <= counted <= sent for every process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import psutil
import zmq

from repcoach.common.config import station_name
from repcoach.common.dispatch import (
    DONE,
    EOS_KEY,
    HELLO,
    MAX_CREDITS,
    SPARE_WORKER_SLOTS,
    Dispatcher,
    _done_key,
    done,
)
from repcoach.common.endpoints import ROLES
from repcoach.common.landmarks import NUM_LANDMARKS
from repcoach.common.messages import (
    EndOfStream,
    FrameMeta,
    FramePacket,
    MessageError,
    PersonInstance,
    PersonJoints,
    PersonScore,
    StageReport,
    decode,
)

# Which process counts what arrives on each socket.
RECEIVER = {
    "work": "capture",
    "segmented": "joints",
    "joined": "score",
    "results": "score",
    "tap": "score",
    "snapshot": "score",
    "reports": "supervisor",
    "control": "supervisor",
}
SOURCE = "synthetic:squat,size=640x480"
STATION = station_name(SOURCE)
FRAME_MB = 640 * 480 * 3 / 2**20
FUZZ_IDENTITIES = 4  # DEALER sockets per ROUTER socket

# --- message generation


def _frame_templates(rng: np.random.Generator) -> list[list[bytes]]:
    w, h = 32, 24
    seq = int(rng.integers(0, 10**6))
    meta = FrameMeta("fuzz", seq, seq - 1, 0, 0.0, seq / 30, w, h, total=0, station=STATION)
    xy = rng.uniform(0, w, (NUM_LANDMARKS, 2)).astype(np.float32)
    joints = PersonJoints(
        int(rng.integers(0, 10**6)),
        xy,
        np.full(NUM_LANDMARKS, 0.9, np.float32),
        np.zeros((NUM_LANDMARKS, 3), np.float32),
    )
    person = PersonInstance((1.0, 2.0, 9.0, 12.0), 0.7, np.ones((10, 8), bool), -1, joints)
    many_tracks = tuple(
        PersonJoints(int(t), xy, joints.visibility, joints.world_xyz)
        for t in rng.integers(0, 10**9, 40)
    )
    packets = [
        FramePacket(meta, pixels=np.zeros((h, w, 3), np.uint8)),
        FramePacket(meta, persons=(person,), joints=(joints,)),
        FramePacket(meta, joints=many_tracks),
        FramePacket(meta.__class__(**{**meta.__dict__, "seq": 10**12})),
        FramePacket(meta, scores=(PersonScore(3, {"knee": 90.0}, "squat", 1, 0, "up"),)),
    ]
    # an end of stream only ever goes out mutated (see `_safe`)
    eos = EndOfStream("fuzz", seq, seq, 0, "x", STATION)
    wires = [p.to_wire() for p in packets] + [eos.to_wire()]
    return [[bytes(memoryview(part)) for part in wire] for wire in wires]


def _report_template(rng: np.random.Generator, names: list[str]) -> list[bytes]:
    stage = str(rng.choice([*names, "fake-" + str(int(rng.integers(0, 10**6)))]))
    pid = int(rng.integers(1, 2**22))
    report = StageReport(stage, pid, 1, 1, {"stale": 1}, {"malformed": 1}, 0, 1.0, 1, 1, 50, 60)
    return report.to_wire()


def _templates(role: str, rng: np.random.Generator, names: list[str]) -> list[list[bytes]]:
    if role in ("segmented", "joined"):
        return _frame_templates(rng)
    if role == "reports":
        return [_report_template(rng, names)]
    if role == "work":
        credits = int(rng.integers(-5, 100))
        return [
            [HELLO, msgpack.packb({"credits": credits})],
            [HELLO],
            done(int(rng.integers(10**9, 10**12)), STATION),
            done(EOS_KEY, STATION),
        ]
    if role == "control":
        return [[b"", b"STATUS"], [b"", b"CONFIG"], [b"", b"BOGUS"]]
    if role == "snapshot":
        return [[b"", b"SNAPSHOT"]]
    return [[b"\x01\xfe" + bytes(rng.integers(0, 256, 4, dtype=np.uint8))], [b"\x00eos"]]


def _random_value(rng: np.random.Generator, depth: int = 0):
    kind = int(rng.integers(0, 10 if depth < 3 else 7))
    return [
        lambda: None,
        lambda: bool(rng.integers(0, 2)),
        lambda: int(rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 10**12])),
        lambda: float(rng.choice([0.0, 1e308, -1e308, float("nan"), float("inf")])),
        lambda: "x" * int(rng.integers(0, 300)),
        lambda: bytes(rng.integers(0, 256, int(rng.integers(0, 100)), dtype=np.uint8)),
        lambda: int(rng.integers(-100, 100)),
        lambda: [_random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))],
        lambda: {str(i): _random_value(rng, depth + 1) for i in range(int(rng.integers(0, 5)))},
        lambda: [],
    ][kind]()


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _replace_field(parts: list[bytes], rng: np.random.Generator, value_of) -> list[bytes]:
    try:
        head = msgpack.unpackb(parts[0], raw=False)
    except Exception:
        return parts
    paths = [p for p in _paths(head) if p]
    if not isinstance(head, dict) or not paths:
        return parts
    path = paths[int(rng.integers(0, len(paths)))]
    target = head
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value_of()
    try:
        return [msgpack.packb(head, use_bin_type=True), *parts[1:]]
    except (ValueError, OverflowError):
        return parts


def _deep(rng: np.random.Generator) -> list[bytes]:
    """A header whose version (or type) is a list nested thousands deep,
    written by hand (msgpack refuses to pack such depth)."""
    depth = int(rng.choice([100, 1000, 1023, 5000, 100_000]))
    nested = b"\x91" * depth + b"\x02"
    key = b"\xa1v" if rng.integers(0, 2) else b"\xa4type"
    other = b"\xa4type\xa5frame" if key == b"\xa1v" else b"\xa1v\x02"
    return [b"\x82" + key + nested + other]


def _bit_flip(parts: list[bytes], rng: np.random.Generator) -> list[bytes]:
    index = int(rng.integers(0, len(parts)))
    raw = bytearray(parts[index])
    if raw:
        for _ in range(int(rng.integers(1, 6))):
            position = int(rng.integers(0, len(raw)))
            raw[position] ^= 1 << int(rng.integers(0, 8))
    return [*parts[:index], bytes(raw), *parts[index + 1 :]]


def _truncate(parts: list[bytes], rng: np.random.Generator) -> list[bytes]:
    index = int(rng.integers(0, len(parts)))
    cut = int(rng.integers(0, len(parts[index]) + 1))
    return [*parts[:index], parts[index][:cut], *parts[index + 1 :]]


def _wrong_parts(parts: list[bytes], rng: np.random.Generator) -> list[bytes]:
    choice = int(rng.integers(0, 3))
    if choice == 0 and len(parts) > 1:
        return parts[:1] if rng.integers(0, 2) else parts[1:]
    if choice == 1:
        return [*parts, *(b"extra" for _ in range(int(rng.integers(1, 4))))]
    return [b"".join(parts)]


def _random_bytes(rng: np.random.Generator) -> list[bytes]:
    return [
        bytes(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8))
        for _ in range(int(rng.integers(1, 5)))
    ]


KINDS = (
    "random",
    "bit-flip",
    "truncated",
    "wrong-type",
    "huge-number",
    "deep",
    "wrong-parts",
    "valid",
)


def mutations(rng: np.random.Generator, count: int, names: list[str] | None = None):
    """`count` (role, kind, parts) to send; see the module docstring."""
    names = names or ["capture", "joints", "score", "segment-0"]
    huge = [2**64 - 1, -(2**63), 10**12, 1e308, float("nan"), float("inf"), -1]
    for i in range(count):
        role = ROLES[i % len(ROLES)]
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        templates = _templates(role, rng, names)
        parts = list(templates[int(rng.integers(0, len(templates)))])
        if kind == "random":
            parts = _random_bytes(rng)
        elif kind == "bit-flip":
            parts = _bit_flip(parts, rng)
        elif kind == "truncated":
            parts = _truncate(parts, rng)
        elif kind == "wrong-type":
            parts = _replace_field(parts, rng, lambda: _random_value(rng))
        elif kind == "huge-number":
            parts = _replace_field(parts, rng, lambda: huge[int(rng.integers(0, len(huge)))])
        elif kind == "deep":
            parts = _deep(rng)
        elif kind == "wrong-parts":
            parts = _wrong_parts(parts, rng)
        yield role, kind, _safe(role, parts)


def _safe(role: str, parts: list[bytes]) -> list[bytes]:
    """Keep the fuzz from doing what a peer allowed on the sockets may do to
    the run itself: stop it (STOP on control), end its stream (a well-formed
    end-of-stream on a stage's inbox: only authentication keeps that out, CURVE
    on tcp and an owner-only run folder for ipc), or subscribe to a topic it
    would then have to read at full rate (results)."""
    if role == "control" and parts == [b"", b"STOP"]:
        return [b"", b"BOGUS"]
    if role in ("segmented", "joined"):
        try:
            if isinstance(decode(parts), EndOfStream):
                return [b"\x00" + parts[0]]  # not sent as a usable end of stream
        except MessageError:
            pass
    if role in ("results", "tap"):
        parts = [b"".join(parts)]  # one part: see `must_reject`
        if parts[0][:1] == b"\x01":
            parts = [b"\x01\xfe" + parts[0][1:]]
    return parts


def must_reject(role: str, parts: list[bytes], supervised: dict[str, int]) -> bool:
    """Whether the receiver has to count this message as rejected (False:
    usable, or legitimately ignored; see the module docstring)."""
    if role in ("segmented", "joined", "reports"):
        try:
            message = decode(parts)
        except MessageError:
            return True
        if role != "reports":
            return False
        if not isinstance(message, StageReport):
            return True
        return message.stage in supervised and supervised[message.stage] != message.pid
    if role == "work":
        if not parts or len(parts) > 3:
            return True
        if parts[0] == HELLO and len(parts) <= 2:
            try:
                Dispatcher._declared_credits(parts[1:])
            except MessageError:
                return True
            return False
        if parts[0] == DONE and len(parts) == 3:
            try:
                _done_key(parts[1])
            except MessageError:
                return True
            # Well-formed: usable when that fuzz identity holds the frame
            # (its valid HELLO got it frames), else rejected (unknown key).
            return parts[2] != STATION.encode()
        return True
    if role == "control":
        return not (len(parts) == 2 and parts[0] == b"" and parts[1] in (b"STATUS", b"CONFIG"))
    if role == "snapshot":
        return parts != [b"", b"SNAPSHOT"]
    # results, tap: one part; 0/1 first byte is a (un)subscription, handled by XPUB
    return not parts[0] or parts[0][0] not in (0, 1)


# --- the pipeline


class Run:
    def __init__(self, root: Path, workers: int):
        self.root = root
        self.env = {
            **os.environ,
            "REPCOACH_RUN_DIR": str(root),
            "REPCOACH_DATA_DIR": str(root / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        self.folder = root / "default"
        command = [sys.executable, "-c", "from repcoach.launch.cli import main; main()"]
        self.command = command
        self.log = open(root / "up.log", "w")  # noqa: SIM115
        self.up = subprocess.Popen(
            [
                *command,
                "up",
                "--source",
                SOURCE,
                "--loop",
                "--realtime",
                "--workers",
                str(workers),
                "--segmenter",
                "passthrough",
                "--joints",
                "none",
                "--no-console",
                "--no-history",
                "--sink",
                f"jsonl:path={root / 'results.jsonl'}",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def status(self) -> dict | None:
        result = subprocess.run(
            [*self.command, "status", "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(result.stdout) if result.returncode == 0 else None

    def supervisor_pid(self) -> int:
        return json.loads((self.folder / "pipeline.json").read_text())["pid"]

    def stop(self) -> int:
        if self.up.poll() is None:
            os.killpg(self.up.pid, signal.SIGINT)
            try:
                self.up.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.up.pid, signal.SIGKILL)
                self.up.wait(10)
        self.log.close()
        return self.up.returncode


def wait_until_flowing(run: Run, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.up.poll() is not None:
            raise SystemExit(f"error: the pipeline exited early; see {run.root / 'up.log'}")
        status = run.status()
        if status:
            reports = {r["stage"]: r["report"] for r in status["stages"] if r["supervised"]}
            if all(reports.values()) and reports["score"]["frames_out"] > 5:
                return status
        time.sleep(0.5)
    raise SystemExit("error: the pipeline did not start moving frames in time")


def snapshot_of(run: Run, status: dict) -> dict[str, dict]:
    """Per process: pid, alive, restarts, rss (MB), rejected total."""
    out = {}
    for row in status["stages"]:
        if not row["supervised"]:
            continue
        report = row["report"] or {}
        pid = report.get("pid", 0)
        out[row["stage"]] = {
            "pid": pid,
            "alive": row["alive"],
            "restarts": row["restarts"],
            "rss_mb": _rss_mb(pid),
            "rejected": sum(report.get("rejected", {}).values()),
            "by_kind": report.get("rejected", {}),
            "dropped": report.get("dropped", {}),
        }
    pid = run.supervisor_pid()
    out["supervisor"] = {
        "pid": pid,
        "alive": psutil.pid_exists(pid),
        "restarts": 0,
        "rss_mb": _rss_mb(pid),
        "rejected": sum(status.get("supervisor", {}).get("rejected", {}).values()),
        "by_kind": status.get("supervisor", {}).get("rejected", {}),
        "dropped": {},
    }
    return out


def _rss_mb(pid: int) -> float:
    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except (psutil.Error, ValueError):
        return float("nan")


# --- sending


class Senders:
    SOCKET = {
        "work": zmq.DEALER,
        "segmented": zmq.PUSH,
        "joined": zmq.PUSH,
        "results": zmq.XSUB,
        "tap": zmq.XSUB,
        "snapshot": zmq.DEALER,
        "reports": zmq.PUSH,
        "control": zmq.DEALER,
    }

    def __init__(self, folder: Path):
        self.context = zmq.Context()
        self.sockets: dict[str, list[zmq.Socket]] = {}
        for role, kind in self.SOCKET.items():
            # Several identities on the ROUTERs (a flood of peers, not one).
            count = FUZZ_IDENTITIES if kind == zmq.DEALER else 1
            self.sockets[role] = []
            for _ in range(count):
                sock = self.context.socket(kind)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, 1000)
                sock.setsockopt(zmq.RCVHWM, 100)
                sock.connect(f"ipc://{folder}/{role}.sock")
                self.sockets[role].append(sock)
        self.unsent = Counter()
        self.turn = 0

    def send(self, role: str, parts: list[bytes]) -> bool:
        socks = self.sockets[role]
        self.turn += 1
        sock = socks[self.turn % len(socks)]
        deadline = time.monotonic() + 5.0
        while True:
            try:
                sock.send_multipart(parts, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                if time.monotonic() > deadline:
                    self.unsent[role] += 1
                    return False
                self.drain()
                sock.poll(50, zmq.POLLOUT)

    def drain(self) -> None:
        """Read what comes back (frames for a fuzz 'worker', replies), so no
        fuzz socket is a slow reader."""
        for socks in self.sockets.values():
            for sock in socks:
                if sock.type == zmq.PUSH:
                    continue
                for _ in range(1000):
                    try:
                        sock.recv_multipart(flags=zmq.NOBLOCK)
                    except zmq.Again:
                        break

    def close(self) -> None:
        self.context.destroy(linger=0)


# --- main


def warmup_count(count: int) -> int:
    """Messages sent before memory is measured the second time: a tenth of
    the run, but at least 3,000 (or half a short run), by which time the fuzz's
    own HELLOs have filled the worker slots they can get, and capture holds
    the frames (bounded by MAX_CREDITS each) dealt to them."""
    return max(count // 10, min(count // 2, 3000), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages to send")
    parser.add_argument("--quick", action="store_true", help="2,000 messages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-growth-mb", type=float, default=25.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    count = 2000 if args.quick else args.count
    if count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="rcfz", dir="/tmp"))
    run = Run(root, args.workers)
    senders = None
    try:
        status = wait_until_flowing(run, timeout=180)
        names = [r["stage"] for r in status["stages"] if r["supervised"]]
        before = snapshot_of(run, status)
        supervised = {n: v["pid"] for n, v in before.items() if n != "supervisor"}
        senders = Senders(run.folder)
        time.sleep(0.5)  # let the connects complete
        rng = np.random.default_rng(args.seed)
        sent: Counter = Counter()
        must: Counter = Counter()
        kinds: Counter = Counter()
        warmup_at = warmup_count(count)
        warm = before
        started = time.monotonic()
        for i, (role, kind, parts) in enumerate(mutations(rng, count, names)):
            if senders.send(role, parts):
                receiver = RECEIVER[role]
                sent[receiver] += 1
                kinds[kind] += 1
                must[receiver] += must_reject(role, parts, supervised)
            if i % 200 == 0:
                senders.drain()
            if i + 1 == warmup_at:
                time.sleep(2.0)
                warm = snapshot_of(run, run.status() or status)
        elapsed = time.monotonic() - started
        # Reports arrive about once a second: wait until the counts settle.
        after = None
        for _ in range(60):
            senders.drain()
            time.sleep(1.5)
            status = run.status()
            if status is None:
                continue
            now = snapshot_of(run, status)
            settled = after is not None and all(
                now[n]["rejected"] == after[n]["rejected"] for n in now
            )
            after = now
            if settled and all(now[n]["rejected"] - before[n]["rejected"] >= must[n] for n in must):
                break
        if after is None:
            print("error: the pipeline stopped answering status", file=sys.stderr)
            return 1
        return report(args, count, elapsed, before, warm, after, sent, must, kinds, senders)
    finally:
        if senders is not None:
            senders.close()
        code = run.stop()
        print(f"pipeline up exit code after SIGINT: {code} (log: {root / 'up.log'})")
        if os.environ.get("REPCOACH_FUZZ_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


def report(args, count, elapsed, before, warm, after, sent, must, kinds, senders) -> int:
    ok = True
    # Capture keeps every frame it dealt to a worker slot until it is done:
    # the slots the fuzz's own valid HELLOs got hold up to MAX_CREDITS each.
    fuzz_slots = min(FUZZ_IDENTITIES, args.workers + SPARE_WORKER_SLOTS)
    allowance = {"capture": args.max_growth_mb + fuzz_slots * MAX_CREDITS * FRAME_MB}
    print(f"fuzz: {sum(sent.values())} of {count} messages sent in {elapsed:.1f} s", end="")
    print(f" ({sum(sent.values()) / max(elapsed, 1e-9):.0f}/s); unsent (peer full): ", end="")
    print(dict(senders.unsent) or 0)
    print("by kind:", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    header = (
        f"{'process':<12} {'alive':>5} {'restarts':>8} {'same pid':>8} {'rss before':>10} "
        f"{'warm':>7} {'after':>7} {'growth':>7} {'sent':>7} {'must rej':>8} "
        f"{'counted':>8} {'verdict':>8}"
    )
    print(header)
    rows = {}
    for name in after:
        b, w, a = before.get(name), warm.get(name, before.get(name)), after[name]
        if b is None:
            continue
        growth = a["rss_mb"] - w["rss_mb"]
        counted = a["rejected"] - b["rejected"]
        checks = [
            a["alive"],
            a["restarts"] == 0,
            a["pid"] == b["pid"],
            growth <= allowance.get(name, args.max_growth_mb),
            must[name] <= counted <= sent[name] + 0,
        ]
        verdict = "ok" if all(checks) else "FAIL"
        ok &= verdict == "ok"
        rows[name] = {
            "alive": a["alive"],
            "restarts": a["restarts"],
            "same_pid": a["pid"] == b["pid"],
            "rss_before_mb": round(b["rss_mb"], 1),
            "rss_warm_mb": round(w["rss_mb"], 1),
            "rss_after_mb": round(a["rss_mb"], 1),
            "growth_allowed_mb": round(allowance.get(name, args.max_growth_mb), 1),
            "sent": sent[name],
            "must_reject": must[name],
            "counted": counted,
            "rejected_by_kind": a["by_kind"],
            "dropped": a["dropped"],
            "verdict": verdict,
        }
        print(
            f"{name:<12} {a['alive']!s:>5} {a['restarts']:>8} {a['pid'] == b['pid']!s:>8} "
            f"{b['rss_mb']:>10.1f} {w['rss_mb']:>7.1f} {a['rss_mb']:>7.1f} {growth:>+7.1f} "
            f"{sent[name]:>7} {must[name]:>8} {counted:>8} {verdict:>8}"
        )
    for name, row in rows.items():
        if row["rejected_by_kind"] or row["dropped"]:
            print(f"  {name}: rejected {row['rejected_by_kind']}; dropped {row['dropped']}")
    print(
        "must rej: messages that cannot be decoded or break the socket's protocol; "
        "counted: growth of the process's rejected counters (may exceed must rej: "
        "well-formed but refused on content, e.g. out-of-window frames, a full worker "
        "table, forged report pids); growth: RSS after the fuzz minus after the warm-up "
        f"(first {warmup_count(count)} messages), allowed {args.max_growth_mb:.0f} MB, "
        f"capture {allowance['capture']:.0f} MB (+ {fuzz_slots} fuzz worker slots x "
        f"{MAX_CREDITS} frames held)."
    )
    if args.json:
        args.json.write_text(json.dumps({"count": count, "elapsed_s": elapsed, "rows": rows}))
    print("verdict:", "all checks passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

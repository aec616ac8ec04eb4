"""Speed and memory of the whole vision pipeline, next to single-process
baselines measured in the same run (issue 3's figures).

The clip: a shared workout clip (../shared/clips, or $REPCOACH_SHARED_CLIPS),
centre-cropped to 4:3 and resized to 640x480, written as a 30 fps mp4v file in
a temp folder (the 23.976 fps originals play 1.25x faster); one person.
`--synthetic` renders `synthetic:squat` frames instead (no shared clips needed).

1. Throughput, file mode (lossless: every frame, once). In interleaved rounds
   (the order flips each round, so load from other work hits all alike):

     mediapipe Pose   what a simple app does: decode, BGR->RGB,
                      `mp.solutions.pose.Pose(model_complexity=1,
                      static_image_mode=False).process` on every frame in one
                      loop (single person)
     sequential       the product's own work in one process, no parallelism:
                      decode, `BlazePoseSegmenter(landmarks=True).segment`
                      (people, masks and landmarks, as the segment workers
                      run it), `JointsStage` (tracking, smoothing), `Coach`
     pipeline wN      `pipeline up --source CLIP --workers N --no-console
                      --sink jsonl:path=F,frames=1 --summary S` (N = 1, 2)

   Both baselines run in a fresh spawned process, so all four pay their own
   start-up. Figures per run:
     steady fps       (frames - 1) / (last result - first result); pipeline
                      results are stamped when their JSONL line appears (a
                      thread tails the file), baseline results when computed
     fps excl start   frames / (wall - start-up), start-up = process start to
                      first result (so shut-down is included)
     lat p50/p95      pipeline: `age_ms` (capture -> sink, includes queueing);
                      baselines: decoded frame -> its result
     CPU s            all processes of the run, start-up included
                      (RUSAGE_CHILDREN before/after); CPU ms/fr: the same
                      per frame of the clip
     steady CPU ms/fr CPU of all the run's processes from its first result to
                      its last, per frame in between: start-up and shut-down
                      excluded (a short clip's CPU is mostly start-up: models
                      loaded once per process). Pipeline: the supervisor and
                      all its descendants, read from /proc every 50 ms; baselines: the
                      process's own CPU clock at the first and last result
   Ratios pipeline / baseline are taken within a round, then the median over
   rounds. Goal: pipeline >= 1.0x the baselines.

2. Live: the same clip with `--realtime` (paced at 30 fps as a camera), 1 and 2
   workers: `age_ms` p50/p95, frames delivered vs the clip's frames, and the
   summary's frames/dropped. Goal: p95 <= 150 ms.

3. Memory, per stage, sampled every second during the file-mode runs (the
   last round): `peak_rss_mb` and `rss_mb` from the pipeline's status (the
   same request `pipeline status --json` makes, in-process, because a CLI call
   costs ~0.5 CPU-s), and VmHWM from /proc/PID/status (the process's own
   high-water mark). `--soak-minutes N`: `pipeline up --source CLIP --loop
   --realtime` for N minutes, sampling every stage's `rss_mb` with
   `pipeline status --json` every 10 s; prints first-minute vs last-minute
   RSS per stage, then stops it with SIGINT (as Ctrl-C) and waits.

    .venv/bin/python bench/vision.py [--quick] [--synthetic] [--rounds N] [--no-live]
                                     [--soak-minutes N [--soak-only]] [--json PATH]

Exits 1 if a run failed, or a file-mode run lost or duplicated frames (not for
a missed goal). Every process it starts is ended before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import psutil

from repcoach.common.chunks import Chunker, continues
from repcoach.common.clips import clips_dir

WIDTH, HEIGHT, FPS = 640, 480, 30.0
CLIP_FULL = "lunge_forward_side_8reps_wahoo.mp4"
CLIP_QUICK = "squat_side_4reps_wahoo.mp4"
CPU_GOAL_RATIO = 1.25  # issue 14: steady CPU a frame, pipeline / mediapipe loop
GOAL_RATIO = 1.0
GOAL_LIVE_P95_MS = 150.0
MEDIAPIPE, SEQUENTIAL = "mediapipe Pose", "sequential"
STATUS_POLL_S = 1.0
SOAK_POLL_S = 10.0
START_LIMIT_S = 120.0  # no first result by then: the run is stuck
STALL_S = 30.0  # no new result for this long once flowing: hung
STOP_GRACE_S = 45.0  # SIGINT -> exit; the supervisor's own grace is 20 s + TERM
TAIL_INTERVAL_S = 0.005
SOAK_REPORT_GROWTH_MB = 5.0  # a stage that grew this much gets its RSS series printed


@dataclass(frozen=True)
class Scale:
    """How long each part runs (`--quick` shrinks it)."""

    clip: str  # shared clip used
    synthetic_reps: int  # reps of `synthetic:squat` with --synthetic
    rounds: int

    @classmethod
    def of(cls, quick: bool, rounds: int | None) -> Scale:
        if quick:
            return cls(CLIP_QUICK, 3, rounds or 1)
        return cls(CLIP_FULL, 8, rounds or 3)


# --- the clip


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    origin: str


def _to_640x480(frame: np.ndarray) -> np.ndarray:
    """Centre crop to 4:3 (no stretching), then resize."""
    height, width = frame.shape[:2]
    if width * 3 > height * 4:
        crop = height * 4 // 3
        frame = frame[:, (width - crop) // 2 : (width - crop) // 2 + crop]
    elif width * 3 < height * 4:
        crop = width * 3 // 4
        frame = frame[(height - crop) // 2 : (height - crop) // 2 + crop]
    return cv2.resize(frame, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


def _write_mp4(path: Path, frames) -> int:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v here")
    for frame in frames:
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    capture = cv2.VideoCapture(str(path))  # count what a reader sees
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def shared_clip(name: str, folder: Path) -> Clip | None:
    source = clips_dir() / name
    if not source.is_file():
        return None
    capture = cv2.VideoCapture(str(source))

    def frames():
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield _to_640x480(frame)

    path = folder / "clip.mp4"
    count = _write_mp4(path, frames())
    capture.release()
    return Clip(path, count, f"{name} -> 640x480 (centre 4:3 crop), 30 fps")


def synthetic_clip(reps: int, folder: Path) -> Clip:
    from repcoach.stages.synthetic import SyntheticSource

    spec = f"squat,reps={reps},size={WIDTH}x{HEIGHT},fps={FPS:g}"
    source = SyntheticSource.from_spec(spec)
    path = folder / "clip.mp4"
    count = _write_mp4(path, (image for image, _truth in source.frames()))
    return Clip(path, count, f"synthetic:{spec}")


# --- results


@dataclass
class RunResult:
    """One run of a baseline or the pipeline over the clip."""

    run: str
    round: int
    expected: int  # frames in the clip
    frames: int  # results received
    missing: int = 0
    duplicates: int = 0
    steady_fps: float = 0.0
    fps_excl_start: float = 0.0
    startup_s: float = 0.0
    wall_s: float = 0.0
    lat_p50_ms: float | None = None
    lat_p95_ms: float | None = None
    cpu_s: float = 0.0
    steady_cpu_ms: float | None = None  # per frame, first to last result
    steady_cpu_by_process: dict[str, float] = field(default_factory=dict)  # pipeline
    with_people: int = 0  # frames with at least one person found
    first_seq: int | None = None  # pipeline: the first frame delivered (live skips start-up)
    summary: dict | None = None  # pipeline: the session summary
    memory: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> MB figures
    stages: dict[str, dict] = field(default_factory=dict)  # pipeline: last status per stage
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.missing > 0 or self.duplicates > 0


def _percentile(values, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _timing(result: RunResult, started: float, ended: float, done: list[float]) -> None:
    result.wall_s = round(ended - started, 2)
    if not done:
        return
    result.startup_s = round(done[0] - started, 2)
    if len(done) >= 2 and done[-1] > done[0]:
        result.steady_fps = round((len(done) - 1) / (done[-1] - done[0]), 2)
    result.fps_excl_start = round(len(done) / max(ended - done[0], 1e-9), 2)


def _process_label(pid: int, root: int) -> str:
    """Which part of the pipeline a process is: `supervisor`, or the stage
    kind its command line names (`python -m repcoach.launch.stage KIND ...`)."""
    if pid == root:
        return "supervisor"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    if b"repcoach.launch.stage" in argv:
        at = argv.index(b"repcoach.launch.stage")
        if at + 1 < len(argv):
            return argv[at + 1].decode(errors="replace")
    return "other"


def tree_cpu_s(root: int) -> dict[str, float]:
    """CPU seconds so far of process `root` and all its descendants (with
    the children they have reaped), from /proc, by `_process_label`. The
    supervisor starts each stage in a session of its own, so the tree, not
    the session, is the run."""
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])  # after "pid (comm)": state ppid ...
        cpu[pid] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    by_label: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in cpu:
            label = _process_label(pid, root)
            by_label[label] = by_label.get(label, 0.0) + cpu[pid] / os.sysconf("SC_CLK_TCK")
        todo.extend(child for child, up in parent.items() if up == pid)
    return by_label


class CpuSampler(threading.Thread):
    """Samples `tree_cpu_s` every `interval_s`: (time, CPU s by label)."""

    def __init__(self, root: int, interval_s: float = 0.05):
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.samples.append((time.monotonic(), tree_cpu_s(self.root)))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def at(self, when: float, label: str | None = None) -> float | None:
        """CPU seconds at `when` (of `label`'s processes, or all),
        interpolated between samples."""
        times = [t for t, _ in self.samples]
        if not times or not times[0] <= when <= times[-1]:
            return None
        values = [
            sum(by.values()) if label is None else by.get(label, 0.0) for _, by in self.samples
        ]
        return float(np.interp(when, times, values))

    def labels(self) -> list[str]:
        return sorted({label for _, by in self.samples for label in by})


def steady_cpu_ms(cpu_first: float | None, cpu_last: float | None, frames: int) -> float | None:
    """CPU ms a frame between the first and the last result (`frames` results)."""
    if cpu_first is None or cpu_last is None or frames < 2:
        return None
    return round(1000.0 * (cpu_last - cpu_first) / (frames - 1), 1)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def vm_hwm_mb(pid: int) -> float | None:
    """A process's own peak RSS (unlike ru_maxrss, not carried over exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


# --- baselines (each in a fresh spawned process)


def _baseline_worker(kind: str, path: str, log_path: str, conn) -> None:
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    for fd in (1, 2):  # mediapipe and LiteRT log at the C level
        os.dup2(log, fd)
    from repcoach.common.messages import FrameMeta, FramePacket
    from repcoach.stages.blazepose import BlazePoseSegmenter
    from repcoach.stages.blazepose import import_pose_solution as pose_solution
    from repcoach.stages.coaching import Coach
    from repcoach.stages.joints import JointsStage
    from repcoach.stages.tracking import Tracker

    if kind == MEDIAPIPE:
        pose = pose_solution().Pose(model_complexity=1, static_image_mode=False)

        def work(frame: np.ndarray, seq: int) -> bool:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            return pose.process(rgb).pose_landmarks is not None

    else:
        segmenter = BlazePoseSegmenter(landmarks=True)
        joints = JointsStage(None, Tracker())
        scorer = Coach("auto")
        chunker = Chunker()
        previous: list[FrameMeta] = []  # the frame before, as a worker remembers it

        def work(frame: np.ndarray, seq: int) -> bool:
            pts = seq / FPS
            meta = FrameMeta(
                "bench", seq, seq - 1, time.monotonic_ns(), time.time(), pts, WIDTH, HEIGHT,
                chunk=chunker.chunk_of(pts),
            )  # fmt: skip
            persons = segmenter.segment(
                frame, pts, continues(previous[-1] if previous else None, meta)
            )
            previous[:] = [meta]
            packet = FramePacket(meta, frame, persons=tuple(persons))
            return bool(scorer.process(joints.process(packet)).joints)

    capture = cv2.VideoCapture(path)
    done, latency_ms, found, seq = [], [], 0, 0
    cpu_first = cpu_last = None  # process CPU at the first and the last result
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        t0 = time.monotonic()
        found += work(frame, seq)
        t1 = time.monotonic()
        cpu_last = time.process_time()
        cpu_first = cpu_last if cpu_first is None else cpu_first
        done.append(t1)
        latency_ms.append((t1 - t0) * 1000.0)
        seq += 1
    capture.release()
    conn.send(
        {
            "done": done,
            "latency_ms": latency_ms,
            "found": found,
            "hwm": vm_hwm_mb(os.getpid()),
            "cpu_first": cpu_first,
            "cpu_last": cpu_last,
        }
    )
    conn.close()


def run_baseline(kind: str, clip: Clip, round_no: int, folder: Path) -> RunResult:
    result = RunResult(kind, round_no, clip.frames, 0)
    log = folder / f"baseline-{round_no}-{kind.split()[0]}.log"
    context = mp.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    cpu0 = _children_cpu_s()
    started = time.monotonic()
    process = context.Process(target=_baseline_worker, args=(kind, str(clip.path), str(log), send))
    process.start()
    send.close()
    data = None
    limit = START_LIMIT_S + clip.frames * 1.0  # 1 s a frame would already be absurd
    try:
        while data is None and time.monotonic() - started < limit:
            if receive.poll(0.5):
                data = receive.recv()
            elif not process.is_alive():
                break
        process.join(30)
    finally:
        if process.is_alive():
            process.kill()
            process.join(10)
    ended = time.monotonic()
    result.cpu_s = round(_children_cpu_s() - cpu0, 2)
    if data is None:
        said = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        result.error = f"no result (exit code {process.exitcode}) {' '.join(said)}"
        return result
    result.frames = len(data["done"])
    result.missing = clip.frames - result.frames
    result.with_people = data["found"]
    result.lat_p50_ms = _percentile(data["latency_ms"], 50)
    result.lat_p95_ms = _percentile(data["latency_ms"], 95)
    result.memory = {"process": {"hwm_mb": round(data["hwm"] or 0.0, 1)}}
    result.steady_cpu_ms = steady_cpu_ms(data["cpu_first"], data["cpu_last"], result.frames)
    _timing(result, started, ended, data["done"])
    return result


# --- the pipeline


def pipeline_command() -> list[str]:
    script = Path(sys.executable).parent / "pipeline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from repcoach.launch.cli import main; main()"]


class LineTail(threading.Thread):
    """Reads a growing file and stamps every complete line when it appears."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.lines: list[tuple[float, bytes]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        handle, partial = None, b""
        try:
            while True:
                stopping = self._stop_event.is_set()
                if handle is None and self.path.exists():
                    handle = self.path.open("rb")
                if handle is not None:
                    chunk = handle.read()
                    if chunk:
                        now = time.monotonic()
                        *complete, partial = (partial + chunk).split(b"\n")
                        self.lines.extend((now, line) for line in complete)
                if stopping:
                    return
                self._stop_event.wait(TAIL_INTERVAL_S)
        finally:
            if handle is not None:
                handle.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def last_time(self) -> float | None:
        return self.lines[-1][0] if self.lines else None


class StatusPoller(threading.Thread):
    """Asks the running pipeline for its status every `interval_s`; keeps the
    samples (time, stage -> report) and each stage's highest memory figures."""

    def __init__(self, name: str, env: dict[str, str], interval_s: float, via_cli: bool):
        super().__init__(daemon=True)
        self.name = name
        self.env = env
        self.interval_s = interval_s
        self.via_cli = via_cli
        self.supervisor_pid: int | None = None
        self.samples: list[tuple[float, dict[str, dict]]] = []
        self.memory: dict[str, dict[str, float]] = {}
        self.last_reports: dict[str, dict] = {}  # stage -> its latest status report
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            with contextlib.suppress(Exception):  # starting or ending: no answer yet
                self._sample()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def _status(self) -> dict | None:
        if self.via_cli:
            done = subprocess.run(
                [*pipeline_command(), "status", "--json", "--name", self.name],
                env=self.env,
                capture_output=True,
                timeout=20,
            )
            return json.loads(done.stdout) if done.returncode == 0 else None
        from repcoach.common import transport
        from repcoach.common.endpoints import Topology
        from repcoach.launch.supervisor import read_status

        info = Path(self.env["REPCOACH_RUN_DIR"]) / self.name / "pipeline.json"
        if not info.exists():
            return None
        topology = Topology.from_dict(json.loads(info.read_text())["topology"])
        reply = transport.request(topology.connect("control"), b"STATUS", timeout_s=2.0)
        return None if reply is None else read_status(reply)

    def _sample(self) -> None:
        status = self._status()
        if status is not None and status.get("stopping"):
            return  # shutting down: stages exit one by one
        now = time.monotonic()
        reports = {}
        for row in (status or {}).get("stages", []):
            report = row.get("report")
            if report and row.get("alive"):
                reports[row["stage"]] = report
        if self.supervisor_pid is not None:
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(self.supervisor_pid).memory_info().rss / 2**20
                reports["supervisor"] = {"rss_mb": rss, "pid": self.supervisor_pid}
        if not reports:
            return
        self.last_reports.update(reports)
        self.samples.append((now, {k: {"rss_mb": v["rss_mb"]} for k, v in reports.items()}))
        for stage, report in reports.items():
            best = self.memory.setdefault(stage, {})
            figures = {"rss_mb": report["rss_mb"], "hwm_mb": vm_hwm_mb(report["pid"])}
            if "peak_rss_mb" in report:
                figures["peak_rss_mb"] = report["peak_rss_mb"]
            for key, value in figures.items():
                if value is not None:
                    best[key] = round(max(best.get(key, 0.0), float(value)), 1)


def kill_tree(process: subprocess.Popen) -> None:
    """Every stage runs in its own session, so killing the supervisor's
    process group alone would leave them behind: find them first."""
    try:
        family = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    psutil.wait_procs(family, timeout=10)


@dataclass
class PipelineRun:
    """What a pipeline run left: timed JSONL lines, status samples, summary."""

    lines: list[tuple[float, bytes]]
    samples: list[tuple[float, dict[str, dict]]]
    memory: dict[str, dict[str, float]]
    reports: dict[str, dict]
    started: float
    ended: float
    returncode: int | None
    cpu_s: float
    summary: dict | None
    error: str | None
    cpu: CpuSampler | None = None


def run_pipeline(
    clip: Clip,
    workers: int,
    folder: Path,
    name: str,
    *,
    realtime: bool = False,
    loop: bool = False,
    stop_after_s: float | None = None,
    via_cli: bool = False,
    extra: tuple[str, ...] = (),
) -> PipelineRun:
    """`pipeline up` on the clip until it ends (or `stop_after_s`, then SIGINT);
    `extra`: more options for `up`."""
    out, summary, log = (folder / f"{name}{ext}" for ext in (".jsonl", ".json", ".log"))
    command = [
        *pipeline_command(),
        "up",
        "--source",
        str(clip.path),
        "--workers",
        str(workers),
        "--no-console",
        "--sink",
        f"jsonl:path={out},frames=1",
        "--summary",
        str(summary),
        "--name",
        name,
        *(["--realtime"] if realtime else []),
        *(["--loop"] if loop else []),
        *extra,
    ]
    # history goes to the run's folder, never the user's database
    env = {
        **os.environ,
        "REPCOACH_RUN_DIR": str(folder / "r"),
        "REPCOACH_DATA_DIR": str(folder / "d"),
    }
    tail = LineTail(out)
    poller = StatusPoller(name, env, SOAK_POLL_S if via_cli else STATUS_POLL_S, via_cli)
    error = None
    cpu0 = _children_cpu_s()
    with log.open("wb") as log_file:
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for SIGINT and clean-up
        )
        poller.supervisor_pid = process.pid
        cpu = CpuSampler(process.pid)  # the supervisor and every stage
        tail.start()
        poller.start()
        cpu.start()
        try:
            error = _wait(process, tail, started, stop_after_s)
        finally:
            cpu.stop()
            if process.poll() is None:
                kill_tree(process)
            ended = time.monotonic()
            poller.stop()
            tail.stop()
    cpu_s = _children_cpu_s() - cpu0
    said = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    expected_code = 130 if stop_after_s is not None else 0
    if error is None and process.returncode != expected_code:
        error = f"exit code {process.returncode}"
    if error is not None:
        error += f"; it said: {said}" if said else ""
        print(f"  {name}: {error}", flush=True)
    document = json.loads(summary.read_text()) if summary.exists() else None
    return PipelineRun(
        tail.lines,
        poller.samples,
        poller.memory,
        poller.last_reports,
        started,
        ended,
        process.returncode,
        round(cpu_s, 2),
        document,
        error,
        cpu,
    )


def _wait(
    process: subprocess.Popen, tail: LineTail, started: float, stop_after_s: float | None
) -> str | None:
    """Waits for the pipeline to end; says why it was stopped, or None."""
    interrupted_at = None
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.5)
            return None
        now = time.monotonic()
        last = tail.last_time()
        if interrupted_at is not None:
            if now - interrupted_at > STOP_GRACE_S:
                return f"still running {STOP_GRACE_S:.0f} s after SIGINT"
            continue
        if stop_after_s is not None and now - started >= stop_after_s:
            os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: drain, flush, exit 130
            interrupted_at = now
        elif last is None and now - started > START_LIMIT_S:
            return f"no result within {START_LIMIT_S:.0f} s"
        elif last is not None and now - last > STALL_S:
            return f"hung (no result for {STALL_S:.0f} s)"


def frame_records(run: PipelineRun) -> list[tuple[float, dict]]:
    records = []
    for stamp, line in run.lines:
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("type") == "frame":
                records.append((stamp, record))
    return records


def pipeline_result(label: str, round_no: int, clip: Clip, run: PipelineRun) -> RunResult:
    records = frame_records(run)
    seqs = [record["seq"] for _, record in records]
    ages = [record["age_ms"] for _, record in records]
    result = RunResult(label, round_no, clip.frames, len(records))
    result.missing = len(set(range(clip.frames)) - set(seqs))
    result.duplicates = len(seqs) - len(set(seqs))
    result.lat_p50_ms = _percentile(ages, 50)
    result.lat_p95_ms = _percentile(ages, 95)
    result.cpu_s = run.cpu_s
    if run.cpu is not None and records:
        first, last = records[0][0], records[-1][0]
        result.steady_cpu_ms = steady_cpu_ms(run.cpu.at(first), run.cpu.at(last), len(records))
        for label in run.cpu.labels():
            value = steady_cpu_ms(run.cpu.at(first, label), run.cpu.at(last, label), len(records))
            if value is not None:
                result.steady_cpu_by_process[label] = value
    result.with_people = sum(bool(record["people"]) for _, record in records)
    result.first_seq = seqs[0] if seqs else None
    result.summary = run.summary
    result.memory = run.memory
    result.stages = run.reports
    result.error = run.error
    _timing(result, run.started, run.ended, [stamp for stamp, _ in records])
    return result


# --- the parts


class Bench:
    def __init__(self, clip: Clip, folder: Path):
        self.clip = clip
        self.folder = folder
        self.runs = 0

    def pipeline(self, workers: int, **options) -> PipelineRun:
        self.runs += 1
        name = f"vb{os.getpid()}-{self.runs}"  # unique, so runs never meet
        return run_pipeline(self.clip, workers, self.folder, name, **options)


def throughput(bench: Bench, rounds: int) -> list[RunResult]:
    plan = [
        (MEDIAPIPE, None),
        (SEQUENTIAL, None),
        ("pipeline w1", 1),
        ("pipeline w2", 2),
    ]
    results = []
    for round_no in range(1, rounds + 1):
        order = plan if round_no % 2 else plan[::-1]
        for label, workers in order:
            if workers is None:
                result = run_baseline(label, bench.clip, round_no, bench.folder)
            else:
                result = pipeline_result(label, round_no, bench.clip, bench.pipeline(workers))
            results.append(result)
            print(
                f"  round {round_no} {label:14s} {result.frames:5d} frames  "
                f"steady {result.steady_fps:6.2f} fps  wall {result.wall_s:6.1f} s"
                + (f"  ERROR {result.error}" if result.error else ""),
                flush=True,
            )
    return results


def live(bench: Bench) -> list[RunResult]:
    results = []
    for workers in (1, 2):
        label = f"live w{workers}"
        result = pipeline_result(label, 1, bench.clip, bench.pipeline(workers, realtime=True))
        result.missing = result.duplicates = 0  # drops are expected live; reported apart
        results.append(result)
    return results


def soak(bench: Bench, minutes: float) -> dict:
    seconds = minutes * 60.0
    print(
        f"soak: {minutes:g} min of --loop --realtime, sampling every {SOAK_POLL_S:.0f} s",
        flush=True,
    )
    run = bench.pipeline(1, realtime=True, loop=True, stop_after_s=seconds, via_cli=True)
    records = frame_records(run)
    ages = [record["age_ms"] for _, record in records]
    window = min(60.0, seconds / 3)
    stages = sorted({stage for _, sample in run.samples for stage in sample})
    growth = {}
    for stage in stages:
        series = [(t - run.started, s[stage]["rss_mb"]) for t, s in run.samples if stage in s]
        if not series:
            continue
        end = series[-1][0]
        first = [rss for t, rss in series if t <= series[0][0] + window]
        last = [rss for t, rss in series if t >= end - window]
        growth[stage] = {
            "first_mb": round(statistics.mean(first), 1),
            "last_mb": round(statistics.mean(last), 1),
            "growth_mb": round(statistics.mean(last) - statistics.mean(first), 1),
            "samples": len(series),
            "series": [(round(t, 1), rss) for t, rss in series],  # (s since start, MB)
        }
    return {
        "minutes": minutes,
        "window_s": window,
        "frames": len(records),
        # A new track while the old one lives costs the joints stage a second model.
        "track_ids": len({p["id"] for _, record in records for p in record["people"]}),
        "max_people": max((len(record["people"]) for _, record in records), default=0),
        "lat_p50_ms": _percentile(ages, 50),
        "lat_p95_ms": _percentile(ages, 95),
        "summary": run.summary,
        "returncode": run.returncode,
        "error": run.error,
        "stages": growth,
    }


# --- printing


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def _lat(result: RunResult) -> str:
    if result.lat_p50_ms is None:
        return f"{'-':>15s}"
    return f"{result.lat_p50_ms:7.1f}/{result.lat_p95_ms:7.1f}"


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def throughput_table(results: list[RunResult]) -> dict:
    labels = list(dict.fromkeys(r.run for r in results))
    print(
        f"\n{'run (median of rounds)':24s} {'frames':>6s} {'steady fps':>10s} "
        f"{'fps excl st':>11s} {'start s':>7s} {'wall s':>7s} {'lat p50/p95 ms':>15s} "
        f"{'CPU s':>6s} {'CPU ms/fr':>9s} {'steady':>6s} {'people':>6s}"
    )
    table = {}
    for label in labels:
        mine = [r for r in results if r.run == label and r.error is None]
        if not mine:
            print(f"{label:24s} (every run failed)")
            continue
        row = {
            key: _median([getattr(r, key) for r in mine if getattr(r, key) is not None])
            for key in (
                "steady_fps",
                "fps_excl_start",
                "startup_s",
                "wall_s",
                "lat_p50_ms",
                "lat_p95_ms",
                "cpu_s",
                "steady_cpu_ms",
            )
        }
        steady = [r.steady_cpu_ms for r in mine if r.steady_cpu_ms is not None]
        row["steady_cpu_ms"] = _median(steady) if steady else None
        row["frames"] = mine[-1].frames
        row["people_share"] = round(mine[-1].with_people / max(mine[-1].frames, 1), 3)
        row["cpu_ms_per_frame"] = round(1000.0 * row["cpu_s"] / max(row["frames"], 1), 1)
        table[label] = row
        print(
            f"{label:24s} {row['frames']:6d} {row['steady_fps']:10.2f} "
            f"{row['fps_excl_start']:11.2f} {row['startup_s']:7.1f} {row['wall_s']:7.1f} "
            f"{row['lat_p50_ms']:7.1f}/{row['lat_p95_ms']:7.1f} {row['cpu_s']:6.1f} "
            f"{row['cpu_ms_per_frame']:9.1f} {_or_dash(row['steady_cpu_ms']):>6s} "
            f"{row['people_share']:6.0%}"
        )
    ratios = {}
    print(f"\nratio pipeline / baseline (per round, then median); goal >= {GOAL_RATIO:.1f}x")
    print(f"{'':34s} {'steady fps':>12s} {'fps excl start':>15s}")
    for pipe in (lab for lab in labels if lab.startswith("pipeline")):
        for base in (MEDIAPIPE, SEQUENTIAL):
            pair = {}
            for key in ("steady_fps", "fps_excl_start"):
                values = []
                for round_no in sorted({r.round for r in results}):
                    p = _one(results, pipe, round_no)
                    b = _one(results, base, round_no)
                    if p and b and getattr(b, key) > 0:
                        values.append(getattr(p, key) / getattr(b, key))
                pair[key] = round(statistics.median(values), 2) if values else None
            ratios[f"{pipe} / {base}"] = pair
            steady, excl = (f"{v:.2f}x" if v is not None else "-" for v in pair.values())
            met = pair["steady_fps"] is not None and pair["steady_fps"] >= GOAL_RATIO
            print(
                f"{pipe + ' / ' + base:34s} {steady:>12s} {excl:>15s}  {'met' if met else 'MISSED'}"
            )
    cpu_ratios = {}
    print(
        f"\nsteady CPU per frame, pipeline / {MEDIAPIPE} (per round, then median); "
        f"goal <= {CPU_GOAL_RATIO:.2f}x"
    )
    for pipe in (lab for lab in labels if lab.startswith("pipeline")):
        values = []
        for round_no in sorted({r.round for r in results}):
            p, b = _one(results, pipe, round_no), _one(results, MEDIAPIPE, round_no)
            if p and b and p.steady_cpu_ms and b.steady_cpu_ms:
                values.append(p.steady_cpu_ms / b.steady_cpu_ms)
        ratio = round(statistics.median(values), 2) if values else None
        cpu_ratios[pipe] = ratio
        met = ratio is not None and ratio <= CPU_GOAL_RATIO
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        print(f"{pipe:34s} {shown:>12s}  {'met' if met else 'MISSED'}")
    return {"table": table, "ratios": ratios, "cpu_ratios": cpu_ratios}


def _one(results: list[RunResult], label: str, round_no: int) -> RunResult | None:
    for r in results:
        if r.run == label and r.round == round_no and r.error is None:
            return r
    return None


def live_table(results: list[RunResult], clip: Clip) -> None:
    print(
        f"\nlive (--realtime, 30 fps); goal p95 <= {GOAL_LIVE_P95_MS:.0f} ms\n"
        f"{'run':10s} {'clip':>5s} {'first seq':>9s} {'delivered':>9s} {'not processed':>13s} "
        f"{'summary frames/dropped':>22s} {'steady fps':>10s} {'age p50/p95 ms':>15s} {'goal':>6s}"
    )
    for r in results:
        s = r.summary or {}
        counts = f"{s.get('frames', '-')}/{s.get('dropped', '-')}"
        met = r.lat_p95_ms is not None and r.lat_p95_ms <= GOAL_LIVE_P95_MS
        print(
            f"{r.run:10s} {clip.frames:5d} {r.first_seq if r.first_seq is not None else '-':>9} "
            f"{r.frames:9d} {clip.frames - r.frames:13d} "
            f"{counts:>22s} {r.steady_fps:10.2f} {_lat(r)} {'met' if met else 'MISSED':>6s}"
            + (f"  ERROR {r.error}" if r.error else "")
        )


STAGE_ORDER = ("supervisor", "capture", "segment-0", "segment-1", "joints", "score")


def memory_table(results: list[RunResult]) -> dict:
    last = {}
    for r in results:
        if r.error is None:
            last[r.run] = r  # the last round's run of each kind
    print(
        "\nmemory, MB (file mode, last round): status peak_rss_mb / highest sampled rss_mb / "
        "VmHWM (the process's own peak)"
    )
    runs = [label for label in ("pipeline w1", "pipeline w2") if label in last]
    print(f"{'stage':14s} " + " ".join(f"{label:>23s}" for label in runs))
    stages = sorted(
        {s for label in runs for s in last[label].memory},
        key=_stage_key,
    )
    figures: dict[str, dict] = {label: last[label].memory for label in runs}
    for stage in stages:
        cells = []
        for label in runs:
            m = last[label].memory.get(stage, {})
            cells.append(
                "/".join(
                    f"{m[k]:.0f}" if k in m else "-" for k in ("peak_rss_mb", "rss_mb", "hwm_mb")
                )
            )
        print(f"{stage:14s} " + " ".join(f"{c:>23s}" for c in cells))
    for label in runs:
        total = sum(m.get("hwm_mb", 0.0) for m in last[label].memory.values())
        figures[label + " total hwm_mb"] = round(total, 1)
        print(f"{label}: all processes' VmHWM together {total:.0f} MB")
    for label in (MEDIAPIPE, SEQUENTIAL):
        if label in last:
            hwm = last[label].memory.get("process", {}).get("hwm_mb", 0.0)
            figures[label + " hwm_mb"] = hwm
            print(f"baseline {label}: one process, VmHWM {hwm:.0f} MB")
    return figures


def stages_table(results: list[RunResult], title: str) -> None:
    """The bottleneck: each stage's own processing time and drops, from the
    last status sample of each run."""
    print(f"\nper stage, {title} (last status sample): frames out, processing p50/p95 ms, drops")
    for r in results:
        if not r.stages:
            continue
        cells = []
        for stage in sorted(r.stages, key=_stage_key):
            report = r.stages[stage]
            if "latency_ms_p50" not in report or stage.startswith("sink"):
                continue
            drops = sum(report.get("dropped", {}).values())
            cells.append(
                f"{stage} {report['frames_out']} {report['latency_ms_p50']:.0f}/"
                f"{report['latency_ms_p95']:.0f}" + (f" drop {drops}" if drops else "")
            )
        print(f"  {r.run:12s} " + "; ".join(cells))
    print(f"\nsteady CPU ms a frame by process, {title} (first to last result)")
    for r in results:
        if r.steady_cpu_by_process:
            cells = [f"{label} {ms:.1f}" for label, ms in sorted(r.steady_cpu_by_process.items())]
            print(f"  {r.run:12s} " + "; ".join(cells))


def _stage_key(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def soak_table(result: dict) -> None:
    print(
        f"\nsoak {result['minutes']:g} min: {result['frames']} frames, "
        f"{result['track_ids']} track ids, at most {result['max_people']} people a frame, "
        f"age p50/p95 {result['lat_p50_ms']}/{result['lat_p95_ms']} ms, "
        f"exit code {result['returncode']}"
        + (f", ERROR {result['error']}" if result["error"] else "")
    )
    window = result["window_s"]
    print(
        f"{'stage':14s} {f'first {window:.0f} s MB':>14s} {f'last {window:.0f} s MB':>14s} "
        f"{'growth MB':>10s} {'samples':>8s}"
    )
    for stage, g in result["stages"].items():
        print(
            f"{stage:14s} {g['first_mb']:14.1f} {g['last_mb']:14.1f} "
            f"{g['growth_mb']:+10.1f} {g['samples']:8d}"
        )
    for stage, g in result["stages"].items():
        if abs(g["growth_mb"]) >= SOAK_REPORT_GROWTH_MB:  # when it grew: steadily, or in steps
            print(
                f"{stage} rss_mb over time (s: MB): "
                + ", ".join(f"{t:.0f}: {m:.0f}" for t, m in g["series"])
            )


# --- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short clip, one round")
    parser.add_argument("--synthetic", action="store_true", help="rendered synthetic:squat clip")
    parser.add_argument("--rounds", type=int, default=None, help="file-mode rounds (default 3)")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="0: no soak (default)")
    parser.add_argument("--no-live", action="store_true", help="skip the --realtime runs")
    parser.add_argument("--soak-only", action="store_true", help="only the soak (give minutes)")
    parser.add_argument("--json", type=Path, default=None, help="save every figure here")
    args = parser.parse_args()
    scale = Scale.of(args.quick, args.rounds)
    if args.soak_only and args.soak_minutes <= 0:
        parser.error("--soak-only needs --soak-minutes N")

    # Short: ipc socket paths must stay under ~100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="rcv", dir="/tmp"))
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.synthetic:
            clip = synthetic_clip(scale.synthetic_reps, folder)
        else:
            clip = shared_clip(scale.clip, folder)
            if clip is None:
                print(
                    f"skipped: {clips_dir() / scale.clip} is absent (set REPCOACH_SHARED_CLIPS, "
                    "or use --synthetic)",
                    file=sys.stderr,
                )
                return 0
        return run_all(args, scale, Bench(clip, folder))
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(folder, ignore_errors=True)


def file_mode(bench: Bench, rounds: int, report: dict) -> bool:
    """Throughput, latency and memory in file mode; True if a run failed."""
    print(f"throughput, file mode: {rounds} round(s)", flush=True)
    results = throughput(bench, rounds)
    report["throughput_runs"] = [asdict(r) for r in results]
    report["throughput"] = throughput_table(results)
    report["memory"] = memory_table(results)
    stages_table([r for r in results if r.round == rounds], "file mode, last round")
    for r in results:
        if r.failed:
            print(
                f"FAILED: {r.run} round {r.round}: {r.error or ''} "
                f"missing {r.missing}, duplicates {r.duplicates}",
                file=sys.stderr,
            )
    return any(r.failed for r in results)


def run_all(args, scale: Scale, bench: Bench) -> int:
    clip = bench.clip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"clip: {clip.origin}: {clip.frames} frames ({clip.frames / FPS:.1f} s); "
        f"{os.cpu_count()} cores, load average {load} (other work slows every run alike: "
        "compare within a round)",
        flush=True,
    )
    report: dict = {
        "clip": clip.origin,
        "frames": clip.frames,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "quick": args.quick,
    }
    failed = False
    if not args.soak_only:
        failed |= file_mode(bench, scale.rounds, report)
    if not (args.no_live or args.soak_only):
        print("\nlive runs ...", flush=True)
        live_results = live(bench)
        live_table(live_results, clip)
        stages_table(live_results, "live")
        report["live"] = [asdict(r) for r in live_results]
        failed |= any(r.error for r in live_results)
    if args.soak_minutes > 0:
        report["soak"] = soak(bench, args.soak_minutes)
        soak_table(report["soak"])
        failed |= report["soak"]["error"] is not None
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nfigures saved to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; every process was already ended
        print("interrupted", file=sys.stderr)
        sys.exit(130)

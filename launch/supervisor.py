"""Starts every stage as its own process, restarts the ones that crash, and
shuts the pipeline down in order.

Shutdown on Ctrl-C / SIGTERM: capture is asked to stop first, so the frames
in flight and then end-of-stream flow through every stage and the sinks write
their summaries. Stages that have not finished after a grace period are sent
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repcoach.common import graph, transport
from repcoach.common.atomic import write_json_atomic
from repcoach.common.config import FlowPolicy, PipelineConfig
from repcoach.common.errors import UserError
from repcoach.common.messages import (
    MessageError,
    StageReport,
    decode_plain,
    encode_plain,
    short,
)
from repcoach.common.redact import mask_url
from repcoach.common.specs import Spec
from repcoach.launch.stage import EXIT_USER_ERROR
from repcoach.launch.station_changes import changed_config, is_station_request
from repcoach.stages.sinks import sink_label

if TYPE_CHECKING:  # prometheus-client is imported only when metrics are served
    from repcoach.launch.metrics import MetricsServer

log = logging.getLogger(__name__)

MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0
GRACE_S = 20.0
READY_TIMEOUT_S = 120.0
TERM_S = 5.0
# Reports from stages it did not start (attached sinks): at most this many
# names are kept, the stalest forgotten first.
MAX_ATTACHED_REPORTS = 16
CONTROL_REQUESTS = (b"STATUS", b"CONFIG", b"STOP")
SILENT_S = 3.0  # a stage reports every second: this long without one, it has stopped
FLOWING_S = 5.0  # ready (`/readyz`) while a frame was published this recently


@dataclass
class Child:
    """One supervised stage process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    finished: bool = False
    exit_code: int | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env, "REPCOACH_SUPERVISED": "1"}
        env["REPCOACH_RESTARTS"] = str(self.restarts)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,  # Ctrl-C reaches the supervisor only
            )
        self.restart_at = None

    @property
    def kind(self) -> str:
        """The stage kind: the name without a worker's number (segment-1 -> segment)."""
        return self.name.split("-")[0]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):  # exited just now
                self.process.send_signal(sig)

    def last_error(self) -> str:
        """The most telling line of the stage's log (its error or last line)."""
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        for line in reversed(lines[-200:]):
            if line.startswith("error: ") or "Error" in line.split(":")[0]:
                return line.removeprefix("error: ")
        return lines[-1] if lines else ""


class Supervisor:
    def __init__(
        self,
        config: PipelineConfig,
        run_dir: Path,
        sinks: list[Spec],
        metrics: MetricsServer | None = None,
    ):
        self.config = config
        self.metrics = metrics
        self._published = (0, time.monotonic())  # score's frames out, and when they changed
        self.run_dir = run_dir
        self.config_path = run_dir / "config.json"
        self.logs = run_dir / "logs"
        self.children = self._plan(sinks)
        self.reports: dict[str, tuple[float, StageReport]] = {}
        self.stop_requests = 0
        self.stopping_since: float | None = None
        self.failure: str | None = None
        self.progress: tuple = ()  # what the watchdog saw last, and when it changed
        self.progress_at = time.monotonic()
        self.released: set[str] = set()  # idle workers told to stop once the stream passed
        # Whatever arrived on the reports and control sockets that it could
        # not use, by kind (shown by `pipeline status`).
        self.rejects = transport.RejectCounter("supervisor")

    def _plan(self, sinks: list[Spec]) -> list[Child]:
        """One child per stage process the graph asks for, downstream first."""
        base = [sys.executable, "-m", "repcoach.launch.stage"]
        children = []
        for stage in reversed(graph.STAGES):
            if not stage.needed(self.config):
                continue
            for index, label, spec_file in self._instances(stage, sinks):
                name = stage.process_name(index, label)
                gpu = self.config.gpu_for_worker(index) if stage.uses_gpu else None
                env = {"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {}
                argv = [*base, stage.kind, str(self.config_path), str(index), spec_file]
                children.append(Child(name, argv, env, self.logs / f"{name}.log"))
        return children

    def _instances(self, stage: graph.StageKind, sinks: list[Spec]) -> list[tuple[int, str, str]]:
        """(index, sink label, sink options file) of each process of `stage`."""
        if stage.count is graph.Count.PER_WORKER:
            return [(i, "", "") for i in range(self.config.workers)]
        if stage.count is graph.Count.PER_SINK:
            # The options may hold secrets (a webhook URL's token): they go to
            # the child in a private file, never on its command line (`ps`).
            labels = [sink_label(spec) for spec in sinks]
            return [
                (labels[:n].count(label), label, str(self._spec_file(n, spec)))
                for n, (label, spec) in enumerate(zip(labels, sinks, strict=True))
            ]
        return [(0, "", "")]

    def _spec_file(self, n: int, spec: Spec) -> Path:
        """Writes a sink's options into the run folder, readable by the owner only."""
        folder = self.run_dir / "sinks"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{n}-{spec.name}.spec"
        spec.save(path)
        return path

    # --- lifecycle

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.config.save(self.config_path)
        self.report_sock = graph.open_port(self.config, "supervisor", "reports")
        self.control_sock = graph.open_port(self.config, "supervisor", "control")
        self.started = time.time()
        self._write_pipeline_file()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        poller = transport.Poller(self.report_sock, self.control_sock)
        if self.metrics is not None:
            self.metrics.start()
        try:
            # Capture starts last, once every other stage has reported in (a
            # stage reports after its model is loaded): a camera or --realtime
            # file is not read while nobody can process it yet.
            for c in self.children:
                if not graph.stage_kind(c.kind).starts_when_ready:
                    c.start()
            waiting_since = time.monotonic()
            while not all(c.finished for c in self.children):
                ready = poller.ready(200)
                if self.report_sock in ready:
                    self._take_reports()
                if self.control_sock in ready:
                    self._answer_control()
                self._start_capture_when_ready(waiting_since)
                self._watch_children()
                self._release_idle_workers()
                self._watch_progress()
                self._advance_shutdown()
                if self.metrics is not None:
                    self.metrics.update(self.status(), self._ready())
            self._check_books()
            if self.metrics is not None:
                time.sleep(0.1)  # the stages' last reports, sent as they closed
                self._take_reports()
                self.metrics.final_scrape(self.status())
            if self.failure:
                return 1
            return 130 if self.stop_requests else 0  # 130: stopped by Ctrl-C, as shells expect
        finally:
            for c in self.children:
                c.signal(signal.SIGKILL)
            for s, handler in previous.items():
                signal.signal(s, handler)
            transport.close_all(self.report_sock, self.control_sock)
            if self.metrics is not None:
                self.metrics.close()
            (self.run_dir / "pipeline.json").unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "sinks", ignore_errors=True)  # options may hold secrets

    def _write_pipeline_file(self) -> None:
        """What `pipeline status` and `sink attach` find of a running pipeline."""
        write_json_atomic(
            self.run_dir / "pipeline.json",
            {
                "pid": os.getpid(),
                "stations": self._stations(),
                "started": self.started,
                "topology": self.config.topology,
            },
        )

    def _stations(self) -> list[dict]:
        """The stations as status shows them (never a stream's password)."""
        return [
            {**asdict(station), "source": mask_url(station.source), "policy": station.policy.value}
            for station in self.config.stations
        ]

    def _change_stations(self, body: dict) -> dict:
        """Add or remove a station (`station_changes`): the new config goes
        to the run folder, where capture picks it up."""
        capture = next(c for c in self.children if c.name == "capture")
        if self.stopping_since is not None or capture.finished:
            raise UserError("the pipeline is stopping: stations can no longer change")
        if not capture.alive():
            raise UserError("the pipeline is still starting (models loading); try again shortly")
        config, station = changed_config(self.config, body)
        self.config = config
        config.save(self.config_path)
        self._write_pipeline_file()
        verb = "removed" if station.removed else "added"
        log.info("station %s %s (%s)", station.name, verb, mask_url(station.source))
        return {"station": station.name, verb: True, "policy": station.policy.value}

    def _ready(self) -> bool:
        """Every stage runs and reports, and frames reached the sinks lately
        (what `/readyz` says)."""
        now = time.monotonic()
        if self.stopping_since is not None:
            return False
        for c in self.children:
            seen = self.reports.get(c.name)
            if not c.alive() or seen is None or now - seen[0] > SILENT_S:
                return False
        published = self._frames_out("score")
        if published != self._published[0]:
            self._published = (published, now)
        return published > 0 and now - self._published[1] < FLOWING_S

    def _start_capture_when_ready(self, waiting_since: float) -> None:
        capture = next(c for c in self.children if c.name == "capture")
        if capture.process is not None or capture.finished or self.stopping_since is not None:
            return
        others = [c.name for c in self.children if c is not capture]
        ready = all(name in self.reports for name in others)
        if ready or time.monotonic() - waiting_since > READY_TIMEOUT_S:
            if not ready:
                log.warning("stages still loading after %.0f s; starting capture", READY_TIMEOUT_S)
            capture.start()

    def _on_signal(self, signum: int, _frame) -> None:
        self.stop_requests += 1
        if self.stopping_since is None:
            self.begin_shutdown()

    def begin_shutdown(self) -> None:
        self.stopping_since = time.monotonic()
        for c in self.children:
            # A clean stop lets end-of-stream flow from capture; after a
            # failure nothing will flow, so every stage (sinks write their
            # summaries on SIGTERM) is told at once.
            if c.name == "capture" or self.failure is not None:
                c.signal(signal.SIGTERM)

    def _advance_shutdown(self) -> None:
        if self.stopping_since is None:
            return
        waited = time.monotonic() - self.stopping_since
        if self.stop_requests > 1 or waited > GRACE_S:
            for c in self.children:
                c.signal(signal.SIGTERM)
        if waited > GRACE_S + TERM_S:
            for c in self.children:
                c.signal(signal.SIGKILL)

    def _watch_children(self) -> None:
        now = time.monotonic()
        for c in self.children:
            if c.finished:
                continue
            if c.process is None:  # not started yet (capture waits for the others)
                if self.stopping_since is not None:
                    c.finished = True
                continue
            if c.restart_at is not None:
                if now >= c.restart_at and self.stopping_since is None:
                    c.restarts += 1
                    log.warning("restarting %s (restart %d)", c.name, c.restarts)
                    c.start()
                elif self.stopping_since is not None:
                    c.finished = True
                continue
            if c.alive():
                continue
            c.exit_code = c.process.returncode
            if c.exit_code == 0 or self.stopping_since is not None or c.name in self.released:
                c.finished = True  # a released worker may die of the SIGTERM while starting
            elif c.exit_code == EXIT_USER_ERROR:
                self._fail(f"{c.name}: {c.last_error()}")
                c.finished = True
            elif self._upstream_finished(c):
                # Nothing more will reach it: a restart would wait forever. What
                # it held is lost, so the run ends with what it has, as failed.
                detail = c.last_error()
                self._fail(
                    f"stage {c.name} {describe_exit(c.exit_code)} after its input ended"
                    + (f": {detail}" if detail else "")
                    + f"; its log: {c.log_path}"
                )
                c.finished = True
            else:
                self._schedule_restart(c, now)

    def _release_idle_workers(self) -> None:
        """Stop what waits for input that will never come.

        Capture tells the workers it knows STOP when the stream ends; one
        that started or restarted after that waits for work that will never
        come. Once capture and the joints stage (it leaves after end-of-stream,
        with every frame) have ended cleanly, what still runs holds nothing.
        Likewise a joints, score or sink stage restarted after some station's
        end-of-stream had passed it waits for that station forever: once the
        stages before it have all ended cleanly, it has had all there is."""
        streams = [c for c in self.children if c.name in ("capture", "joints")]
        ended = all(c.finished and c.exit_code == 0 for c in streams)
        scored = all(c.finished for c in self.children if c.name == "score")
        for c in self.children:
            if not c.alive() or c.name in self.released:
                continue
            beside = c.kind not in graph.FLOW and scored  # the straps: nobody left to tell
            idle_worker = c.kind == "segment" and ended or beside
            if idle_worker or (c.kind != "segment" and c.restarts and self._upstream_finished(c)):
                self.released.add(c.name)
                c.signal(signal.SIGTERM)

    def _check_books(self) -> None:
        """A file run whose joints or score stage was restarted is not whole:
        what the dead process held (frames, the people's coaching state) is
        gone, so the run fails even though it reached the end. A restarted
        segment worker loses nothing (capture re-sends its frames)."""
        lossy = [c for c in self.children if c.name in ("joints", "score") and c.restarts]
        if self.failure is None and lossy and self.config.policy is FlowPolicy.LOSSLESS:
            names = " and ".join(f"{c.name} ({c.restarts} restart(s))" for c in lossy)
            self.failure = (
                f"stage {names} crashed mid-file: the frames it held and the coaching "
                f"state of that moment were lost, so the counts are incomplete; "
                f"its log: {lossy[0].log_path}"
            )

    def _watch_progress(self) -> None:
        """The watchdog of a file run: frames that stop moving through every
        stage for `stall_s` (a hung model, a lost message nobody re-sends)
        end the run as failed instead of waiting forever. Live sources have
        their own rules (capture reconnects a camera that went away), so a
        pipeline with a camera among its stations has no such watchdog: the
        camera may rightly be silent for longer."""
        capture = next(c for c in self.children if c.name == "capture")
        limit = self.config.stall_s
        if (
            limit <= 0
            or any(s.policy is not FlowPolicy.LOSSLESS for s in self.config.stations)
            or capture.process is None
            or self.stopping_since is not None
        ):
            return
        now = time.monotonic()
        progress = tuple(
            (c.name, c.process.pid if c.process else 0, c.finished, self._frames_out(c.name))
            for c in self.children
            if c.kind in graph.FLOW  # heart-rate readings are no frames
        )
        if progress != self.progress:
            self.progress, self.progress_at = progress, now
            return
        if now - self.progress_at > limit:
            self._fail(
                f"no frame has moved for {limit:.0f} s; stopped with what was done "
                f"({self._stall_point()}); see the logs in {self.logs}"
            )

    def _frames_out(self, name: str) -> int:
        report = self.reports.get(name)
        return report[1].frames_out if report else 0

    def _stall_point(self) -> str:
        """Where the frames stopped. A stage blocked on the next one keeps
        reporting; one that stopped (hung in a model, frozen) does not, so the
        first such stage in flow order is named. Otherwise: the last stage
        that has put out fewer frames than the one before it (those upstream
        of it are held back by it; those downstream have caught up)."""
        now = time.monotonic()
        silent = [
            (c, now - self.reports[c.name][0])
            for c in self.children
            if c.alive() and c.name in self.reports and now - self.reports[c.name][0] > SILENT_S
        ]
        if silent:
            child, age = min(silent, key=lambda row: _flow_position(row[0].kind))
            return f"{child.name} has not reported for {age:.0f} s"
        order = graph.FLOW[:-1]  # sinks put out no frames
        totals = {
            stage: sum(self._frames_out(c.name) for c in self.children if c.kind == stage)
            for stage in order
        }
        for before, after in reversed(list(itertools.pairwise(order))):
            if totals[after] < totals[before]:
                return f"{after} stage: {totals[after]} of {totals[before]} frames"
        return f"capture: {totals['capture']} frames read"

    def _upstream_finished(self, c: Child) -> bool:
        position = _flow_position(c.kind)
        if position == 0 or position == len(graph.FLOW):
            return False
        upstream = [x for x in self.children if x.kind == graph.FLOW[position - 1]]
        return bool(upstream) and all(x.finished and x.exit_code == 0 for x in upstream)

    def _schedule_restart(self, c: Child, now: float) -> None:
        c.failures.append(now)
        while c.failures and now - c.failures[0] > FAILURE_WINDOW_S:
            c.failures.popleft()
        if len(c.failures) >= MAX_FAILURES:
            detail = c.last_error()
            self._fail(
                f"stage {c.name} keeps failing ({len(c.failures)} crashes in "
                f"{FAILURE_WINDOW_S:.0f} s; last {describe_exit(c.exit_code)}"
                + (f": {detail}" if detail else "")
                + f"); its log: {c.log_path}"
            )
            c.finished = True
            return
        delay = min(0.25 * 2 ** len(c.failures), 8.0)
        log.warning("%s %s; restarting in %.1f s", c.name, describe_exit(c.exit_code), delay)
        c.restart_at = now + delay

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            self.begin_shutdown()

    # --- reports and status

    def _take_reports(self) -> None:
        while self.report_sock.poll(0):
            report = transport.receive(self.report_sock, self.rejects)
            if report is None:
                continue
            try:
                self._take_report(report)
            except MessageError as error:
                self.rejects.reject(error)

    def _take_report(self, report: object) -> None:
        if not isinstance(report, StageReport):
            raise MessageError("unknown-type", f"{type(report).__name__} on the reports socket")
        child = next((c for c in self.children if c.name == report.stage), None)
        if child is not None:
            # A supervised stage's row only takes reports from its own process.
            if child.process is None or child.process.pid != report.pid:
                raise MessageError("forged", f"report for {report.stage} from pid {report.pid}")
        elif report.stage not in self.reports:
            attached = [n for n in self.reports if not any(c.name == n for c in self.children)]
            if len(attached) >= MAX_ATTACHED_REPORTS:
                stalest = min(attached, key=lambda n: self.reports[n][0])
                del self.reports[stalest]
                self.rejects.counts["attached-forgotten"] += 1
        self.reports[report.stage] = (time.monotonic(), report)

    def status(self) -> dict:
        now = time.monotonic()
        rows = []
        by_name = {c.name: c for c in self.children}
        names = [c.name for c in self.children] + sorted(set(self.reports) - set(by_name))
        for name in names:
            child = by_name.get(name)
            seen, report = self.reports.get(name, (None, None))
            fresh = seen is not None and now - seen < 3.0
            rows.append(
                {
                    "stage": name,
                    "alive": child.alive() if child else fresh,
                    "supervised": child is not None,
                    "restarts": child.restarts if child else 0,
                    "report": None if report is None else report.as_dict(),
                }
            )
        return {
            "stations": self._stations(),
            "policy": self.config.policy.value,
            "stopping": self.stopping_since is not None,
            "stages": rows,
            "supervisor": {"pid": os.getpid(), "rejected": dict(self.rejects.counts)},
        }

    def _answer_control(self) -> None:
        while self.control_sock.poll(0):
            parts = [transport.raw_bytes(p) for p in transport.recv_parts(self.control_sock)]
            try:
                identity, body = _control_request(parts)
            except MessageError as error:
                self.rejects.reject(error)
                continue
            if body == b"STATUS":
                reply = encode_plain(self.status())
            elif body == b"CONFIG":
                reply = self.config.to_json().encode()
            elif body == b"STOP":
                if self.stopping_since is None:
                    self.begin_shutdown()
                reply = encode_plain({"stopping": True})
            else:
                reply = encode_plain(self._structured_request(body))
            transport.route(self.control_sock, identity, [b"", reply])

    def _structured_request(self, body: bytes) -> dict:
        """The answer to a request that is not a bare word: a station change,
        or an error (the client learns why; counted)."""
        try:
            request = decode_plain(body)
            if not is_station_request(request):
                raise MessageError("unknown-type", f"request {short(body[:20])}")
            return self._change_stations(request)
        except MessageError as error:
            self.rejects.reject(error)
            return {"error": f"unknown or malformed request ({error.kind})"}
        except UserError as error:
            return {"error": str(error)}


def _control_request(parts: list[bytes]) -> tuple[bytes, bytes]:
    """(identity, body) of a request from a REQ socket: [identity, b"", body].
    Anything else raises `MessageError` (no reply: the sender's socket would
    not take one)."""
    if len(parts) != 3 or parts[1] != b"":
        raise MessageError("malformed", f"control request of {len(parts)} part(s)")
    return parts[0], parts[2]


def _flow_position(kind: str) -> int:
    """Where frames reach `kind` (stages beside the flow: after them all)."""
    return graph.FLOW.index(kind) if kind in graph.FLOW else len(graph.FLOW)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def read_status(reply: list[bytes]) -> dict:
    status = decode_plain(reply[0])
    if not isinstance(status, dict) or "stages" not in status:
        raise UserError("the pipeline answered status with something unexpected")
    return status

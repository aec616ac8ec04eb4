"""One run of the real `pipeline up` CLI on a clip, as a benchmark sees it:
the session summary and the JSONL event stream, with the fields that depend
on the wall clock removed so that two runs can be compared byte for byte.

Each run gets its own run folder (`REPCOACH_RUN_DIR`), data folder and
`--name`, so runs never share sockets, history or queues.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Fields whose value comes from the wall clock, found by reading a summary and
# an event stream: `wall_s` (summary: processing time), `age_ms` (frame lines:
# capture-to-sink latency). Event ids begin with the session id (start time +
# random), removed by `_event_id`.
WALL_CLOCK_FIELDS = frozenset({"wall_s", "age_ms"})


def pipeline_command() -> list[str]:
    """The installed `pipeline` script beside this Python, else the module."""
    script = Path(sys.executable).parent / "pipeline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from repcoach.launch.cli import main; main()"]


def strip_wall_clock(value):
    """`value` (a decoded JSON document) without its wall-clock fields."""
    if isinstance(value, dict):
        out = {k: strip_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK_FIELDS}
        if value.get("type") == "event" and isinstance(out.get("id"), str):
            out["id"] = _event_id(out["id"])
        return out
    if isinstance(value, list):
        return [strip_wall_clock(v) for v in value]
    return value


def _event_id(event_id: str) -> str:
    """`SESSION:SEQ:N` -> `SEQ:N` (the session id is the session's start time)."""
    return ":".join(event_id.rsplit(":", 2)[1:])


def canonical(value) -> str:
    """One text per document: equal documents give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def first_difference(a, b, path: str = "") -> str | None:
    """Where two decoded JSON documents first differ (`people[0].reps: 4 != 5`),
    or None when they are equal."""
    if type(a) is not type(b):
        return f"{path or '.'}: {_short(a)} != {_short(b)}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'second' if key not in a else 'first'} run"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path or '.'}: {len(a)} items != {len(b)}"
        return None
    return None if a == b else f"{path or '.'}: {_short(a)} != {_short(b)}"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class CountedPerson:
    """One id in a summary: its reps and partial reps over all exercises, the
    exercise it did most reps of, and each full rep's faults, in order."""

    id: int
    exercise: str
    reps: int
    partial: int
    rep_faults: tuple[tuple[str, ...], ...]


def counted_people(summary: dict) -> list[CountedPerson]:
    people = []
    for person in summary.get("people", []):
        entries = person.get("exercises", [])
        top = max(entries, key=lambda e: (e["reps"], e["partial_reps"]), default=None)
        people.append(
            CountedPerson(
                id=person["id"],
                exercise=top["exercise"] if top else "unknown",
                reps=sum(e["reps"] for e in entries),
                partial=sum(e["partial_reps"] for e in entries),
                rep_faults=tuple(
                    tuple(r.get("faults") or ()) for e in entries for r in e["reps_detail"]
                ),
            )
        )
    return people


@dataclass
class PipelineRun:
    """What one `pipeline up` left behind (wall-clock fields removed)."""

    exercise: str
    workers: int | None  # None: the pipeline's default
    returncode: int
    seconds: float  # how long the run took here, for the log only
    error: str = ""  # the CLI's `error:` line, or why no summary came back
    summary: dict | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.summary is not None

    @property
    def people(self) -> list[CountedPerson]:
        return counted_people(self.summary) if self.summary else []


def run_pipeline(
    clip: Path,
    exercise: str,
    workers: int | None = None,
    timeout_s: float = 900.0,
    segmenter: str | None = None,
) -> PipelineRun:
    """`pipeline up --source CLIP --exercise EXERCISE` to the end of the file
    (`--workers` and `--segmenter` when given; else the CLI's defaults)."""
    folder = Path(tempfile.mkdtemp(prefix="rcb", dir="/tmp"))  # ipc paths must stay short
    summary_path, events_path = folder / "summary.json", folder / "events.jsonl"
    command = [
        *pipeline_command(),
        "up",
        "--source",
        str(clip),
        "--exercise",
        exercise,
        "--summary",
        str(summary_path),
        "--sink",
        f"jsonl:path={events_path}",
        "--no-console",
        "--no-history",
        "--name",
        f"bench{os.getpid()}",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    if segmenter is not None:
        command += ["--segmenter", segmenter]
    env = {
        **os.environ,
        "REPCOACH_RUN_DIR": str(folder / "run"),
        "REPCOACH_DATA_DIR": str(folder / "data"),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _, stderr = _stop(process)
        stderr = f"error: still running after {timeout_s:g} s\n{stderr}"
    run = PipelineRun(exercise, workers, process.returncode, time.monotonic() - started)
    try:
        if summary_path.exists():
            run.summary = strip_wall_clock(json.loads(summary_path.read_text()))
        if events_path.exists():
            lines = events_path.read_text().splitlines()
            run.events = [strip_wall_clock(json.loads(line)) for line in lines if line]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if errors:
        run.error = errors[-1]
    elif not run.ok:
        run.error = f"exit {process.returncode}, no summary" if run.summary is None else ""
        run.error = run.error or f"exit {process.returncode}"
    return run


def _stop(process: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C the run's process group (the summary is still written), then kill."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()

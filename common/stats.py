"""Per-stage counters that `pipeline status` shows."""

from __future__ import annotations

import bisect
import os
import resource
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import psutil

from repcoach.common.messages import LATENCY_BUCKETS_S, StageReport, StationReport


def peak_rss_mb() -> float:
    """This process's own peak resident memory. (getrusage's ru_maxrss is
    inherited across fork+exec on Linux, so a small stage would report its
    supervisor's peak.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Histogram:
    """Counts per `LATENCY_BUCKETS_S` bucket and their sum, since the start
    (what Prometheus histograms are made of)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.sum_s += seconds

    def wire(self) -> tuple[int, ...]:
        return tuple(self.counts) if any(self.counts) else ()


def _rate(times: deque[float], window_s: float = 5.0) -> float:
    """Events a second over the last `window_s`, from their monotonic times."""
    now = time.monotonic()
    recent = [t for t in times if now - t <= window_s]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)


class StationStats:
    """One station's frames at the score stage (see `StationReport`)."""

    def __init__(self, window: int = 300):
        self.frames = 0
        self.dropped = 0
        self.people = 0
        self.events: Counter[str] = Counter()
        self.ended = ""  # why its stream ended
        self._times: deque[float] = deque(maxlen=window)
        self._ages_ms: deque[float] = deque(maxlen=window)
        self._age = Histogram()

    def scored(self, age_s: float, events: list[str]) -> None:
        self.frames += 1
        self._times.append(time.monotonic())
        self._ages_ms.append(age_s * 1000.0)
        self._age.observe(age_s)
        self.events.update(events)

    def report(self) -> StationReport:
        ages = np.asarray(self._ages_ms) if self._ages_ms else np.zeros(1)
        return StationReport(
            frames=self.frames,
            dropped=self.dropped,
            fps=round(_rate(self._times), 2),
            age_ms_p95=round(float(np.percentile(ages, 95)), 1),
            people=self.people,
            events=dict(self.events),
            age_counts=self._age.wire(),
            age_sum_s=self._age.sum_s,
            ended=self.ended,
        )


class StageStats:
    """Frames in/out, drops by reason, processing latency and output rate;
    at the score stage, each station's figures (`StationStats`)."""

    def __init__(self, stage: str, window: int = 300):
        self.stage = stage
        self.frames_in = 0
        self.frames_out = 0
        self.dropped: Counter[str] = Counter()
        self.queue_depth = 0
        self.stations: dict[str, StationStats] = {}  # the score stage's, by station
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._out_times: deque[float] = deque(maxlen=window)
        self._latency = Histogram()
        self._age = Histogram()
        self._process = psutil.Process(os.getpid())

    def received(self, count: int = 1) -> None:
        self.frames_in += count

    def emitted(self, latency_s: float | None = None) -> None:
        self.frames_out += 1
        self._out_times.append(time.monotonic())
        if latency_s is not None:
            self._latencies_ms.append(latency_s * 1000.0)
            self._latency.observe(latency_s)

    def arrived(self, age_s: float) -> None:
        """A frame got here `age_s` after capture (sinks: end to end)."""
        self._age.observe(age_s)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def fps(self) -> float:
        return _rate(self._out_times)

    def report(self, rejected: dict[str, int]) -> StageReport:
        lat = np.asarray(self._latencies_ms) if self._latencies_ms else np.zeros(1)
        rss_mb = self._process.memory_info().rss / 2**20
        return StageReport(
            stage=self.stage,
            pid=os.getpid(),
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            dropped=dict(self.dropped),
            rejected=dict(rejected),
            queue_depth=self.queue_depth,
            fps=round(self.fps(), 2),
            latency_ms_p50=round(float(np.percentile(lat, 50)), 2),
            latency_ms_p95=round(float(np.percentile(lat, 95)), 2),
            rss_mb=round(rss_mb, 1),
            peak_rss_mb=round(max(peak_rss_mb(), rss_mb), 1),
            latency_counts=self._latency.wire(),
            latency_sum_s=self._latency.sum_s,
            age_counts=self._age.wire(),
            age_sum_s=self._age.sum_s,
            stations={name: station.report() for name, station in self.stations.items()},
        )

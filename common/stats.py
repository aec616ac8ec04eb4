"""Per-stage counters that `pipeline status` shows."""

from __future__ import annotations

import os
import resource
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import psutil

from repcoach.common.messages import StageReport


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


class StageStats:
    """Frames in/out, drops by reason, processing latency and output rate."""

    def __init__(self, stage: str, window: int = 300):
        self.stage = stage
        self.frames_in = 0
        self.frames_out = 0
        self.dropped: Counter[str] = Counter()
        self.queue_depth = 0
        self._latencies_ms: deque[float] = deque(maxlen=window)
        self._out_times: deque[float] = deque(maxlen=window)
        self._process = psutil.Process(os.getpid())

    def received(self, count: int = 1) -> None:
        self.frames_in += count

    def emitted(self, latency_s: float | None = None) -> None:
        self.frames_out += 1
        self._out_times.append(time.monotonic())
        if latency_s is not None:
            self._latencies_ms.append(latency_s * 1000.0)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def fps(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._out_times if now - t <= 5.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

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
        )

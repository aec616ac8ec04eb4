"""What `pipeline up --metrics` costs: the steady CPU per frame of the whole
pipeline (every process, from its first result to its last) on the same
clip with and without the metrics endpoint, while a scraper reads /metrics
every second (Prometheus' default is every 15 s: this is the worst case).
Runs alternate (off, on, on, off, ...) so drift in the machine's load falls
on both alike; the ratio of the medians is printed. Issue 15's goal: within 2%.

    .venv/bin/python bench/metrics.py [--rounds 3] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vision import (  # noqa: E402
    Bench,
    Scale,
    pipeline_result,
    shared_clip,
    synthetic_clip,
)

GOAL_RATIO = 1.02


class Scraper(threading.Thread):
    """Reads a /metrics page every `every_s` until stopped; counts the reads."""

    def __init__(self, port: int, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.every_s = f"http://127.0.0.1:{port}/metrics", every_s
        self.scrapes = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every_s):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    response.read()
                self.scrapes += 1
            except OSError:
                pass  # not up yet, or gone

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def one_run(bench: Bench, workers: int, with_metrics: bool) -> tuple[float | None, int]:
    """Steady CPU ms per frame, and how many scrapes were answered."""
    with socket.socket() as probe:  # a free port for the endpoint
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scraper = Scraper(port) if with_metrics else None
    if scraper is not None:
        scraper.start()
    extra = ("--metrics", str(port)) if with_metrics else ()
    try:
        run = bench.pipeline(workers, extra=extra)
    finally:
        if scraper is not None:
            scraper.stop()
    result = pipeline_result("metrics" if with_metrics else "plain", 0, bench.clip, run)
    if result.error or result.missing:
        print(f"  run failed: {result.error or ''} missing {result.missing}", file=sys.stderr)
        return None, 0
    return result.steady_cpu_ms, scraper.scrapes if scraper else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="the short clip")
    parser.add_argument("--synthetic", action="store_true", help="rendered synthetic:squat clip")
    args = parser.parse_args()
    scale = Scale.of(args.quick, args.rounds)
    folder = Path(tempfile.mkdtemp(prefix="rcm", dir="/tmp"))
    try:
        clip = (
            synthetic_clip(scale.synthetic_reps, folder)
            if args.synthetic
            else shared_clip(scale.clip, folder)
        )
        if clip is None:
            print("skipped: the shared clips are absent (or use --synthetic)", file=sys.stderr)
            return 0
        bench = Bench(clip, folder)
        print(f"clip: {clip.origin}, {clip.frames} frames; workers {args.workers}", flush=True)
        figures: dict[bool, list[float]] = {False: [], True: []}
        scrapes = 0
        for round_no in range(args.rounds):
            order = (False, True) if round_no % 2 == 0 else (True, False)
            for with_metrics in order:
                cpu_ms, answered = one_run(bench, args.workers, with_metrics)
                scrapes += answered
                if cpu_ms is None:
                    return 1
                figures[with_metrics].append(cpu_ms)
                label = "with --metrics" if with_metrics else "without"
                print(f"  round {round_no + 1} {label:15s} {cpu_ms:6.2f} CPU ms/frame", flush=True)
        plain, metered = (statistics.median(figures[k]) for k in (False, True))
        ratio = metered / plain
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(
            f"\nsteady CPU per frame, median of {args.rounds}: without {plain:.2f} ms, "
            f"with --metrics {metered:.2f} ms (scraped every 1 s, {scrapes} scrapes): "
            f"{ratio:.3f}x (goal <= {GOAL_RATIO:.2f}x: {verdict})"
        )
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

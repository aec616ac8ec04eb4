"""Issue 13's figures: one pipeline serving N sources against N separate
pipelines (one per source, as the README said to run them before), on the
same box, side by side in the same run.

For N = 1, 2 and 4 (the first N of `CLIPS`, shared workout clips as they
are), in file mode (lossless, every frame) and live mode (`--realtime`: each
file paced at its frame rate, as a camera), both with the default worker
count, the exercise recognised (`auto`):

    memory      every process of the run (supervisors, every stage) sampled
                every 0.25 s; each process's peak RSS, added up
    frames/s    file mode: frames analysed (the summaries' `frames`) over the
                wall time from start to the last exit
    share       live mode: each source's analysed share of its own frames
                (frames / (frames + dropped): the workers are shared by frame
                rate, so a 24 fps clip gets fewer frames than a 30 fps one);
                the worst deviation from the sources' mean share is printed
                (goal: within 15%)
    p95 ms      live mode: capture-to-sink age (`age_ms` of the JSONL frame
                records), p95 over every source
    reps        file mode: each source's reps and exercises in the one
                pipeline equal what its own pipeline counted

Goals (issue 13): memory of one pipeline with 4 sources <= 50% of 4
pipelines; file-mode frames/s >= 1.0x; live share within 15%; live p95 <=
250 ms with 4 sources; reps identical.

    .venv/bin/python bench/multicam.py [--sources 1,2,4] [--modes file,live] [--quick]

`--quick` uses rendered athletes instead of the shared clips. Exits 1 if a
run failed (not for a missed goal).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.vision import kill_tree, pipeline_command  # noqa: E402
from repcoach.common.clips import clips_dir  # noqa: E402
from repcoach.common.config import make_stations  # noqa: E402

CLIPS = (
    "squat_side_4reps_wahoo.mp4",
    "pushup_front_2reps_gym.mp4",
    "jumping_jacks_front_7reps_wahoo.mp4",
    "curl_dumbbell_front_gym_3reps_rotated90_metadata.mp4",
)
QUICK = (
    "synthetic:squat,reps=2",
    "synthetic:lunge,reps=2",
    "synthetic:squat,reps=2,seed=3",
    "synthetic:lunge,reps=2,seed=5",
)
MEMORY_GOAL, SHARE_GOAL, P95_GOAL_MS = 0.50, 0.15, 250.0
RUN_LIMIT_S = 600.0


class MemorySampler(threading.Thread):
    """The peak RSS of every process under `roots`, sampled until stopped."""

    def __init__(self, roots: list[int], interval_s: float = 0.25):
        super().__init__(daemon=True)
        self.roots, self.interval_s = roots, interval_s
        self.peak_mb: dict[int, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            for root in self.roots:
                try:
                    family = [psutil.Process(root), *psutil.Process(root).children(True)]
                except psutil.NoSuchProcess:
                    continue
                for process in family:
                    try:
                        rss = process.memory_info().rss / 2**20
                    except psutil.NoSuchProcess:
                        continue
                    self.peak_mb[process.pid] = max(self.peak_mb.get(process.pid, 0.0), rss)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return sum(self.peak_mb.values())


@dataclass
class Outcome:
    """What one configuration (one pipeline, or N of them) gave."""

    wall_s: float = 0.0
    memory_mb: float = 0.0
    frames: dict[str, int] = field(default_factory=dict)  # analysed, by source
    offered: dict[str, int] = field(default_factory=dict)  # analysed + dropped
    reps: dict[str, list] = field(default_factory=dict)
    ages_ms: list[float] = field(default_factory=list)
    error: str | None = None


def _reps(summary: dict) -> list:
    return sorted(
        (e["exercise"], e["reps"], e["partial_reps"])
        for person in summary["people"]
        for e in person["exercises"]
    )


def _launch(sources: list[str], folder: Path, name: str, live: bool) -> subprocess.Popen:
    command = [*pipeline_command(), "up", "--no-console", "--no-history", "--name", name]
    for source in sources:
        command += ["--source", source]
    command += ["--summary", str(folder / f"{name}.json")]
    command += ["--sink", f"jsonl:path={folder / f'{name}.jsonl'},frames=1"]
    command += ["--realtime"] if live else []
    env = {**os.environ, "REPCOACH_RUN_DIR": str(folder / "run")}
    log = (folder / f"{name}.log").open("wb")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def run(groups: list[list[str]], folder: Path, tag: str, live: bool) -> Outcome:
    """Each group of sources as one pipeline, all at once; waits for all."""
    names = [f"{tag}{i}" for i in range(len(groups))]
    started = time.monotonic()
    processes = [_launch(g, folder, n, live) for g, n in zip(groups, names, strict=True)]
    sampler = MemorySampler([p.pid for p in processes])
    sampler.start()
    outcome = Outcome()
    try:
        for process, name in zip(processes, names, strict=True):
            left = RUN_LIMIT_S - (time.monotonic() - started)
            try:
                code = process.wait(max(left, 1.0))
            except subprocess.TimeoutExpired:
                code = None
            if code != 0:
                said = (folder / f"{name}.log").read_text(errors="replace").strip()[-300:]
                outcome.error = f"{name}: exit {code}: {said}"
    finally:
        outcome.wall_s = time.monotonic() - started
        outcome.memory_mb = sampler.stop()
        for process in processes:
            if process.poll() is None:
                kill_tree(process)
    for group, name in zip(groups, names, strict=True):
        summary_path = folder / f"{name}.json"
        if not summary_path.exists():
            outcome.error = outcome.error or f"{name}: no summary"
            continue
        summary = json.loads(summary_path.read_text())
        for station in make_stations(group):
            document = summary["stations"][station.name] if len(group) > 1 else summary
            outcome.frames[station.source] = document["frames"]
            outcome.offered[station.source] = document["frames"] + document["dropped"]
            outcome.reps[station.source] = _reps(document)
        for line in (folder / f"{name}.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("type") == "frame":
                outcome.ages_ms.append(record["age_ms"])
    return outcome


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else float("nan")


def compare(sources: list[str], live: bool, folder: Path) -> tuple[list[str], bool]:
    """One pipeline with every source, then one pipeline per source; lines to print."""
    mode = "live" if live else "file"
    one = run([sources], folder, f"one{len(sources)}{mode}", live)
    apart = run([[s] for s in sources], folder, f"sep{len(sources)}{mode}", live)
    if one.error or apart.error:
        return [f"  failed: {one.error or apart.error}"], False
    n = len(sources)
    memory = one.memory_mb / apart.memory_mb
    lines = [
        f"{n} source(s), {mode}:",
        f"  memory       one {one.memory_mb:7.0f} MB   separate {apart.memory_mb:7.0f} MB"
        f"   ratio {memory:.2f} (goal <= {MEMORY_GOAL:.2f} at 4 sources)",
    ]
    if not live:
        fps_one = sum(one.frames.values()) / one.wall_s
        fps_apart = sum(apart.frames.values()) / apart.wall_s
        same = one.reps == apart.reps
        lines += [
            f"  frames/s     one {fps_one:7.1f}      separate {fps_apart:7.1f}"
            f"      ratio {fps_one / fps_apart:.2f} (goal >= 1.0)",
            f"  wall s       one {one.wall_s:7.1f}      separate {apart.wall_s:7.1f}",
            f"  reps         {'identical' if same else 'DIFFER'}: "
            + "; ".join(f"{Path(s).name[:24]} {one.reps[s]}" for s in sources),
        ]
        if not same:
            theirs = "; ".join(str(apart.reps[s]) for s in sources)
            lines.append(f"               separate: {theirs}")
    else:
        for label, outcome in (("one", one), ("separate", apart)):
            shares = [outcome.frames[s] / max(outcome.offered[s], 1) for s in sources]
            mean = statistics.mean(shares)
            worst = max(abs(share - mean) / mean for share in shares) if mean else 0.0
            analysed = [f"{outcome.frames[s]}/{outcome.offered[s]}" for s in sources]
            lines.append(
                f"  {label:9s}    analysed {' '.join(analysed)}  worst share "
                f"{worst:.0%} (goal <= {SHARE_GOAL:.0%})  p95 {_p95(outcome.ages_ms):.0f} ms"
                f" (goal <= {P95_GOAL_MS:.0f} at 4)"
            )
    return lines, True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default="1,2,4")
    parser.add_argument("--modes", default="file,live")
    parser.add_argument("--quick", action="store_true", help="rendered athletes, no clips")
    args = parser.parse_args()
    if args.quick:
        pool = list(QUICK)
    else:
        folder = clips_dir()
        pool = [str(folder / name) for name in CLIPS if (folder / name).is_file()]
        if len(pool) < len(CLIPS):
            print(f"shared clips missing under {folder}: use --quick", file=sys.stderr)
            return 1
    print(f"cores: {os.cpu_count()}, sources from: {'rendered' if args.quick else 'shared clips'}")
    ok = True
    work = Path(tempfile.mkdtemp(prefix="multicam-"))
    try:
        for mode in args.modes.split(","):
            for count in (int(n) for n in args.sources.split(",")):
                lines, good = compare(pool[:count], mode == "live", work)
                ok = ok and good
                print("\n".join(lines), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

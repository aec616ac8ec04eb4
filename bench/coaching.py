"""Figures for the coaching engine: rep counts, people and determinism of the
real pipeline on labelled clips, and fault detection on synthetic athletes.

    .venv/bin/python bench/coaching.py                      # ../shared/clips + synthetic athletes
    .venv/bin/python bench/coaching.py DIR [DIR ...]        # any folders holding a labels.json
    .venv/bin/python bench/coaching.py --no-synthetic --only pecdeck,squat_side_3
    .venv/bin/python bench/coaching.py --no-synthetic --repeat 2 --workers 1,2,4
    .venv/bin/python bench/coaching.py --no-real --more     # synthetic only, + 14 more clips
    .venv/bin/python bench/coaching.py --no-synthetic --segmenter maskrcnn   # weights, GPU

Labelled clips (default ../shared/clips or $REPCOACH_SHARED_CLIPS; the
labels.json format is in that folder's README): every clip goes through the
real CLI, `pipeline up --source CLIP --summary ... --sink jsonl:... --exercise
E --no-console --no-history`, each run in its own run folder, once with the
labelled exercise and once with `--exercise auto`. A label `exercise_id:
other` is given the shipped exercise its `exercise` text names
(`bench/labels.py`), else only auto runs. Per clip: labelled and counted reps
(+ partial reps) of the main person (the id with the most reps), the exercise
auto named, ids in the summary against people labelled (allowed: one more per
started minute of clip), reps given to people not exercising (`reps_by_person`
entries with 0 reps, and ids beyond the labelled exercisers, matched by
count: the i-th most counted id is the i-th most labelled person), faults
flagged, and whether repeated runs agreed.

Determinism: `--repeat N --workers 1,2,4` runs each mode N times per worker
count; the runs agree when their summaries and JSONL event streams are equal
byte for byte once wall-clock fields are removed (`bench/pipeline_run.py`).

`--segmenter maskrcnn` runs the labelled clips on the pipeline's Mask R-CNN
backend (its weights downloaded; a GPU to finish in reasonable time); the
plain counter stays on the embedded joints. A run that fails is reported
with its one-line error, and the script then exits 1: figures with a run
missing are not the clips' figures.

Baseline in the same run: a plain counter (one angle, two fixed thresholds
per exercise; `bench/plain_counter.py`) on the joints of the embedded vision,
cached per clip by `bench/clip_joints.py` (the first run computes them: ~1-2
min per clip on 2 cores).

Synthetic athletes (28 rendered clips, `--more` for 14 others), 8 filmed
from behind, a rendered gym floor (9 clips: bystanders, walkers, rests,
mirror twins, with each rep and cue attributed to the person it was about)
and 8 clips with a spotter standing right behind the athlete: run
in-process on cached joints, see `bench/coaching_synthetic.py` and
`bench/coaching_floor.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clip_joints import video_joints  # noqa: E402
from bench.coaching_floor import FLOOR, SPOTTED, floor  # noqa: E402
from bench.coaching_synthetic import MORE, REAR, SYNTHETIC, WALL, synthetic  # noqa: E402
from bench.labels import ClipLabel, ids_allowed, load_labels  # noqa: E402
from bench.pipeline_run import (  # noqa: E402
    CountedPerson,
    PipelineRun,
    canonical,
    first_difference,
    run_pipeline,
)
from bench.plain_counter import PLAIN, plain_count  # noqa: E402
from repcoach.common.clips import clips_dir  # noqa: E402
from repcoach.common.errors import UserError  # noqa: E402


@dataclass(frozen=True)
class Scored:
    """One pipeline run of one clip, held against the clip's label."""

    main: CountedPerson | None  # the id with the most reps
    exact: bool  # main's reps and partial reps as labelled (auto: and the exercise)
    named: bool  # main's exercise is the one labelled
    ids: int
    ids_allowed: int  # `bench.labels.ids_allowed`
    exercisers: tuple[int, ...]  # reps of the ids matched to the labelled exercisers
    idle_reps: int  # reps and partial reps of the ids matched to nobody exercising
    idle_partial: int


def score(run: PipelineRun, label: ClipLabel, exercise: str | None, auto: bool) -> Scored:
    seconds = float((run.summary or {}).get("duration_s") or 0.0)
    ranked = sorted(run.people, key=lambda p: (p.reps, p.partial), reverse=True)
    main = ranked[0] if ranked else None
    matched, idle = ranked[: len(label.exercisers)], ranked[len(label.exercisers) :]
    named = main is not None and main.exercise == exercise
    exact = (
        main is not None
        and main.reps == label.reps
        and main.partial == label.partial_reps
        and (named or not auto)
    )
    return Scored(
        main=main,
        exact=exact,
        named=named,
        ids=len(ranked),
        ids_allowed=ids_allowed(label.people, seconds),
        exercisers=tuple(p.reps for p in matched),
        idle_reps=sum(p.reps for p in idle),
        idle_partial=sum(p.partial for p in idle),
    )


@dataclass
class Mode:
    """Every run of a clip in one mode (given exercise or auto); the first is
    the one measured, the others only checked against it."""

    exercise: str
    runs: list[PipelineRun]
    scored: Scored | None = None

    @property
    def first(self) -> PipelineRun:
        return self.runs[0]

    def disagreement(self) -> str | None:
        """The first difference between a run and the first one, or None."""
        base = self.first
        for i, run in enumerate(self.runs[1:], start=2):
            which = f"run {i} (workers {run.workers or 'default'})"
            if not run.ok:
                return f"{which} failed: {run.error}"
            if canonical(run.summary) != canonical(base.summary):
                return f"{which} summary {first_difference(base.summary, run.summary)}"
            if canonical(run.events) != canonical(base.events):
                return f"{which} events {first_difference(base.events, run.events)}"
        return None


@dataclass
class ClipResult:
    label: ClipLabel
    exercise: str | None  # the shipped exercise given; None: none matches the label
    plain: int | None = None
    given: Mode | None = None
    auto: Mode | None = None
    notes: list[str] = field(default_factory=list)


def run_clip(folder: Path, label: ClipLabel, args: argparse.Namespace) -> ClipResult:
    path = folder / label.file
    result = ClipResult(label, label.exercise)
    if result.exercise is None:
        result.notes.append(f"no shipped exercise for {label.exercise_text!r}: auto only")
    modes = ([result.exercise] if result.exercise else []) + ([] if args.no_auto else ["auto"])
    for exercise in modes:
        runs = [
            run_pipeline(path, exercise, workers, args.timeout, args.segmenter)
            for workers in args.workers
            for _ in range(args.repeat)
        ]
        mode = Mode(exercise, runs)
        if mode.first.ok:
            auto = exercise == "auto"
            mode.scored = score(mode.first, label, result.exercise, auto)
        else:
            result.notes.append(f"{exercise}: {mode.first.error}")
        if len(runs) > 1 and (differs := mode.disagreement()):
            result.notes.append(f"{exercise}: {differs}")
        if exercise == "auto":
            result.auto = mode
        else:
            result.given = mode
    if result.exercise in PLAIN:
        result.plain = plain_count(video_joints(path), result.exercise)
    return result


# --- printing


def _count(reps: int, partial: int) -> str:
    return f"{reps}+{partial}p"


def _faults(person: CountedPerson | None) -> str:
    if person is None:
        return "-"
    found = [f"{i}:{'+'.join(f)}" for i, f in enumerate(person.rep_faults, start=1) if f]
    return ", ".join(found) or "-"


def _agreed(result: ClipResult) -> str:
    modes = [m for m in (result.given, result.auto) if m is not None]
    runs = sum(len(m.runs) for m in modes)
    if all(len(m.runs) == 1 for m in modes):
        return "-"
    return f"{'same' if not any(m.disagreement() for m in modes) else 'DIFF'} x{runs}"


HEADER = (
    f"{'clip':44s} {'truth':>5s} {'plain':>5s} {'given':>6s}  {'auto':22s} "
    f"{'ids':>5s} {'idle':>5s}  {'faults flagged (given)':24s} runs"
)


def print_clip(result: ClipResult) -> None:
    label = result.label
    given = result.given.scored if result.given else None
    auto = result.auto.scored if result.auto else None
    scored = _people_run(result)
    shown_given = _count(given.main.reps, given.main.partial) if given and given.main else "-"
    shown_auto = "-"
    if auto is not None:
        name = auto.main.exercise if auto.main else "none"
        shown_auto = f"{name} {_count(auto.main.reps, auto.main.partial) if auto.main else ''}"
    idle = _count(scored.idle_reps, scored.idle_partial) if scored else "-"
    ids = f"{scored.ids}/{label.people}" if scored else "-"
    plain = "-" if result.plain is None else str(result.plain)
    faults = _faults(given.main if given else None)
    print(
        f"{label.file[:44]:44s} {_count(label.reps, label.partial_reps):>5s} {plain:>5s} "
        f"{shown_given:>6s}  {shown_auto[:22]:22s} {ids:>5s} {idle:>5s}  "
        f"{faults[:24]:24s} {_agreed(result)}"
    )
    if label.by_person and scored:
        labelled = ",".join(str(p.reps) for p in label.by_person)
        counted = ",".join(str(r) for r in scored.exercisers) or "-"
        print(f"    people labelled {labelled}; matched exercisers counted {counted}")
    for note in result.notes:
        print(f"    note: {note}")


def _people_run(result: ClipResult) -> Scored | None:
    """The run whose ids are judged: with the exercise given, else auto."""
    for mode in (result.given, result.auto):
        if mode is not None and mode.scored is not None:
            return mode.scored
    return None


def _fault_hits(result: ClipResult) -> tuple[int, int, int]:
    """Labelled faults, those flagged on their rep, and faults flagged that
    are not labelled (run with the exercise given)."""
    labelled = set(result.label.form_faults)
    scored = result.given.scored if result.given else None
    if scored is None or scored.main is None:
        return len(labelled), 0, 0
    flagged = {
        (rep, fault)
        for rep, faults in enumerate(scored.main.rep_faults, start=1)
        for fault in faults
    }
    return len(labelled), len(labelled & flagged), len(flagged - labelled)


def totals(results: list[ClipResult]) -> dict:
    given = [r.given.scored for r in results if r.given and r.given.scored]
    autos = [r.auto.scored for r in results if r.auto and r.auto.scored]
    plain = [r for r in results if r.plain is not None]
    people = [(r, s) for r in results if (s := _people_run(r)) is not None]
    checked = [r for r in results if _agreed(r) != "-"]
    faults = [_fault_hits(r) for r in results if r.given]
    return {
        "clips": len(results),
        "given_exact": sum(s.exact for s in given),
        "given_clips": sum(1 for r in results if r.given),
        "auto_exact": sum(s.exact for s in autos),
        "auto_named": sum(s.named for s in autos),
        "auto_clips": sum(1 for r in results if r.auto),
        "plain_exact": sum(r.plain == r.label.reps for r in plain),
        "plain_clips": len(plain),
        "idle_reps": sum(s.idle_reps for _, s in people),
        "idle_partial": sum(s.idle_partial for _, s in people),
        "idle_clips": sum(1 for _, s in people if s.idle_reps or s.idle_partial),
        "ids_over": sum(max(0, s.ids - r.label.people) for r, s in people),
        "ids_over_clips": sum(1 for r, s in people if s.ids > r.label.people),
        "ids_within": sum(1 for _, s in people if s.ids <= s.ids_allowed),
        "ids_clips": len(people),
        "faults_labelled": sum(f[0] for f in faults),
        "faults_found": sum(f[1] for f in faults),
        "faults_unlabelled": sum(f[2] for f in faults),
        "deterministic": sum(_agreed(r).startswith("same") for r in checked),
        "determinism_clips": len(checked),
        "failed_runs": sum(
            not run.ok for r in results for m in (r.given, r.auto) if m for run in m.runs
        ),
    }


def print_totals(t: dict, runs_per_mode: int) -> None:
    print(
        f"exact (main person's reps and partial reps): given {t['given_exact']}/"
        f"{t['given_clips']}, auto {t['auto_exact']}/{t['auto_clips']} (and the exercise "
        f"named), plain counter {t['plain_exact']}/{t['plain_clips']} (reps only; clips it "
        "has an angle for)"
    )
    print(f"auto named the labelled exercise: {t['auto_named']}/{t['auto_clips']}")
    print(
        f"reps given to people not exercising: {t['idle_reps']} + {t['idle_partial']} partial "
        f"on {t['idle_clips']} clips"
    )
    print(
        f"ids over labelled people: {t['ids_over']} on {t['ids_over_clips']} clips; within "
        f"the labelled people and one more per started minute: {t['ids_within']}/"
        f"{t['ids_clips']} clips"
    )
    print(
        f"faults: {t['faults_found']}/{t['faults_labelled']} labelled faults flagged on their "
        f"rep; {t['faults_unlabelled']} flagged that are not labelled"
    )
    if t["determinism_clips"]:
        print(
            f"determinism: {t['deterministic']}/{t['determinism_clips']} clips gave the same "
            f"summary and event stream over {runs_per_mode} runs per mode (wall-clock fields "
            "removed)"
        )
    if t["failed_runs"]:
        print(f"failed pipeline runs: {t['failed_runs']}")


def clip_record(result: ClipResult) -> dict:
    def mode(m: Mode | None) -> dict | None:
        if m is None:
            return None
        s = m.scored
        return {
            "exercise": m.exercise,
            "runs": len(m.runs),
            "error": m.first.error or None,
            "main": None if s is None or s.main is None else asdict(s.main),
            "exact": s.exact if s else False,
            "named": s.named if s else False,
            "ids": s.ids if s else None,
            "ids_allowed": s.ids_allowed if s else None,
            "exercisers": list(s.exercisers) if s else None,
            "idle_reps": s.idle_reps if s else None,
            "idle_partial": s.idle_partial if s else None,
            "disagreement": m.disagreement() if len(m.runs) > 1 else None,
            "seconds": [round(r.seconds, 1) for r in m.runs],
        }

    label = result.label
    return {
        "file": label.file,
        "exercise": result.exercise,
        "truth": {"reps": label.reps, "partial_reps": label.partial_reps},
        "people": label.people,
        "by_person": [p.reps for p in label.by_person],
        "plain": result.plain,
        "given": mode(result.given),
        "auto": mode(result.auto),
        "notes": result.notes,
    }


def labelled_folder(folder: Path, args: argparse.Namespace) -> list[ClipResult]:
    labels = load_labels(folder)
    wanted = [w for w in args.only.split(",") if w]
    labels = [lab for lab in labels if not wanted or any(w in lab.file for w in wanted)]
    workers = ",".join(str(w or "default") for w in args.workers)
    runs = f"{args.repeat} run(s) x workers {workers}"
    segmenter = args.segmenter or "the default"
    print(f"Labelled clips: {folder} ({len(labels)} clips; per mode {runs}; segmenter {segmenter})")
    print(HEADER)
    results = []
    for label in labels:
        result = run_clip(folder, label, args)
        print_clip(result)
        results.append(result)
    return results


def _workers(text: str) -> list[int | None]:
    if not text:
        return [None]
    try:
        counts = [int(w) for w in text.split(",") if w]
    except ValueError:
        raise UserError(f"--workers {text!r}: give worker counts like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--workers {text!r}: give worker counts like 1,2,4")
    return counts  # type: ignore[return-value]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, metavar="DIR", help="clips + labels.json")
    parser.add_argument("--no-synthetic", action="store_true", help="labelled clips only")
    parser.add_argument("--no-real", action="store_true", help="synthetic athletes only")
    parser.add_argument("--no-auto", action="store_true", help="skip the --exercise auto runs")
    parser.add_argument("--only", default="", help="comma-separated name fragments")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count and mode")
    parser.add_argument("--workers", default="", help="worker counts to run, e.g. 1,2,4")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pipeline run")
    parser.add_argument(
        "--segmenter", help="labelled clips: the pipeline's --segmenter (default: the embedded one)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--fresh", action="store_true", help="ignore the joints cache")
    parser.add_argument(
        "--more", action="store_true", help=f"also {len(MORE)} more synthetic clips"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    args.workers = _workers(args.workers)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fresh:
        os.environ["REPCOACH_COACH_CACHE"] = "/tmp/coach_cache_fresh"
    figures: dict = {"labelled": [], "synthetic": {}}
    if not args.no_real:
        results = []
        for folder in args.folders or [clips_dir()]:
            if not (folder / "labels.json").exists():
                print(f"no labels.json in {folder}: skipped")
                continue
            results += labelled_folder(folder, args)
        if results:
            summed = totals(results)
            print_totals(summed, args.repeat * len(args.workers))
            figures["labelled"] = [clip_record(r) for r in results]
            figures["totals"] = summed
    if not args.no_synthetic:
        wanted = [w for w in args.only.split(",") if w]

        def only(specs: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(s for s in specs if not wanted or any(w in s for w in wanted))

        figures["synthetic"]["main"] = synthetic(only(SYNTHETIC))
        for name, title, group in (
            ("rear", "Filmed from behind", REAR),
            ("wall", "Filmed from a wall camera, 35 degrees down", WALL),
        ):
            if specs := only(group):
                print(f"\n{title}:", end="")
                figures["synthetic"][name] = synthetic(specs)
        figures["synthetic"]["floor"] = floor(only(FLOOR))
        spotted = only(SPOTTED)
        if spotted:
            title = "A spotter right behind the athlete, rendered (BlazePose)"
            figures["synthetic"]["spotter"] = floor(spotted, title, "spotter")
        if args.more:
            print("\nMore synthetic clips (other seeds and fault mixes):", end="")
            figures["synthetic"]["more"] = synthetic(MORE)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
    # Figures over failed runs are not the clips' figures: say so in the exit code.
    return 1 if figures.get("totals", {}).get("failed_runs") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

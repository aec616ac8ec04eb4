"""Judging a rep (or a stretch of a hold) against the exercise's form rules.

Each rule summarises one measure over the frames of the rep (`AGGREGATES`)
and compares the summary with its threshold. A rule is judged only when the
view the rep was seen in is one of the rule's views, and only when its
measure could be read; otherwise it is skipped, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from repcoach.common.messages import Severity
from repcoach.stages.coaching.spec import Rule

NAN = float("nan")
MIN_COVERAGE = 0.3  # share of a rep's frames a rule's measure must be readable in
MIN_FRAMES = 3


@dataclass(frozen=True)
class FrameRecord:
    """What the coach read in one frame of one person."""

    seq: int
    pts: float
    view: str
    values: Mapping[str, float]  # measure name -> value (NaN: not readable)


@dataclass(frozen=True)
class Verdict:
    """The outcome of judging one rep: faults (most severe first), praise
    from rules that passed, rules that could not be judged, and the score."""

    view: str
    faults: tuple[Rule, ...]
    praise: tuple[str, ...]
    skipped: tuple[str, ...]
    score: float
    values: Mapping[str, float]  # rule id -> the summary it tested

    @property
    def fault_ids(self) -> list[str]:
        return list(dict.fromkeys(r.id for r in self.faults))


_SEVERITY_ORDER = {Severity.FAULT: 0, Severity.WARN: 1, Severity.INFO: 2}


def majority_view(frames: Sequence[FrameRecord]) -> str:
    return Counter(f.view for f in frames).most_common(1)[0][0] if frames else ""


def _despike(v: np.ndarray) -> np.ndarray:
    """Running median of three: one frame's landmark glitch cannot decide a
    rep's extreme."""
    if v.size < 3:
        return v
    out = v.copy()
    out[1:-1] = np.median(np.stack([v[:-2], v[1:-1], v[2:]]), axis=0)
    return out


def summarise(values: np.ndarray, at: str, turn: np.ndarray) -> float:
    """`values` over a rep, summarised as `at`; `turn` marks the frames at the
    turning point. NaN when too little was readable."""
    valid = ~np.isnan(values)
    if valid.sum() < max(MIN_FRAMES, MIN_COVERAGE * values.size):
        return NAN  # too little of the rep was seen to judge it
    v = _despike(values[valid])
    if at == "min":
        return float(v.min())
    if at == "max":
        return float(v.max())
    if at == "mean":
        return float(v.mean())
    if at == "range":
        return float(v.max() - v.min())
    if at == "turn":
        at_turn = values[turn & valid]
        return float(np.median(at_turn)) if at_turn.size else NAN
    start = float(np.median(v[:3]))  # the rep's first readable frames
    if at == "start":
        return start
    if at == "rise":
        return float(v.max()) - start
    if at == "drop":
        return start - float(v.min())
    raise ValueError(f"unknown aggregate {at!r}")


def judge(
    rules: Sequence[Rule],
    frames: Sequence[FrameRecord],
    turn: Sequence[bool] | None = None,
    extra_faults: Sequence[Rule] = (),
) -> Verdict:
    """Judges the frames of one rep. `turn` marks the frames at the turning
    point (all of them when None, as in a hold); `extra_faults` are added
    as they are (e.g. a partial range found by the counter)."""
    view = majority_view(frames)
    turn_mask = np.ones(len(frames), dtype=bool) if turn is None else np.asarray(turn, bool)
    faults: list[Rule] = list(extra_faults)
    praise: list[str] = []
    skipped: list[str] = []
    tested: dict[str, float] = {}
    for rule in rules:
        if view not in rule.views:
            skipped.append(rule.id)
            continue
        values = np.array([f.values.get(rule.measure, NAN) for f in frames], dtype=np.float64)
        summary = summarise(values, rule.at, turn_mask)
        if math.isnan(summary):
            skipped.append(rule.id)
            continue
        tested[rule.id] = round(summary, 3)
        if rule.faulty(summary):
            faults.append(rule)
        elif rule.praise:
            praise.append(rule.praise)
    faults.sort(key=lambda r: _SEVERITY_ORDER[r.severity])
    penalty = sum(r.penalty for r in {r.id: r for r in faults}.values())
    return Verdict(
        view=view,
        faults=tuple(faults),
        praise=tuple(praise),
        skipped=tuple(s for s in dict.fromkeys(skipped) if s not in tested),
        score=max(0.0, 100.0 - penalty),
        values=tested,
    )

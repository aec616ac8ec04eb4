"""Strictness levels: a beginner's thresholds are one step looser than the
exercise file says, an advanced member's one step stricter.

A step moves each form rule's threshold by the rule's `slack` (its own field
in the exercise file, else a default by unit), and moves the depth a rep
needs to count as full by a share of the counting band. Intermediate is the
exercise file as written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from repcoach.common.history import LEVELS, Level, check_level
from repcoach.stages.coaching.spec import Counting, ExerciseSpec, Rule

STEP = {Level.BEGINNER: -1, Level.INTERMEDIATE: 0, Level.ADVANCED: 1}  # + is stricter
DEGREE_SLACK = 6.0
RATIO_SLACK_SHARE = 0.15  # of the threshold's size, for ratio measures
MIN_RATIO_SLACK = 0.03
FULL_SHARE = 0.2  # of the start..full band, per step

assert set(STEP) == set(LEVELS)


def _slack(spec: ExerciseSpec, rule: Rule, threshold: float) -> float:
    if rule.slack is not None:
        return rule.slack
    if spec.measures[rule.measure].unit == "deg":
        return DEGREE_SLACK
    return max(abs(threshold) * RATIO_SLACK_SHARE, MIN_RATIO_SLACK)


def _rule(spec: ExerciseSpec, rule: Rule, step: int) -> Rule:
    # A fault is "below" or "above" a threshold: stricter raises `below`
    # and lowers `above`, so less deviation already counts as a fault.
    below, above = rule.below, rule.above
    if below is not None:
        below += step * _slack(spec, rule, below)
    if above is not None:
        above -= step * _slack(spec, rule, above)
    return replace(rule, below=below, above=above)


def _counting(counting: Counting, step: int) -> Counting:
    # Stricter: `full` moves away from `start` (a rep must go deeper to count).
    return replace(
        counting, full=counting.full + step * FULL_SHARE * (counting.full - counting.start)
    )


def for_level(level: str) -> Callable[[ExerciseSpec], ExerciseSpec]:
    """The `Coach(adapt=...)` hook that applies `level` to an exercise."""
    step = STEP[check_level(level)]

    def adapt(spec: ExerciseSpec) -> ExerciseSpec:
        if step == 0:
            return spec
        return replace(
            spec,
            rules=tuple(_rule(spec, r, step) for r in spec.rules),
            counting=tuple(_counting(c, step) for c in spec.counting),
        )

    return adapt

"""Coaching: joint angles, repetition counting, form rules and feedback.

Exercises are data (`exercises/*.json` at the package root, loaded by
`registry`); `Coach` is the score stage's logic.
"""

from repcoach.stages.coaching.coach import Coach
from repcoach.stages.coaching.registry import ExerciseRegistry, get_exercise, registry
from repcoach.stages.coaching.spec import ExerciseSpec, load_exercise, parse_exercise

__all__ = [
    "Coach",
    "ExerciseRegistry",
    "ExerciseSpec",
    "get_exercise",
    "load_exercise",
    "parse_exercise",
    "registry",
]

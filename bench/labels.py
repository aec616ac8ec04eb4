"""Hand-counted labels of a clips folder (`labels.json`, the format of
../shared/clips/README.md), read into one type the benchmarks share."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from repcoach.common.errors import UserError

# Labels say `exercise_id: other` for an exercise the product did not ship
# when the clip was labelled; the label's `exercise` text then picks a shipped
# exercise by the first of these phrases it contains.
OTHER_EXERCISES = (
    ("pec deck", "pec_deck_fly"),
    ("machine chest fly", "pec_deck_fly"),
)


@dataclass(frozen=True)
class PersonLabel:
    """One person in view (`reps_by_person`); 0 reps: not exercising."""

    description: str
    reps: int


@dataclass(frozen=True)
class ClipLabel:
    file: str
    exercise_id: str  # a shipped exercise or "other"
    exercise_text: str  # the labeller's own words ("seated machine chest fly (pec deck)")
    people: int  # people labelled in view (the leading number when the label is a sentence)
    people_text: str  # the label as written, when it is a sentence
    reps: int  # full reps of the main exerciser
    partial_reps: int
    by_person: tuple[PersonLabel, ...]  # empty unless several people are labelled
    form_faults: tuple[tuple[int, str], ...]  # (rep number, fault id)

    @property
    def exercise(self) -> str | None:
        """The shipped exercise to give the pipeline, or None when the label
        says `other` and no phrase of `OTHER_EXERCISES` matches."""
        if self.exercise_id != "other":
            return self.exercise_id
        text = self.exercise_text.lower()
        return next((name for phrase, name in OTHER_EXERCISES if phrase in text), None)

    @property
    def exercisers(self) -> tuple[int, ...]:
        """Labelled reps of every person who exercises, most first."""
        if not self.by_person:
            return (self.reps,)
        return tuple(sorted((p.reps for p in self.by_person if p.reps > 0), reverse=True))

    @property
    def idle(self) -> int:
        """People labelled in view who do not exercise."""
        return sum(1 for p in self.by_person if p.reps == 0)


def _people(value: object, where: str) -> tuple[int, str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, ""
    match = re.match(r"\s*(\d+)", value) if isinstance(value, str) else None
    if match is None:
        raise UserError(f"{where}: 'people' must be a number or start with one, got {value!r}")
    return int(match.group(1)), value  # type: ignore[return-value]


def ids_allowed(people: int, seconds: float) -> int:
    """How many track ids a clip's labelled people may get (issue 11): one
    more per started minute of clip."""
    return people + math.ceil(seconds / 60.0)


def load_labels(folder: Path) -> list[ClipLabel]:
    """Every clip's label in `folder/labels.json`; UserError names a bad entry."""
    path = folder / "labels.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc})") from None
    labels = []
    for i, entry in enumerate(entries):
        where = f"{path} entry {i} ({entry.get('file', '?')})"
        try:
            people, people_text = _people(entry["people"], where)
            labels.append(
                ClipLabel(
                    file=entry["file"],
                    exercise_id=entry["exercise_id"],
                    exercise_text=entry.get("exercise", ""),
                    people=people,
                    people_text=people_text,
                    reps=int(entry["reps"]),
                    partial_reps=int(entry.get("partial_reps", 0)),
                    by_person=tuple(
                        PersonLabel(p.get("person", ""), int(p["reps"]))
                        for p in entry.get("reps_by_person", ())
                    ),
                    form_faults=tuple(
                        (int(f["rep"]), f["fault"]) for f in entry.get("form_faults", ())
                    ),
                )
            )
        except KeyError as exc:
            raise UserError(f"{where}: field {exc} is missing") from None
    return labels

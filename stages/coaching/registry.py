"""The exercises the coach knows: every `*.json` file in the exercises folder,
loaded once and looked up by name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.stages.coaching.spec import ExerciseSpec, load_exercise

# exercises/ sits at the package root: the repo root in a checkout, repcoach/
# when installed (package data).
EXERCISES_DIR = Path(__file__).resolve().parents[2] / "exercises"


class ExerciseRegistry:
    """Exercise specs by name, from one folder. Every file is checked when the
    registry is built, so a bad file fails at start-up, not mid-session."""

    def __init__(self, folder: Path = EXERCISES_DIR):
        if not folder.is_dir():
            raise UserError(f"exercise folder {folder} does not exist")
        self.folder = folder
        self._specs: dict[str, ExerciseSpec] = {}
        for path in sorted(folder.glob("*.json")):
            spec = load_exercise(path)
            self._specs[spec.name] = spec
        if not self._specs:
            raise UserError(f"exercise folder {folder} holds no *.json exercise files")

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def get(self, name: str) -> ExerciseSpec:
        spec = self._specs.get(name.strip().lower())
        if spec is None:
            raise UserError(f"unknown exercise {name!r}; valid: {', '.join(self._specs)}")
        return spec

    def __iter__(self):
        return iter(self._specs.values())


@lru_cache(maxsize=4)
def registry(folder: Path = EXERCISES_DIR) -> ExerciseRegistry:
    """The registry for `folder`, loaded once per process."""
    return ExerciseRegistry(folder)


def get_exercise(name: str) -> ExerciseSpec:
    """The built-in exercise called `name` (UserError listing valid names if none)."""
    return registry().get(name)

"""Where the evaluation clips live (tests and benchmarks; never shipped)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def clips_dir() -> Path:
    """`$REPCOACH_SHARED_CLIPS`, else `../shared/clips` beside the repository.
    May not exist: a user's fresh clone has no `../shared`."""
    env = os.environ.get("REPCOACH_SHARED_CLIPS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "clips"

"""Atomic file writes: readers see the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(path: Path | str) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only once the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path | str, data: Any) -> None:
    with atomic_file(path) as handle:
        handle.write((json.dumps(data, indent=2) + "\n").encode())


def disk_full(folder: Path | str) -> bool:
    """True when the file system holding `folder` has no block left for us
    (some writers, OpenCV's video writer among them, ignore failed writes)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free == 0


def write_failure(path: Path | str, exc: BaseException, kept: bool | None = None) -> str:
    """One line for a file that could not be written, saying what was kept:
    `could not write s.json: No space left on device (the previous file was kept)`.
    `kept` defaults to whether `path` exists now (an atomic write never touched it)."""
    if kept is None:
        kept = Path(path).exists()
    reason = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    after = "the previous file was kept" if kept else "nothing was written"
    return f"could not write {path}: {reason} ({after})"

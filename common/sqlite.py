"""The one way this project opens and writes its SQLite files (the history
database and the webhook sink's queue).

- WAL journal with `synchronous=NORMAL`: a crash of the process or the
  machine loses at most the last transaction, never the file, and readers
  (the dashboard, `pipeline history`) do not block the writer.
- Autocommit connections, with writes grouped by `transaction`, which takes
  the write lock up front (`BEGIN IMMEDIATE`: no deadlock between two
  writers that both started by reading) and rolls back on any error,
  including a COMMIT that fails on a full disk.
- A schema version in `PRAGMA user_version`: a file written by a newer
  release is refused with a clear message instead of being misread; one
  written by an older release is brought up to date by the caller's
  migrations, in one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


class NewerSchema(sqlite3.DatabaseError):
    """The file's schema is newer than this code knows."""


def open_database(
    path: Path,
    schema: str,
    version: int,
    *,
    migrations: Mapping[int, Sequence[str]] | None = None,
    timeout_s: float = 10.0,
    threads: bool = False,
) -> sqlite3.Connection:
    """Opens (creating if needed) the database at `path` with `schema`
    (idempotent `CREATE ... IF NOT EXISTS` statements) at schema `version`.
    `migrations[v]`: the statements that take a file of version v - 1 to v
    (run on files older than `version`, never on a new one, which `schema`
    makes whole). `threads`: the connection may be used from several threads
    (the caller serialises them). Raises sqlite3.Error (`NewerSchema` for a
    file of a later version); the connection is closed then."""
    db = sqlite3.connect(
        path, timeout=timeout_s, isolation_level=None, check_same_thread=not threads
    )
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        found = db.execute("PRAGMA user_version").fetchone()[0]
        if found > version:
            raise NewerSchema(
                f"its schema is version {found}, this release reads up to {version}: "
                "use the release that wrote it, or another file"
            )
        if 0 < found < version:
            with transaction(db):
                for step in range(found + 1, version + 1):
                    for statement in (migrations or {}).get(step, ()):
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {int(version)}")
        db.executescript(schema)
        if found < version:
            db.execute(f"PRAGMA user_version = {int(version)}")
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if
    it (or the commit) raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise

"""A bounded on-disk queue of outgoing events (SQLite, one file).

Guarantee: an event that `put` returned from is in the file, in order, until
`remove` or `reject` takes it out, and survives the process being killed (WAL
journal; a power cut may lose the last fraction of a second). Each event has
an id and the file keeps one copy per id, so a sender that crashes between
posting and removing posts that event again: delivery is at-least-once, in
order, and receivers de-duplicate by id.

When the queue holds `max_events`, a new event pushes out the oldest; the
count of those dropped is kept in the file too. Events a receiver refused
for good are moved aside to a `rejected` table (the newest `KEEP_REJECTED`).

One process owns a queue file at a time (a lock on `<file>.lock`): two
senders draining one queue would post events twice and out of order.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repcoach.common.errors import UserError
from repcoach.common.sqlite import open_database, transaction

DEFAULT_MAX_EVENTS = 100_000
KEEP_REJECTED = 1000

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0), ('rejected', 0);
"""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def holder_of(path: Path) -> str | None:
    """Who holds the queue file's lock now ("pid N"), without creating anything."""
    lock = lock_path(path)
    if not lock.exists():
        return None
    try:
        with lock.open("r") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f"pid {handle.read().strip() or '?'}"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


class Outbox:
    """Events waiting to be sent, oldest first. Thread-safe: the pipeline
    thread puts while a sender thread peeks and removes."""

    def __init__(self, path: Path, max_events: int = DEFAULT_MAX_EVENTS):
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, got {max_events}")
        self.path = path
        self.max_events = max_events
        self._lock_file = self._take_lock(path)
        self._mutex = threading.Lock()
        try:
            self._db = open_database(path, _SCHEMA, _SCHEMA_VERSION, threads=True)
            self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self._lock_file.close()
            raise UserError(f"queue file {path} cannot be used as a queue ({exc})") from None

    @staticmethod
    def _take_lock(path: Path):
        try:
            handle = lock_path(path).open("a+")
        except OSError as exc:
            raise UserError(f"queue file {path} cannot be locked ({exc.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise UserError(
                f"queue file {path} is in use by another sink (pid {holder}); "
                "give this one its own queue=PATH"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._mutex:
            try:
                with transaction(self._db):
                    yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # what the rollback left
                    self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                raise

    def put(self, event_id: str, body: str) -> bool:
        """Queue one event (a transaction); False if that id is already queued."""
        with self._transaction():
            added = self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, body) VALUES (?, ?)", (event_id, body)
            ).rowcount
            self._count += added
            excess = self._count - self.max_events
            if excess > 0:
                self._db.execute(
                    "DELETE FROM outbox WHERE pos IN (SELECT pos FROM outbox ORDER BY pos LIMIT ?)",
                    (excess,),
                )
                self._add("dropped", excess)
                self._count -= excess
        return bool(added)

    def peek(self, n: int = 1) -> list[tuple[str, str]]:
        """The oldest `n` events as (event_id, body), oldest first."""
        with self._mutex:
            return self._db.execute(
                "SELECT event_id, body FROM outbox ORDER BY pos LIMIT ?", (n,)
            ).fetchall()

    def remove(self, event_ids: list[str]) -> None:
        """Forget events that were delivered (ids no longer queued are ignored)."""
        with self._transaction():
            for event_id in event_ids:
                self._count -= self._db.execute(
                    "DELETE FROM outbox WHERE event_id = ?", (event_id,)
                ).rowcount

    def reject(self, event_id: str, reason: str) -> None:
        """Move an event the receiver refused for good out of the queue."""
        with self._transaction():
            row = self._db.execute(
                "SELECT body FROM outbox WHERE event_id = ?", (event_id,)
            ).fetchone()
            if row is None:
                return
            self._db.execute(
                "INSERT INTO rejected (event_id, body, reason, at) VALUES (?, ?, ?, ?)",
                (event_id, row[0], reason, time.time()),
            )
            self._db.execute(
                "DELETE FROM rejected WHERE pos <= (SELECT MAX(pos) FROM rejected) - ?",
                (KEEP_REJECTED,),
            )
            self._db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
            self._count -= 1
            self._add("rejected", 1)

    def _add(self, counter: str, n: int) -> None:
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (n, counter))

    def counter(self, name: str) -> int:
        """`dropped` (pushed out by a full queue) or `rejected`, over the file's life."""
        with self._mutex:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    @property
    def dropped(self) -> int:
        return self.counter("dropped")

    @property
    def rejected(self) -> int:
        return self.counter("rejected")

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._mutex:
            self._db.close()
        self._lock_file.close()

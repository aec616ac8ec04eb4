"""The shared SQLite helper on real database files."""

import sqlite3

import pytest

from repcoach.common.sqlite import NewerSchema, open_database, transaction

SCHEMA = "CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL);"


def test_a_new_file_gets_wal_and_the_schema_version(tmp_path):
    db = open_database(tmp_path / "a.db", SCHEMA, 3)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    db.close()
    again = open_database(tmp_path / "a.db", SCHEMA, 3)  # idempotent
    assert again.execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_file_from_a_newer_release_is_refused_and_left_alone(tmp_path):
    open_database(tmp_path / "a.db", SCHEMA, 5).close()
    with pytest.raises(NewerSchema, match="schema is version 5, this release reads up to 2"):
        open_database(tmp_path / "a.db", SCHEMA, 2)
    db = sqlite3.connect(tmp_path / "a.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 5


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    db = open_database(tmp_path / "a.db", SCHEMA, 1)
    with transaction(db):
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO t VALUES (2)")
        db.execute("INSERT INTO t VALUES (NULL)")  # NOT NULL: the whole block goes
    assert [r[0] for r in db.execute("SELECT x FROM t")] == [1]
    assert not db.in_transaction


def test_an_older_file_is_migrated_once_and_a_new_one_never(tmp_path):
    open_database(tmp_path / "old.db", SCHEMA, 1).execute("INSERT INTO t VALUES (7)")
    v2 = "CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL, y TEXT);"
    migrations = {2: ["ALTER TABLE t ADD COLUMN y TEXT"]}
    for _ in range(2):  # the second open finds version 2: nothing to do
        db = open_database(tmp_path / "old.db", v2, 2, migrations=migrations)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert list(db.execute("SELECT x, y FROM t")) == [(7, None)]
        db.close()
    new = open_database(tmp_path / "new.db", v2, 2, migrations=migrations)
    assert [r[1] for r in new.execute("PRAGMA table_info(t)")] == ["x", "y"]

"""The state database keeps cursor and outbox together, and fails loudly, never silently."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from alerting.errors import StoreError
from alerting.store import SCHEMA_VERSION, Store
from tests.support.store_faults import (
    corrupt_tables,
    fill_disk,
    hold_lock,
    io_error_script,
    make_read_only,
    upgrade_schema,
)


def test_cursor_and_outbox_commit_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with store.transaction():
        store.set_cursor("di", 100, now=1.0)
        assert store.enqueue_alert("fp1", "rule-a", "{}", ["slack", "email"], now=1.0)
    with pytest.raises(RuntimeError), store.transaction():
        store.set_cursor("di", 200, now=2.0)
        store.enqueue_alert("fp2", "rule-a", "{}", ["slack"], now=2.0)
        raise RuntimeError("crash before commit")
    store.close()

    reopened = Store(tmp_path / "s.db")
    assert reopened.get_cursor("di") == 100
    assert reopened.has_alert("fp1")
    assert not reopened.has_alert("fp2")
    assert reopened.outbox_counts() == {"pending": 2, "sent": 0, "dead": 0, "held": 0}


def test_duplicate_fingerprint_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.enqueue_alert("fp", "r", "{}", ["a"], now=1.0)
    assert not store.enqueue_alert("fp", "r", "{}", ["a", "b"], now=2.0)
    assert len(store.list_deliveries(["pending"])) == 1


def test_delivery_lifecycle(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.enqueue_alert("fp", "r", '{"x": 1}', ["a", "b"], now=10.0)
    assert store.due_deliveries(now=9.0) == []
    first, second = store.due_deliveries(now=10.0)
    store.mark_sent(first.id, now=11.0)
    store.mark_failed(second.id, "boom", next_attempt_at=20.0, dead=False)
    assert store.due_deliveries(now=19.0) == []
    (retry,) = store.due_deliveries(now=20.0)
    assert retry.attempts == 1
    assert retry.last_error == "boom"
    store.mark_failed(retry.id, "boom again", next_attempt_at=30.0, dead=True)
    assert store.outbox_counts() == {"pending": 0, "sent": 1, "dead": 1, "held": 0}
    assert store.retry_dead(now=40.0) == 1
    (again,) = store.due_deliveries(now=40.0)
    assert again.attempts == 0


def test_seen_ids_prune_by_event_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.add_seen("di", [("a", 10), ("b", 20), ("c", 30)])
    assert store.load_seen("di", since_ns=20) == {"b": 20, "c": 30}
    assert store.prune_seen("di", before_ns=25) == 2
    assert store.load_seen("di", since_ns=0) == {"c": 30}
    assert store.load_seen("other", since_ns=0) == {}


def test_baselines_and_realert_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.put_baselines("geo", [("alice", "US", 5, 5), ("alice", "FR", 7, 9)])
    store.put_baselines("geo", [("alice", "US", 3, 12)])
    assert sorted(store.load_baselines("geo")) == [("alice", "FR", 7, 9), ("alice", "US", 3, 12)]
    store.put_realert("burst", [("alice", 100, 2)])
    assert store.load_realert("burst") == {"alice": (100, 2)}


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 512)
    with pytest.raises(StoreError, match=r"corrupt.*move it aside"):
        Store(path)
    assert path.read_bytes().startswith(b"this is not sqlite")  # never silently reset


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer jc-alerting"):
        Store(path)


def test_locked_database_names_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        store = Store.__new__(Store)
        store.path = str(path)
        conn = sqlite3.connect(path, isolation_level=None, timeout=0.05)
        with pytest.raises(sqlite3.OperationalError) as caught:
            conn.execute("BEGIN IMMEDIATE")
        assert "locked by another process" in str(store._error(caught.value))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_schema_1_database_is_migrated_with_its_outbox(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE alerts (fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL,
            created_at REAL NOT NULL, payload TEXT NOT NULL);
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT,
            fingerprint TEXT NOT NULL REFERENCES alerts(fingerprint), channel TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
            last_error TEXT, created_at REAL NOT NULL, sent_at REAL,
            UNIQUE (fingerprint, channel));
        INSERT INTO alerts VALUES ('fp1', 'r', 1.0, '{}');
        INSERT INTO deliveries (fingerprint, channel, state, next_attempt_at, created_at)
            VALUES ('fp1', 'slack', 'pending', 1.0, 1.0);
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    store = Store(db)
    try:
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "dead": 0, "held": 0}
        (pending,) = store.list_deliveries(("pending",))
        assert (pending.id, pending.channel, pending.incident) == (1, "slack", None)
        store.mark_held(pending.id, 2.0, "held: test")  # the new state is allowed
        assert store.outbox_counts()["held"] == 1
    finally:
        store.close()


# ---------------------------------------------------------------------- faults while running
# Each fault is a StoreError naming the file and the cause, the failed transaction leaves
# nothing behind, and the store works again once the fault is gone.


def _seen_rows(n: int) -> list[tuple[str, int]]:
    return [(f"event-{i:08d}" * 4, i) for i in range(n)]


def test_disk_full_is_a_store_error_and_the_store_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.set_cursor("di", 100, now=1.0)
    mend = fill_disk(store)
    with pytest.raises(StoreError) as caught, store.transaction():
        store.set_cursor("di", 200, now=2.0)
        store.add_seen("di", _seen_rows(5000))
    assert caught.value.cause == "disk_full"
    assert str(caught.value).startswith(f"{tmp_path / 's.db'}: the disk is full (")
    assert "free space" in str(caught.value)
    assert store.get_cursor("di") == 100  # rolled back as a whole
    mend()
    with store.transaction():
        store.set_cursor("di", 200, now=2.0)
        store.add_seen("di", _seen_rows(5000))
    assert store.get_cursor("di") == 200
    assert len(store.load_seen("di", 0)) == 5000


def test_commit_that_sqlite_rolled_back_itself_is_one_store_error(tmp_path: Path) -> None:
    """SQLite ends the transaction itself on SQLITE_FULL; no second ROLLBACK error hides it."""
    store = Store(tmp_path / "s.db")
    mend = fill_disk(store)
    with pytest.raises(StoreError, match="disk is full"), store.transaction():
        store.add_seen("di", _seen_rows(5000))
    assert not store._conn.in_transaction
    mend()
    with pytest.raises(RuntimeError, match="the caller's own"), store.transaction():
        store.set_cursor("di", 1, now=1.0)
        raise RuntimeError("the caller's own error")  # an open transaction is rolled back
    assert not store._conn.in_transaction
    assert store.get_cursor("di") is None


def test_read_only_file_is_a_store_error_and_the_store_recovers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    mend = make_read_only(store)
    with pytest.raises(StoreError) as caught, store.transaction():
        store.set_cursor("di", 1, now=1.0)
    assert caught.value.cause == "read_only"
    assert str(caught.value).startswith(f"{tmp_path / 's.db'}: it cannot be written (")
    mend()
    store.set_cursor("di", 1, now=1.0)
    assert store.get_cursor("di") == 1


def test_lock_held_by_another_connection_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", busy_timeout_s=0.05)
    mend = hold_lock(store)
    try:
        with pytest.raises(StoreError) as caught, store.transaction():
            store.set_cursor("di", 1, now=1.0)
        assert caught.value.cause == "locked"
        assert "locked by another process" in str(caught.value)
    finally:
        mend()
    store.set_cursor("di", 1, now=1.0)
    assert store.get_cursor("di") == 1


def test_io_error_is_a_store_error_and_the_store_recovers(tmp_path: Path) -> None:
    done = subprocess.run(
        io_error_script(tmp_path / "s.db"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    cause, message, cursor = done.stdout.splitlines()
    assert cause == "io_error"
    assert message.startswith(f"{tmp_path / 's.db'}: an I/O error (disk I/O error)")
    assert cursor == "2"


def test_corruption_found_while_running_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    store.set_cursor("di", 1, now=1.0)
    store.enqueue_alert("fp", "r", "{}", ["a"], now=1.0)
    store.close()
    corrupt_tables(path)
    store = Store(path)  # the header is fine: the damage shows when the tables are read
    for read in (lambda: store.get_cursor("di"), lambda: store.due_deliveries(now=2.0)):
        with pytest.raises(StoreError) as caught:
            read()
        assert caught.value.cause == "corrupt"
        assert str(caught.value).startswith(f"{path}: the state database is corrupt (")
        assert "restore a backup" in str(caught.value)


def test_schema_upgraded_under_a_running_store_stops_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    store.set_cursor("di", 1, now=1.0)
    upgrade_schema(path)  # e.g. a newer `alerting outbox list` migrated the file
    with pytest.raises(StoreError) as caught, store.transaction():
        store.set_cursor("di", 2, now=2.0)
    assert caught.value.cause == "newer_schema"
    assert "newer jc-alerting" in str(caught.value)
    assert not store._conn.in_transaction
    assert store.get_cursor("di") == 1

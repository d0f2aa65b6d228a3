"""SQLite state: source cursors, seen event ids, the alert outbox, incidents, baselines,
realert, silences.

One file, WAL, ``synchronous=FULL``: a poll advances its cursor and enqueues the alerts
it raised in one transaction, so a crash at any point either keeps both or neither. A
corrupt, locked or newer-schema database is a clear ``StoreError``, never a silent reset.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerting.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_HOLD = "hold:"

# ``incident`` is set on a delivery when its channel groups by incident; ``held`` is an
# alert an incident's higher-severity notification already covers (inhibition).
_DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL REFERENCES alerts(fingerprint),
    channel TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead', 'held')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    sent_at REAL,
    incident TEXT,
    UNIQUE (fingerprint, channel));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_incident ON deliveries (incident, channel);
"""

# One row per incident: the entity it is about and its event-time span.
_INCIDENTS = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, entity TEXT NOT NULL, first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL, opened_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_entity ON incidents (entity, first_ns);
"""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY, cursor_ns INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen_ids (
    source TEXT NOT NULL, event_id TEXT NOT NULL, time_ns INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_ids_time ON seen_ids (source, time_ns);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL, created_at REAL NOT NULL,
    payload TEXT NOT NULL, incident TEXT);
"""
    + _DELIVERIES
    + _INCIDENTS
    + """
CREATE TABLE IF NOT EXISTS baselines (
    rule TEXT NOT NULL, group_key TEXT NOT NULL, value TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (rule, group_key, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS realert (
    rule TEXT NOT NULL, group_key TEXT NOT NULL, last_fired_ns INTEGER NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, group_key)) WITHOUT ROWID;
"""
)

# Schema 1 -> 2: incidents. SQLite cannot widen a CHECK, so deliveries is rebuilt (ids kept).
_MIGRATE_1_TO_2 = (
    """
ALTER TABLE alerts ADD COLUMN incident TEXT;
ALTER TABLE deliveries RENAME TO deliveries_v1;
DROP INDEX IF EXISTS deliveries_due;
"""
    + _DELIVERIES
    + """
INSERT INTO deliveries (id, fingerprint, channel, state, attempts, next_attempt_at,
    last_error, created_at, sent_at)
SELECT id, fingerprint, channel, state, attempts, next_attempt_at, last_error, created_at,
    sent_at FROM deliveries_v1;
DROP TABLE deliveries_v1;
"""
    + _INCIDENTS
)

# Tables added after schema 1 that only add (never change) structure: created on every
# open with IF NOT EXISTS, so an existing database upgrades in place and an older
# jc-alerting simply ignores them. ``silences`` are the ones ``alerting silence add``
# makes; ``silence_holds`` counts the alerts each silence (config ones too, by key) held.
_ADDITIVE = """
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL, match_group TEXT NOT NULL, created_at REAL NOT NULL,
    until REAL NOT NULL, reason TEXT NOT NULL, owner TEXT NOT NULL, expired_at REAL);
CREATE INDEX IF NOT EXISTS silences_until ON silences (until);
CREATE TABLE IF NOT EXISTS silence_holds (
    key TEXT PRIMARY KEY, held INTEGER NOT NULL DEFAULT 0, last_held_at REAL)
    WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class StoredSilence:
    """A silence made with ``alerting silence add``; ``match_group`` is JSON."""

    id: int
    rule: str
    match_group: str
    created_at: float
    until: float
    reason: str
    owner: str
    expired_at: float | None
    held: int


# SQLite's primary result codes (``sqlite_errorname`` without its extended suffix) ->
# (cause, what it means, what the operator does). Nothing is lost in any of them: the
# transaction that failed is rolled back and the next poll or delivery pass retries it.
_CAUSES: dict[str, tuple[str, str]] = {
    "SQLITE_FULL": (
        "disk_full",
        "free space on its file system; nothing is lost, the service retries by itself",
    ),
    "SQLITE_IOERR": (
        "io_error",
        "check the disk and the file system (dmesg); nothing is lost, the service retries "
        "by itself",
    ),
    "SQLITE_READONLY": (
        "read_only",
        "make the file and its directory writable by the service's user and the file "
        "system mounted read-write; nothing is lost, the service retries by itself",
    ),
    "SQLITE_PERM": ("read_only", "make the file and its directory writable by the service"),
    "SQLITE_BUSY": (
        "locked",
        "another process holds a lock on it (a backup, a sqlite3 shell, another "
        "`alerting`); end it and the service goes on by itself",
    ),
    "SQLITE_LOCKED": ("locked", "another connection holds a lock on it; end it"),
    "SQLITE_CORRUPT": (
        "corrupt",
        "stop the service, move the file aside and restore a backup (or start fresh: the "
        "cursor restarts from source.start_from)",
    ),
    "SQLITE_NOTADB": (
        "corrupt",
        "it is not a SQLite database: move it aside and restore a backup (or start fresh: "
        "the cursor restarts from source.start_from)",
    ),
    "SQLITE_CANTOPEN": (
        "cannot_open",
        "check that state.path's directory exists and is writable by the service's user",
    ),
}


def store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """A SQLite error as one line: the state file, the cause in SQLite's words, the fix."""
    text = str(exc)
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    primary = "_".join(name.split("_")[:2])
    cause, fix = _CAUSES.get(primary, ("other", ""))
    if cause == "other":  # errors raised by the sqlite3 module itself carry no code
        if "locked" in text or "busy" in text:
            cause, fix = _CAUSES["SQLITE_BUSY"]
        elif "not a database" in text:
            cause, fix = _CAUSES["SQLITE_NOTADB"]
        elif "malformed" in text or "corrupt" in text:
            cause, fix = _CAUSES["SQLITE_CORRUPT"]
        elif "readonly" in text:
            cause, fix = _CAUSES["SQLITE_READONLY"]
        elif "disk is full" in text:
            cause, fix = _CAUSES["SQLITE_FULL"]
        elif "I/O error" in text:
            cause, fix = _CAUSES["SQLITE_IOERR"]
        elif "unable to open" in text:
            cause, fix = _CAUSES["SQLITE_CANTOPEN"]
    what = {
        "disk_full": "the disk is full",
        "io_error": "an I/O error",
        "read_only": "it cannot be written",
        "locked": "it is locked by another process",
        "corrupt": "the state database is corrupt",
        "cannot_open": "it cannot be opened",
    }.get(cause, "state database error")
    message = f"{path}: {what} ({text})"
    return StoreError(f"{message}: {fix}" if fix else message, cause)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert's delivery to one channel, as the outbox holds it."""

    id: int
    fingerprint: str
    channel: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None
    rule: str
    payload: str
    # Set when the channel groups this alert into its incident's notifications.
    incident: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident as stored: what it is about and the event time it spans."""

    id: str
    entity: str
    first_ns: int
    last_ns: int
    opened_at: float


class Store:
    """The state database. Thread-safe: the poll and delivery jobs share one instance."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self.fault: StoreError | None = None
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot create its directory ({exc.strerror}): "
                    "set state.path to a writable location"
                ) from None
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=busy_timeout_s, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the database to WAL mode")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    # ------------------------------------------------------------------ lifecycle

    def _error(self, exc: sqlite3.Error) -> StoreError:
        """One line naming the file, what SQLite said and what the operator can do."""
        self.fault = store_error(self.path, exc)
        return self.fault

    def fault_message(self) -> str | None:
        """The fault that stopped the last write, until a write works again (for /healthz)."""
        fault = self.fault
        return None if fault is None else str(fault)

    def _check_version(self) -> int:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer jc-alerting (schema {version}, this version "
                f"reads {SCHEMA_VERSION}): upgrade jc-alerting or use another state.path",
                "newer_schema",
            )
        return version

    def _migrate(self) -> None:
        version = self._check_version()
        if version == 0:
            check = self._conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(
                    f"{self.path}: the state database is corrupt ({check}): move it aside",
                    "corrupt",
                )
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version == 1:
            # One transaction: a crash mid-upgrade leaves schema 1 intact for the next start.
            try:
                self._conn.executescript(
                    "BEGIN IMMEDIATE;" + _MIGRATE_1_TO_2 + "PRAGMA user_version=2; COMMIT;"
                )
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        self._conn.executescript(_ADDITIVE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit; nested uses join the outer transaction.

        SQLite rolls a transaction back by itself on some errors (a full disk, an I/O
        error), so the rollback here runs only while one is still open: a second error
        from it would hide the first. SQLite errors leave as ``StoreError``.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                # A newer jc-alerting (say `alerting outbox list` after an upgrade) may
                # have migrated the file under this process: never write the old schema.
                self._check_version()
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(exc) from None
            except StoreError as exc:
                self._rollback()
                self.fault = exc
                raise
            self._depth = 1
            try:
                yield
                self._conn.execute("COMMIT")
                self.fault = None
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(exc) from None
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so."""
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the connection is gone; the error that led here counts
            log.debug("%s: rollback failed: %s", self.path, exc)

    def _exec(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run a statement that changes rows (its cursor gives ``rowcount``)."""
        with self._lock:
            try:
                cursor = self._conn.execute(sql, tuple(params))
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            if not self._depth:
                self.fault = None  # a write outside a transaction is committed already
            return cursor

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and read all its rows: SQLite reads pages (and finds a corrupt
        one) while rows are fetched, so the fetch belongs inside the error handling."""
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _many(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._lock:
            try:
                self._conn.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            if not self._depth:
                self.fault = None

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ------------------------------------------------------------------ cursor + seen ids

    def get_cursor(self, source: str) -> int | None:
        """The source's cursor in ns since the epoch, or None before the first poll."""
        rows = self._rows("SELECT cursor_ns FROM cursors WHERE source = ?", (source,))
        return int(rows[0][0]) if rows else None

    def set_cursor(self, source: str, cursor_ns: int, now: float) -> None:
        self._exec(
            "INSERT INTO cursors (source, cursor_ns, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET cursor_ns = excluded.cursor_ns, "
            "updated_at = excluded.updated_at",
            (source, cursor_ns, now),
        )

    def load_seen(self, source: str, since_ns: int) -> dict[str, int]:
        """Ids (with their event time) seen at or after ``since_ns``."""
        rows = self._rows(
            "SELECT event_id, time_ns FROM seen_ids WHERE source = ? AND time_ns >= ?",
            (source, since_ns),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def add_seen(self, source: str, ids: Iterable[tuple[str, int]]) -> None:
        self._many(
            "INSERT OR IGNORE INTO seen_ids (source, event_id, time_ns) VALUES (?, ?, ?)",
            ((source, event_id, time_ns) for event_id, time_ns in ids),
        )

    def prune_seen(self, source: str, before_ns: int) -> int:
        cur = self._exec(
            "DELETE FROM seen_ids WHERE source = ? AND time_ns < ?", (source, before_ns)
        )
        return cur.rowcount

    # ------------------------------------------------------------------ outbox

    def alert_count(self) -> int:
        """How many alerts the outbox holds (each once, whatever its deliveries)."""
        return int(self._rows("SELECT COUNT(*) FROM alerts")[0][0])

    def has_alert(self, fingerprint: str) -> bool:
        return bool(self._rows("SELECT 1 FROM alerts WHERE fingerprint = ?", (fingerprint,)))

    def enqueue_alert(
        self,
        fingerprint: str,
        rule: str,
        payload: str,
        channels: Iterable[str],
        now: float,
        *,
        incident: str | None = None,
        grouped: Mapping[str, float] | None = None,
    ) -> bool:
        """Record an alert and one pending delivery per channel; False if already known.

        ``grouped`` maps the channels that send ``incident`` as one message to when that
        message is due; their deliveries carry the incident id.
        """
        grouped = grouped or {}
        with self.transaction():
            cur = self._exec(
                "INSERT OR IGNORE INTO alerts (fingerprint, rule, created_at, payload, incident) "
                "VALUES (?, ?, ?, ?, ?)",
                (fingerprint, rule, now, payload, incident),
            )
            if cur.rowcount == 0:
                return False
            self._many(
                "INSERT OR IGNORE INTO deliveries "
                "(fingerprint, channel, state, attempts, next_attempt_at, created_at, incident) "
                "VALUES (?, ?, 'pending', 0, ?, ?, ?)",
                (
                    (
                        fingerprint,
                        ch,
                        grouped.get(ch, now),
                        now,
                        incident if ch in grouped else None,
                    )
                    for ch in channels
                ),
            )
            return True

    _DELIVERY_SELECT = (
        "SELECT d.id, d.fingerprint, d.channel, d.state, d.attempts, d.next_attempt_at, "
        "d.last_error, d.created_at, d.sent_at, a.rule, a.payload, d.incident "
        "FROM deliveries d JOIN alerts a ON a.fingerprint = d.fingerprint "
    )

    def due_deliveries(self, now: float, limit: int = 100) -> list[Delivery]:
        rows = self._rows(
            self._DELIVERY_SELECT + "WHERE d.state = 'pending' AND d.next_attempt_at <= ? "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (now, limit),
        )
        return [Delivery(*r) for r in rows]

    def list_deliveries(self, states: Iterable[str] = ("pending", "dead")) -> list[Delivery]:
        states = tuple(states)
        marks = ",".join("?" for _ in states)
        rows = self._rows(
            self._DELIVERY_SELECT + f"WHERE d.state IN ({marks}) ORDER BY d.id",
            states,
        )
        return [Delivery(*r) for r in rows]

    def mark_sent(self, delivery_id: int, now: float) -> None:
        self._exec(
            "UPDATE deliveries SET state = 'sent', sent_at = ?, attempts = attempts + 1, "
            "last_error = NULL WHERE id = ?",
            (now, delivery_id),
        )

    def mark_held(self, delivery_id: int, now: float, reason: str) -> None:
        """An incident's higher-severity notification covers this alert: do not send it."""
        self._exec(
            "UPDATE deliveries SET state = 'held', sent_at = ?, last_error = ? WHERE id = ?",
            (now, reason[:2000], delivery_id),
        )

    def mark_failed(
        self, delivery_id: int, error: str, next_attempt_at: float, *, dead: bool
    ) -> None:
        self._exec(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?, "
            "next_attempt_at = ? WHERE id = ?",
            ("dead" if dead else "pending", error[:2000], next_attempt_at, delivery_id),
        )

    def postpone(self, delivery_id: int, next_attempt_at: float, reason: str) -> None:
        """Delay a delivery without counting an attempt (e.g. a Retry-After)."""
        self._exec(
            "UPDATE deliveries SET next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, reason[:2000], delivery_id),
        )

    def retry_dead(self, now: float, delivery_id: int | None = None) -> int:
        """Re-queue dead-lettered deliveries (one, or all); returns how many."""
        if delivery_id is None:
            cur = self._exec(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ? "
                "WHERE state = 'dead'",
                (now,),
            )
        else:
            cur = self._exec(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ? "
                "WHERE id = ? AND state IN ('dead', 'pending')",
                (now, delivery_id),
            )
        return cur.rowcount

    # A channel's rate limit (429 + Retry-After) holds all its deliveries until it ends,
    # across passes, polls and restarts. Kept in ``meta`` as ``hold:<channel>`` ->
    # ``<until> <reason>``, so the schema (and a downgrade) stays as it was.

    def hold_channel(self, channel: str, until: float, reason: str) -> None:
        self.set_meta(f"{_HOLD}{channel}", f"{until!r} {reason[:2000]}")

    def channel_holds(self, now: float) -> dict[str, tuple[float, str]]:
        """Channels held past ``now``: name -> (until, reason). Ended holds are dropped."""
        holds: dict[str, tuple[float, str]] = {}
        ended: list[str] = []
        for key, value in self._rows("SELECT key, value FROM meta WHERE key LIKE 'hold:%'"):
            until_text, _, reason = str(value).partition(" ")
            try:
                until = float(until_text)
            except ValueError:
                until = 0.0  # unreadable: no hold, rather than a channel stuck for good
            if until > now:
                holds[str(key)[len(_HOLD) :]] = (until, reason)
            else:
                ended.append(str(key))
        if ended:
            self._many("DELETE FROM meta WHERE key = ?", ((k,) for k in ended))
        return holds

    def outbox_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        counts = {"pending": 0, "sent": 0, "dead": 0, "held": 0}
        counts.update({str(s): int(n) for s, n in rows})
        return counts

    # ------------------------------------------------------------------ incidents

    def latest_incident(self, entity: str) -> IncidentRow | None:
        """The entity's most recent incident (by its first alert's event time)."""
        rows = self._rows(
            "SELECT id, entity, first_ns, last_ns, opened_at FROM incidents WHERE entity = ? "
            "ORDER BY first_ns DESC LIMIT 1",
            (entity,),
        )
        if not rows:
            return None
        row = rows[0]
        return IncidentRow(str(row[0]), str(row[1]), int(row[2]), int(row[3]), float(row[4]))

    def save_incident(self, row: IncidentRow) -> None:
        self._exec(
            "INSERT INTO incidents (id, entity, first_ns, last_ns, opened_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "first_ns = excluded.first_ns, last_ns = excluded.last_ns",
            (row.id, row.entity, row.first_ns, row.last_ns, row.opened_at),
        )

    def incident_deliveries(self, incident: str, channel: str) -> list[Delivery]:
        """Every delivery (any state) of one incident's grouped alerts to one channel."""
        rows = self._rows(
            self._DELIVERY_SELECT + "WHERE d.incident = ? AND d.channel = ? ORDER BY d.id",
            (incident, channel),
        )
        return [Delivery(*r) for r in rows]

    # ------------------------------------------------------------------ engine state

    def load_baselines(self, rule: str) -> list[tuple[str, str, int, int]]:
        """(group_key, value, first_seen_ns, last_seen_ns) rows of a new_value rule."""
        rows = self._rows(
            "SELECT group_key, value, first_seen_ns, last_seen_ns FROM baselines WHERE rule = ?",
            (rule,),
        )
        return [(str(g), str(v), int(f), int(la)) for g, v, f, la in rows]

    def put_baselines(self, rule: str, rows: Iterable[tuple[str, str, int, int]]) -> None:
        self._many(
            "INSERT INTO baselines (rule, group_key, value, first_seen_ns, last_seen_ns) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(rule, group_key, value) DO UPDATE SET "
            "first_seen_ns = MIN(first_seen_ns, excluded.first_seen_ns), "
            "last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
            ((rule, g, v, f, la) for g, v, f, la in rows),
        )

    def prune_baselines(self, rule: str, before_ns: int) -> int:
        """Delete a new_value rule's values last seen before ``before_ns`` (forgotten)."""
        cur = self._exec(
            "DELETE FROM baselines WHERE rule = ? AND last_seen_ns < ?", (rule, before_ns)
        )
        return cur.rowcount

    def load_realert(self, rule: str) -> dict[str, tuple[int, int]]:
        """group_key -> (last_fired_ns, suppressed count) for one rule."""
        rows = self._rows(
            "SELECT group_key, last_fired_ns, suppressed FROM realert WHERE rule = ?", (rule,)
        )
        return {str(g): (int(t), int(s)) for g, t, s in rows}

    def put_realert(self, rule: str, rows: Iterable[tuple[str, int, int]]) -> None:
        self._many(
            "INSERT INTO realert (rule, group_key, last_fired_ns, suppressed) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(rule, group_key) DO UPDATE SET last_fired_ns = excluded.last_fired_ns, "
            "suppressed = excluded.suppressed",
            ((rule, g, t, s) for g, t, s in rows),
        )

    # ------------------------------------------------------------------ silences

    _SILENCE_SELECT = (
        "SELECT s.id, s.rule, s.match_group, s.created_at, s.until, s.reason, s.owner, "
        "s.expired_at, COALESCE(h.held, 0) FROM silences s "
        "LEFT JOIN silence_holds h ON h.key = 'db:' || s.id "
    )

    def add_silence(
        self, *, rule: str, match_group: str, until: float, reason: str, owner: str, now: float
    ) -> int:
        """Store a silence; returns its id (what ``silence expire`` takes)."""
        cur = self._exec(
            "INSERT INTO silences (rule, match_group, created_at, until, reason, owner) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rule, match_group, now, until, reason, owner),
        )
        return int(cur.lastrowid or 0)

    def silences(self, *, since: float | None = None) -> list[StoredSilence]:
        """Stored silences, oldest first; ``since``: only those still active at that time."""
        where, params = "", []
        if since is not None:
            where, params = "WHERE MIN(s.until, COALESCE(s.expired_at, s.until)) > ? ", [since]
        rows = self._exec(self._SILENCE_SELECT + where + "ORDER BY s.id", params).fetchall()
        return [StoredSilence(*r) for r in rows]

    def expire_silence(self, silence_id: int, now: float) -> bool:
        """End a silence now; False when there is no such silence or it had already ended."""
        cur = self._exec(
            "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL AND until > ?",
            (now, silence_id, now),
        )
        return cur.rowcount > 0

    def count_held(self, key: str, now: float) -> None:
        """One more alert held back by the silence ``key`` (``db:ID`` or ``config:HASH``)."""
        self._exec(
            "INSERT INTO silence_holds (key, held, last_held_at) VALUES (?, 1, ?) "
            "ON CONFLICT(key) DO UPDATE SET held = held + 1, last_held_at = excluded.last_held_at",
            (key, now),
        )

    def held_counts(self) -> dict[str, int]:
        rows = self._exec("SELECT key, held FROM silence_holds").fetchall()
        return {str(k): int(n) for k, n in rows}

"""Storage faults made with SQLite's own limits, for the store's and the service's tests.

Each helper breaks a working ``Store`` the way a production disk breaks it, and returns a
function that mends it: a full disk is ``max_page_count`` at the current size, a read-only
file is ``query_only``, a lock is a second connection holding an exclusive transaction,
a newer schema is another process raising ``user_version``, corruption is garbage over
the table pages of a closed file whose header is intact. An I/O error needs a process
of its own (``RLIMIT_FSIZE``), see ``io_error_script``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from alerting.store import SCHEMA_VERSION, Store

Mend = Callable[[], None]


def fill_disk(store: Store) -> Mend:
    """No page beyond the current ones: the next write that needs one is SQLITE_FULL."""
    conn = store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")

    def mend() -> None:
        conn.execute("PRAGMA max_page_count=1073741823")

    return mend


def make_read_only(store: Store) -> Mend:
    """Every write is SQLITE_READONLY, as on a file system remounted read-only."""
    conn = store._conn
    conn.execute("PRAGMA query_only=1")

    def mend() -> None:
        conn.execute("PRAGMA query_only=0")

    return mend


def hold_lock(store: Store, busy_timeout_s: float = 0.05) -> Mend:
    """Another connection holds the write lock; the store waits ``busy_timeout_s``, not 5 s."""
    store._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")

    def mend() -> None:
        other.execute("ROLLBACK")
        other.close()

    return mend


def upgrade_schema(path: str | Path) -> None:
    """What a newer jc-alerting does when it opens the file (e.g. `alerting outbox list`)."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()


def corrupt_tables(path: str | Path, tables: tuple[str, ...] = ("cursors", "deliveries")) -> None:
    """Overwrite the root pages of ``tables`` in a closed database; the header stays valid."""
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = conn.execute(
        f"SELECT rootpage FROM sqlite_master WHERE name IN ({','.join('?' * len(tables))})",
        tables,
    ).fetchall()
    conn.close()
    data = bytearray(Path(path).read_bytes())
    for (root,) in roots:
        start = (root - 1) * page_size
        data[start : start + page_size] = b"\xa5" * page_size
    Path(path).write_bytes(bytes(data))


def io_error_script(path: str | Path) -> list[str]:
    """A python command that opens ``path`` and writes past an ``RLIMIT_FSIZE`` limit.

    The kernel refuses the write (EFBIG), SQLite reports SQLITE_IOERR. The limit is per
    process, so it runs in a child; it prints the StoreError's cause and message.
    """
    code = f"""
import resource, signal, sys
from alerting.errors import StoreError
from alerting.store import Store
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
store = Store({str(path)!r})
store.set_cursor("di", 1, 1.0)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
try:
    with store.transaction():
        store.add_seen("di", ((f"event-{{i:08d}}" * 4, i) for i in range(20_000)))
except StoreError as exc:
    print(exc.cause)
    print(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
store.set_cursor("di", 2, 2.0)  # the store works again once the file can grow
print(store.get_cursor("di"))
"""
    return [sys.executable, "-c", code]

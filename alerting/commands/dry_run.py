"""``alerting run --dry-run``: one real poll and evaluation, and what would be sent where,
for a first look at an org before delivery is switched on.

The service runs exactly as ``--once`` does (warm-up, poll, rules, silences, routes, the
one transaction that queues alerts and moves the cursor), but on a throwaway copy of the
state database in a temporary directory: nothing is delivered, nothing is queued in the
real outbox, no cursor or baseline moves, and the real database is only read (SQLite's
file copied, or, while a service runs, SQLite's online backup through a read-only
connection, so that service is not disturbed).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from alerting import jsonutil
from alerting.config import Config, load_config
from alerting.errors import AlertingError
from alerting.logs import setup_logging
from alerting.service import Service

__all__ = ["copy_state", "dry_run"]


def copy_state(source: Path, target: Path) -> bool:
    """Copy the state database ``source`` to ``target`` without writing anything beside
    it; False when there is none yet (the dry run then starts empty, as a first run).

    A stopped service leaves one file: it is copied as bytes, SQLite never opens it
    (even a read-only connection would leave ``-wal``/``-shm`` files behind). A running
    (or crashed) one has its write-ahead log beside it: SQLite's online backup reads the
    committed state through a read-only connection, using the files already there.
    """
    if not source.exists():
        return False
    try:
        if not Path(f"{source}-wal").exists():
            shutil.copyfile(source, target)
            return True
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise AlertingError(f"cannot read the state database {source}: {exc}") from None
    except OSError as exc:
        raise AlertingError(f"cannot read the state database {source}: {exc.strerror}") from None
    return True


def dry_run(config_path: str) -> int:
    """One poll on a copy of the state; print the deliveries it would have made."""
    config = load_config(config_path)
    setup_logging(level=config.logging.level, fmt=config.logging.format, secrets=config.secrets())
    with tempfile.TemporaryDirectory(prefix="alerting-dry-run-") as tmp:
        copy = Path(tmp) / "state.db"
        had_state = copy_state(config.state.path, copy)
        throwaway = config.model_copy(
            update={"state": config.state.model_copy(update={"path": copy})}
        )
        return _poll_and_show(throwaway, config, config_path, had_state)


def _poll_and_show(throwaway: Config, config: Config, config_path: str, had_state: bool) -> int:
    service = Service.from_config(throwaway, config_path=config_path)
    try:
        service.open(serve=False)
        before = {d.id for d in service.store.list_deliveries(("pending", "dead", "sent"))}
        outcome = service.poll_once()
        if not outcome.ok:
            raise AlertingError(outcome.error or "the poll failed")
        queued = [d for d in service.store.list_deliveries(("pending",)) if d.id not in before]
        source = service.source_desc
    finally:
        service.close()
    state = f"a copy of {config.state.path}" if had_state else "empty state (no state yet)"
    out = sys.stdout
    out.write(
        f"dry run of {config_path} on {state}: nothing sent, nothing queued, no cursor moved\n"
        f"polled {source}: {outcome.new:,} new events, {outcome.alerts} alert"
        f"{'' if outcome.alerts == 1 else 's'}\n"
    )
    by_alert: dict[str, list[str]] = {}
    payloads: dict[str, str] = {}
    for delivery in queued:
        by_alert.setdefault(delivery.fingerprint, []).append(delivery.channel)
        payloads[delivery.fingerprint] = delivery.payload
    if by_alert:
        out.write("would send:\n")
    for fingerprint, channels in by_alert.items():
        alert = jsonutil.loads(payloads[fingerprint])
        summary = " ".join(str(alert.get("summary", "")).split())
        out.write(
            f"  [{alert.get('severity')}] {alert.get('rule')}: {summary} -> "
            f"{', '.join(sorted(channels))}\n"
        )
    held = outcome.alerts - len(by_alert)
    if held > 0:
        out.write(
            f"{held} alert{'' if held == 1 else 's'} would not be sent: silenced, matching no "
            "route, or already sent before (see the log lines above)\n"
        )
    return 0

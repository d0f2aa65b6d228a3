"""``alerting outbox list`` / ``alerting outbox retry [ID]``: see and re-queue deliveries.

Delivery is durable, so nothing is ever dropped: what could not be sent waits as
``pending`` (retrying with backoff) or ``dead`` (given up, with the last error). This
command shows both and puts dead deliveries back in the queue once the cause is fixed;
the running service (or the next ``alerting run --once``) then sends them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from alerting.clock import Clock, SystemClock
from alerting.commands.common import config_path
from alerting.config import load_config
from alerting.errors import AlertingError
from alerting.notify.escape import one_line, terminal_escape
from alerting.store import Delivery, Store

ERROR_WIDTH = 60


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_table(deliveries: Sequence[Delivery]) -> str:
    """Pending and dead deliveries as an aligned text table."""
    header = ("ID", "STATE", "CHANNEL", "RULE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR")
    rows = [header]
    for d in deliveries:
        rows.append(
            (
                str(d.id),
                d.state,
                terminal_escape(d.channel),
                terminal_escape(d.rule),
                str(d.attempts),
                _when(d.next_attempt_at) if d.state == "pending" else "-",
                terminal_escape(one_line(d.last_error or "-", ERROR_WIDTH)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def list_command(store: Store, out: IO[str]) -> int:
    deliveries = store.list_deliveries(("pending", "dead"))
    counts = store.outbox_counts()
    held = (
        f"; {counts['held']} held (an incident's higher-severity message covered them)"
        if counts.get("held")
        else ""
    )
    if not deliveries:
        out.write(f"outbox is empty: nothing pending, nothing dead-lettered{held}\n")
        return 0
    out.write(format_table(deliveries) + "\n")
    out.write(
        f"{counts['pending']} pending, {counts['dead']} dead"
        + (" (`alerting outbox retry` re-queues the dead ones)" if counts["dead"] else "")
        + held
        + "\n"
    )
    return 0


def _find(store: Store, delivery_id: int, states: tuple[str, ...]) -> Delivery | None:
    return next((d for d in store.list_deliveries(states) if d.id == delivery_id), None)


def retry_command(store: Store, delivery_id: int | None, clock: Clock, out: IO[str]) -> int:
    now = clock.time()
    if delivery_id is None:
        with store.transaction():  # the listed rows are exactly the re-queued ones
            dead = store.list_deliveries(("dead",))
            count = store.retry_dead(now) if dead else 0
        if not dead:
            out.write("nothing to retry: no dead-lettered deliveries\n")
            return 0
        for d in dead:
            out.write(f"re-queued delivery {d.id} ({d.channel}, rule {terminal_escape(d.rule)})\n")
        out.write(f"re-queued {count} dead deliveries; they are sent on the next delivery run\n")
        return 0
    found = _find(store, delivery_id, ("pending", "dead"))
    if found is None:
        # Sent rows are the whole history: read them only to explain the refusal.
        if _find(store, delivery_id, ("sent",)) is not None:
            raise AlertingError(f"delivery {delivery_id} was already sent; nothing to retry")
        held = _find(store, delivery_id, ("held",))
        if held is not None:
            raise AlertingError(
                f"delivery {delivery_id} was held: {held.last_error or 'covered by its incident'}"
                "; its incident's message was sent, nothing to retry"
            )
        raise AlertingError(
            f"no delivery with id {delivery_id}: `alerting outbox list` shows the ids"
        )
    store.retry_dead(now, delivery_id)
    out.write(
        f"re-queued delivery {delivery_id} ({found.channel}, rule "
        f"{terminal_escape(found.rule)}); it is sent on the next delivery run\n"
    )
    return 0


def main(args: argparse.Namespace) -> int:
    """``alerting outbox list|retry [ID]`` (``--config F`` anywhere)."""
    delivery_id: int | None = args.id if args.outbox_command == "retry" else None
    return run(config_path(args), args.outbox_command, delivery_id)


def run(config_path: str, action: str, delivery_id: int | None) -> int:
    """List the outbox of the config's state database, or re-queue dead deliveries."""
    # Only the state database is read: channel secrets are not needed to list or re-queue.
    config = load_config(config_path, need_secrets=False)
    path = Path(config.state.path)
    if not path.exists():
        # Nothing was ever queued; do not create an empty database just to say so.
        if action == "retry" and delivery_id is not None:
            raise AlertingError(
                f"no delivery with id {delivery_id}: there is no state database at {path} yet"
            )
        sys.stdout.write(f"outbox is empty: no state database at {path} yet\n")
        return 0
    store = Store(path)
    try:
        if action == "list":
            return list_command(store, sys.stdout)
        if action == "retry":
            return retry_command(store, delivery_id, SystemClock(), sys.stdout)
        raise AlertingError(f"unknown outbox action {action!r}: use list or retry")
    finally:
        store.close()

"""``alerting silence add|list|expire``: silences as data, in the state database.

On-call pastes the line a message ends with (``alerting silence add --rule R --group
K=V --for 1h --reason ... --owner ...``); the running service applies it from its next
poll, no edit, no restart. ``list`` shows these and the config file's silences side by
side with how many alerts each held back; ``expire`` ends one early. Only the state
database is touched, so no channel secret is needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO

from alerting import jsonutil
from alerting.clock import Clock, SystemClock
from alerting.commands.common import config_path
from alerting.config import Config, load_config
from alerting.durations import NS, parse_duration_ns
from alerting.engine.loader import load_rules
from alerting.errors import AlertingError
from alerting.notify import silences as silencing
from alerting.notify.escape import one_line, terminal_escape
from alerting.store import Store
from alerting.yamlfile import suggest

# ``silence list`` shows silences that ended less than this long ago.
RECENT_S = 7 * 86400
REASON_WIDTH = 50


def parse_group(values: Sequence[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` flags as a mapping; a value may itself contain ``=``."""
    group: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AlertingError(
                f"--group {item!r}: write KEY=VALUE, e.g. --group initiated_by.username=alice"
            )
        group[key.strip()] = value
    return group


def parse_until(duration: str | None, until: str | None, now: float) -> float:
    """The end time from ``--for`` or ``--until``; in the future, or an error saying how."""
    if duration is not None:
        try:
            ns = parse_duration_ns(duration)
        except ValueError as exc:
            raise AlertingError(f"--for: {exc}") from None
        if ns <= 0:
            raise AlertingError("--for must be longer than zero, e.g. --for 1h")
        return now + ns / NS
    assert until is not None
    try:
        when = datetime.fromisoformat(until.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AlertingError(
            f"--until {until!r} is not an ISO time: write e.g. 2026-12-01T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise AlertingError(f"--until {until!r} needs a time zone: add Z (UTC) or +02:00")
    end = when.timestamp()
    if end <= now:
        raise AlertingError(f"--until {until!r} is in the past: give a later time, or use --for")
    return end


def _check_rule(config: Config, rule: str, group: dict[str, str]) -> None:
    """The rule must exist and the group keys must be ones it groups by (a typo holds
    nothing back, silently): an error naming the fix."""
    loaded = load_rules(list(config.rules.paths), placeholders=config.placeholders)
    rules = {r.id: r for r in loaded}
    found = rules.get(rule)
    if found is None:
        raise AlertingError(
            f"--rule {rule!r}: no such rule in {', '.join(str(p) for p in config.rules.paths)}"
            f"{suggest(rule, list(rules))} (`alerting rules list` shows them)"
        )
    keys = [path for path, _getter in found.group_by]
    for key in group:
        # With several org_ids every alert's group also carries its organization.
        if key not in keys and key != "organization":
            by = ", ".join(keys) or "nothing (one group)"
            raise AlertingError(
                f"--group {key}=...: rule {rule} groups by {by}{suggest(key, keys)}"
            )


def add_command(
    store: Store, args: argparse.Namespace, config: Config, clock: Clock, out: IO[str]
) -> int:
    now = clock.time()
    group = parse_group(args.group)
    until = parse_until(args.duration, args.until, now)
    reason, owner = args.reason.strip(), args.owner.strip()
    if not reason or not owner:
        raise AlertingError("--reason and --owner must not be empty: say why and who")
    _check_rule(config, args.rule, group)
    silence_id = store.add_silence(
        rule=args.rule,
        match_group=jsonutil.dumps(group),
        until=until,
        reason=reason,
        owner=owner,
        now=now,
    )
    out.write(f"{silence_id}\n")
    where = ", ".join(f"{k}={v}" for k, v in group.items()) or "every group"
    sys.stderr.write(
        f"silence {silence_id}: rule {terminal_escape(args.rule)}, "
        f"{terminal_escape(where)}, until {silencing.iso(until)}; a running service applies "
        f"it from its next poll (`alerting silence expire {silence_id}` ends it)\n"
    )
    return 0


def _row(s: silencing.Silence, now: float) -> tuple[str, ...]:
    return (
        str(s.id) if s.id is not None else "-",
        "cli" if s.id is not None else s.origin,
        "active" if s.active(now) else "expired",
        silencing.iso(s.ends_at),
        str(s.held),
        terminal_escape(s.owner),
        terminal_escape(one_line(s.label, 70)),
        terminal_escape(one_line(s.reason, REASON_WIDTH)),
    )


def _where(config: Config, index: int) -> str:
    """``config.yaml:42``: where a config silence is written (the place to change it)."""
    line = config.locate("silences", index).line
    return f"{config.path.name}:{line}" if line else f"{config.path.name}:silences.{index}"


def list_command(store: Store | None, config: Config, clock: Clock, out: IO[str]) -> int:
    now = clock.time()
    held = store.held_counts() if store is not None else {}
    rows = [
        dataclasses.replace(s, origin=_where(config, i))
        for i, s in enumerate(silencing.from_config(config.silences, held))
    ]
    if store is not None:
        rows += silencing.from_store(store.silences(since=now - RECENT_S))
    rows = [s for s in rows if s.active(now) or now - s.ends_at < RECENT_S]
    if not rows:
        out.write("no silences: none active, none ended in the last 7 days\n")
        return 0
    rows.sort(key=lambda s: (not s.active(now), s.ends_at))
    header = ("ID", "FROM", "STATE", "UNTIL", "HELD", "OWNER", "SILENCES", "REASON")
    table = [header, *(_row(s, now) for s in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for r in table:
        line = "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        out.write(line.rstrip() + "\n")
    active = sum(1 for s in rows if s.active(now))
    out.write(
        f"{active} active, {len(rows) - active} expired in the last 7 days; HELD = alerts held "
        "back; config silences change in the config file (then reload)\n"
    )
    return 0


def expire_command(store: Store, silence_id: int, clock: Clock, out: IO[str]) -> int:
    now = clock.time()
    known = {s.id: s for s in store.silences()}
    if silence_id not in known:
        raise AlertingError(
            f"no silence with id {silence_id}: `alerting silence list` shows the ids "
            "(config-file silences end by editing the config and reloading)"
        )
    if not store.expire_silence(silence_id, now):
        found = known[silence_id]
        ended = found.until if found.expired_at is None else min(found.until, found.expired_at)
        raise AlertingError(
            f"silence {silence_id} already ended at {silencing.iso(ended)}; nothing to expire"
        )
    out.write(
        f"silence {silence_id} expired: the next matching alert is sent (from the service's "
        "next poll)\n"
    )
    return 0


def main(
    args: argparse.Namespace, *, clock: Clock | None = None, out: IO[str] | None = None
) -> int:
    """``alerting silence add|list|expire``."""
    clock = clock or SystemClock()
    stream = out or sys.stdout
    config = load_config(config_path(args), need_secrets=False)
    path = config.state.path
    action = args.silence_command
    if action == "list" and not path.exists():
        return list_command(None, config, clock, stream)
    if action == "expire" and not path.exists():
        raise AlertingError(f"no silence with id {args.id}: there is no state database at {path}")
    store = Store(path)
    try:
        if action == "add":
            return add_command(store, args, config, clock, stream)
        if action == "list":
            return list_command(store, config, clock, stream)
        if action == "expire":
            return expire_command(store, args.id, clock, stream)
        raise AlertingError(f"unknown silence action {action!r}: use add, list or expire")
    finally:
        store.close()


__all__ = ["main", "parse_group", "parse_until"]

"""Silences: mute matching alerts until a time, with a reason and an owner.

Two kinds, one behaviour: ``silences:`` in the config file (globs, read at start and on
reload) and silences made with ``alerting silence add`` (stored in the state database,
read on every poll, so a running service applies a new one from its next poll). A
silence whose ``until`` has passed is ignored (``validate`` reports expired config ones
so they can be removed); an active one drops the alert before routing, the drop is
logged and counted against the silence. Every message ends with the exact
``alerting silence add ...`` line for its rule and group (``silence_command``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerting import jsonutil
from alerting.alert import Alert
from alerting.notify.routing import matches
from alerting.notify.settings import AlertMatch, SilenceConfig
from alerting.store import StoredSilence
from alerting.timeintervals import TimeInterval, active_at

# What the printed command proposes; on-call edits the reason before running it.
SUGGESTED_FOR = "1h"
SUGGESTED_REASON = "investigating"

_GLOB = re.compile(r"([*?\[])")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Silence:
    """An active or past silence of either kind.

    ``key`` identifies it for the held-back counter: ``db:ID`` or ``config:HASH``;
    ``id`` is the stored id (``None`` for config silences), ``origin`` where it lives.
    """

    key: str
    match: AlertMatch
    until: float
    reason: str
    owner: str
    origin: str
    id: int | None = None
    created_at: float | None = None
    expired_at: float | None = None
    held: int = 0
    label: str = ""  # "rule group=value" as written, for ``silence list``
    # Config silences may hold only while one of these named time_intervals does.
    active_time_intervals: tuple[str, ...] = ()

    @property
    def ends_at(self) -> float:
        """When it stops holding alerts back: its ``until`` or its early expiry."""
        return self.until if self.expired_at is None else min(self.until, self.expired_at)

    def active(self, now: float) -> bool:
        return now < self.ends_at


def glob_escape(value: str) -> str:
    """``value`` as a glob that matches only itself (CLI silences match exactly)."""
    return _GLOB.sub(r"[\1]", value)


def config_key(silence: SilenceConfig) -> str:
    """A stable key for a config silence (its content), so its count survives restarts."""
    material = jsonutil.dumps(
        [silence.match.model_dump(), silence.until.isoformat(), silence.owner, silence.reason]
    )
    return "config:" + hashlib.sha256(material.encode()).hexdigest()[:12]


def _label(rule: str, group: Mapping[str, Any]) -> str:
    values = [f"{k}={v if isinstance(v, str) else '|'.join(map(str, v))}" for k, v in group.items()]
    return " ".join([rule, *values]) if values else f"{rule} (every group)"


def from_config(
    silences: Sequence[SilenceConfig],
    held: Mapping[str, int] | None = None,
    origin: str = "config",
) -> list[Silence]:
    held = held or {}
    out = []
    for i, s in enumerate(silences):
        key = config_key(s)
        out.append(
            Silence(
                key=key,
                match=s.match,
                until=s.until.timestamp(),
                reason=s.reason,
                owner=s.owner,
                origin=f"{origin} silences.{i}",
                held=held.get(key, 0),
                label=_label(",".join(s.match.rule) or "*", s.match.group),
                active_time_intervals=tuple(s.active_time_intervals),
            )
        )
    return out


def stored_match(rule: str, group: Mapping[str, str]) -> AlertMatch:
    """The match of a CLI silence: this rule and these group values, exactly."""
    return AlertMatch(rule=[glob_escape(rule)], group={k: glob_escape(v) for k, v in group.items()})


def from_store(rows: Sequence[StoredSilence]) -> list[Silence]:
    out = []
    for row in rows:
        group = jsonutil.loads(row.match_group)
        out.append(
            Silence(
                key=f"db:{row.id}",
                match=stored_match(row.rule, {str(k): str(v) for k, v in group.items()}),
                until=row.until,
                reason=row.reason,
                owner=row.owner,
                origin="state database",
                id=row.id,
                created_at=row.created_at,
                expired_at=row.expired_at,
                held=row.held,
                label=_label(row.rule, group),
            )
        )
    return out


def active_silence(
    silences: Sequence[Silence],
    alert: Alert,
    now: float,
    intervals: Mapping[str, Sequence[TimeInterval]] | None = None,
) -> Silence | None:
    """The first unexpired silence matching ``alert``, if any; a silence with
    ``active_time_intervals`` holds only while one of them does."""
    for silence in silences:
        if silence.active(now) and matches(silence.match, alert):
            if silence.active_time_intervals and not active_at(
                list(silence.active_time_intervals), intervals or {}, int(now * 1e9)
            ):
                continue
            return silence
    return None


def expired_silences(silences: Sequence[SilenceConfig], now: float) -> list[SilenceConfig]:
    """Config silences whose ``until`` has passed: ``validate`` reports them."""
    return [s for s in silences if s.until.timestamp() <= now]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(silence: Silence) -> str:
    """``until 2026-12-01T00:00:00Z by alice: maintenance (silence 3)`` for logs."""
    name = f"silence {silence.id}" if silence.id is not None else silence.origin
    return f"until {iso(silence.ends_at)} by {silence.owner}: {silence.reason} ({name})"


def shell_quote(value: str) -> str:
    """One shell word for ``value`` that a POSIX shell reads back exactly, on one line.

    ``shlex.quote`` for printable text; bash's ``$'...'`` with escapes when the value
    holds a line break or control character (event fields are attacker-controlled: a
    pasted command must never run anything or span lines).
    """
    if not _UNPRINTABLE.search(value):
        return shlex.quote(value)
    out = []
    for ch in value:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _UNPRINTABLE.match(ch):
            # bytes, not \\u: a shell reads \\xHH the same in every locale
            out.append("".join(f"\\x{b:02x}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "$'" + "".join(out) + "'"


def silence_group(group: Mapping[str, Any]) -> dict[str, str]:
    """The group values a silence can match (missing values are left out)."""
    return {str(k): str(v) for k, v in group.items() if v is not None and v != ""}


def silence_command(alert: Alert) -> str:
    """The exact ``alerting silence add ...`` line that holds back this rule and group."""
    words = ["alerting", "silence", "add", "--rule", shell_quote(alert.rule)]
    for key, value in silence_group(alert.group).items():
        words += ["--group", shell_quote(f"{key}={value}")]
    words += ["--for", SUGGESTED_FOR, "--reason", shell_quote(SUGGESTED_REASON)]
    words += ["--owner", '"$USER"']
    return " ".join(words)


MAX_SILENCE_LINES = 5


def silence_commands(alerts: Sequence[Alert]) -> list[str]:
    """The silence lines of a message: one per group, or the rule's when there are many."""
    lines = list(dict.fromkeys(silence_command(a) for a in alerts))
    if len(lines) > MAX_SILENCE_LINES:
        first = alerts[0]
        return [silence_command(dataclasses.replace(first, group={}))]  # the whole rule
    return lines


__all__ = [
    "Silence",
    "active_silence",
    "config_key",
    "describe",
    "expired_silences",
    "from_config",
    "from_store",
    "glob_escape",
    "shell_quote",
    "silence_command",
    "silence_commands",
    "stored_match",
]

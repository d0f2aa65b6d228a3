"""One incident, one message: alerts about one entity share an incident and a notification.

Alertmanager's grouping and inhibition, applied per entity:

- **Entity**: who or what an alert is about, read from its group values (the rule's
  ``by``). ``ENTITY_KINDS`` is the one mapping: a group key whose last dotted part is
  ``username`` is a *user*, ``email`` an *admin* (DI names admins by email), ``client_ip``
  / ``src_ip`` / ``ip`` an *address*, ``hostname`` a *system*; the first kind found in
  that order wins. Values are compared trimmed and, except addresses, case-folded. An
  alert with none of these (an org-wide rule) is an incident of its own, sent at once.
- **Incident**: alerts about one entity that fired (their last event) within ``window``
  of event time of the incident's first alert. The next alert after that opens a new incident. Every alert
  gets the incident id (alert JSON ``incident``), whatever its channels do with it.
- **Grouping** (per channel, for routes with ``incidents`` on): the first notification
  of an incident waits ``group_wait`` on the service clock for more alerts; later ones
  go out at most every ``group_interval``. Each lists every rule of the incident so far,
  highest severity first.
- **Inhibition**: an alert whose severity is lower than one this incident already sent
  on that channel is *held*: recorded (outbox state ``held``) and named in the
  incident's later messages, never sent on its own. Alerts waiting together go out
  together, highest first. A new incident (window expired) starts with nothing sent,
  so nothing is held.

All of it lives in the state database and is written in the transaction that records
the alert, so a restart neither forgets an incident nor sends one twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from alerting import jsonutil
from alerting.alert import SEVERITIES, Alert
from alerting.durations import td_ns
from alerting.events import parse_timestamp
from alerting.notify.settings import IncidentConfig
from alerting.store import Delivery, IncidentRow, Store

# Kind -> last dotted part of the group keys that name it, in priority order.
ENTITY_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("user", ("username",)),
    ("admin", ("email",)),
    ("address", ("client_ip", "src_ip", "ip")),
    ("system", ("hostname",)),
)
# Channel types that group by incident unless a route says otherwise: people read them.
# Machines (webhook, file) and the console get every alert as it comes.
DEFAULT_ON = frozenset({"slack", "email"})


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def message_order(alert: Alert) -> tuple[int, str, str]:
    """Highest severity first, then the earliest, then by rule id: the message order."""
    return (-severity_rank(alert.severity), alert.first_event_time, alert.rule)


def by_severity(alerts: Sequence[Alert]) -> list[Alert]:
    return sorted(alerts, key=message_order)


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str
    value: str
    # The customer org (MSP mode groups every rule by ``organization``): the same user
    # name in two orgs is two people, so two incidents.
    organization: str = ""

    @property
    def key(self) -> str:
        base = f"{self.kind}:{self.value}"
        return f"{self.organization}/{base}" if self.organization else base


def entity_of(group: Mapping[str, Any]) -> Entity | None:
    """The entity an alert with these group values is about (see ``ENTITY_KINDS``)."""
    org = group.get("organization")
    organization = "" if org is None else str(org).strip()
    for kind, names in ENTITY_KINDS:
        for key, value in group.items():
            if value is None or str(value).strip() == "":
                continue
            if key.rsplit(".", 1)[-1] in names:
                text = str(value).strip()
                value_text = text if kind == "address" else text.casefold()
                return Entity(kind, value_text, organization)
    return None


def incident_id(seed: str, fingerprint: str) -> str:
    """Deterministic, so a re-run over the same alerts names the same incidents."""
    return "inc-" + hashlib.sha256(f"{seed}\n{fingerprint}".encode()).hexdigest()[:16]


def fired_ns(alert: Alert) -> int:
    """When an alert happened: its last event, the one that made it fire.

    Not its first: a travel alert's first event is the earlier login, hours before.
    """
    try:
        return parse_timestamp(alert.last_event_time)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class RuleLine:
    """One rule of an incident as a message lists it."""

    rule: str
    title: str
    severity: str
    alerts: int
    state: str  # "new" (in this message), "sent" (an earlier one), "held"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "alerts": self.alerts,
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What a message says about its incident (templates see ``to_dict()``)."""

    id: str
    entity_kind: str
    entity: str
    rules: tuple[RuleLine, ...]
    follow_up: bool  # an earlier message of this incident went out on this channel
    held: int  # alerts of this incident held back on this channel

    @property
    def severity(self) -> str:
        return self.rules[0].severity if self.rules else "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity_kind": self.entity_kind,
            "entity": self.entity,
            "severity": self.severity,
            "rules": [r.to_dict() for r in self.rules],
            "rule_ids": [r.rule for r in self.rules],
            "follow_up": self.follow_up,
            "held": self.held,
        }


class Pending(Protocol):
    """A due delivery with its alert (the notifier's work item)."""

    @property
    def delivery(self) -> Delivery: ...

    @property
    def alert(self) -> Alert: ...


P = TypeVar("P", bound=Pending)


@dataclass(frozen=True, slots=True)
class Split(Generic[P]):
    """A due group of one incident on one channel: what to send, what to hold."""

    send: list[P]
    held: list[P]
    view: IncidentView


def _payload_alert(d: Delivery) -> Alert | None:
    try:
        return Alert.from_dict(jsonutil.loads(d.payload))
    except (ValueError, KeyError, TypeError):
        return None


class Incidents:
    """Assigns alerts to incidents and decides what each incident message holds."""

    def __init__(self, config: IncidentConfig, store: Store) -> None:
        self.store = store
        self.window_ns = td_ns(config.window)
        self.group_wait_s = _seconds(config.group_wait)
        self.group_interval_s = _seconds(config.group_interval)

    def assign(self, alert: Alert, now: float) -> tuple[str, bool]:
        """The alert's incident id, and whether others can join it (it has an entity).

        Opens or extends the entity's incident in the store.
        """
        entity = entity_of(alert.group)
        if entity is None:
            return incident_id("alert", alert.fingerprint), False
        when = fired_ns(alert)
        row = self.store.latest_incident(entity.key)
        if row is not None and abs(when - row.first_ns) <= self.window_ns:
            if when > row.last_ns:
                self.store.save_incident(
                    IncidentRow(row.id, row.entity, row.first_ns, when, row.opened_at)
                )
            return row.id, True
        new = IncidentRow(incident_id(entity.key, alert.fingerprint), entity.key, when, when, now)
        self.store.save_incident(new)
        return new.id, True

    def due_at(self, incident: str, channel: str, now: float) -> float:
        """When a new alert of ``incident`` goes out on ``channel``.

        With the incident's message still waiting: with it. Otherwise after
        ``group_wait``, and no sooner than ``group_interval`` after its last message.
        """
        history = self.store.incident_deliveries(incident, channel)
        pending = [d.next_attempt_at for d in history if d.state == "pending"]
        if pending:
            return max(pending)
        due = now + self.group_wait_s
        sent = [d.sent_at for d in history if d.state == "sent" and d.sent_at is not None]
        if sent:
            due = max(due, max(sent) + self.group_interval_s)
        return due

    def split(self, incident: str, channel: str, items: Sequence[P]) -> Split[P]:
        """Hold the alerts a higher already-sent alert of the incident covers.

        An alert is held when this channel sent a higher-severity alert of the incident
        before the alert was recorded.
        """
        history = self.store.incident_deliveries(incident, channel)
        now_ids = {i.delivery.id for i in items}
        earlier: list[tuple[Delivery, Alert]] = []
        for d in history:
            if d.id in now_ids or d.state not in ("sent", "held"):
                continue
            alert = _payload_alert(d)
            if alert is not None:
                earlier.append((d, alert))
        send: list[P] = []
        held: list[P] = []
        for item in items:
            created = item.delivery.created_at
            covering = [
                severity_rank(a.severity)
                for d, a in earlier
                if d.state == "sent" and d.sent_at is not None and d.sent_at <= created
            ]
            if covering and severity_rank(item.alert.severity) < max(covering):
                held.append(item)
            else:
                send.append(item)
        entity = entity_of(items[0].alert.group) if items else None
        lines: dict[str, list[tuple[Alert, str]]] = {}
        for d, a in earlier:
            lines.setdefault(a.rule, []).append((a, d.state))
        for item in send:
            lines.setdefault(item.alert.rule, []).append((item.alert, "new"))
        for item in held:
            lines.setdefault(item.alert.rule, []).append((item.alert, "held"))
        rules = [_rule_line(entries) for entries in lines.values()]
        rules.sort(key=lambda r: (-severity_rank(r.severity), r.rule))
        view = IncidentView(
            id=incident,
            entity_kind=entity.kind if entity else "alert",
            entity=entity.value if entity else "",
            rules=tuple(rules),
            follow_up=any(d.state == "sent" for d, _ in earlier),
            held=sum(1 for d, _ in earlier if d.state == "held") + len(held),
        )
        return Split(send, held, view)


def _rule_line(entries: list[tuple[Alert, str]]) -> RuleLine:
    top = max(entries, key=lambda e: severity_rank(e[0].severity))[0]
    states = {state for _, state in entries}
    state = next(s for s in ("new", "sent", "held") if s in states)
    return RuleLine(top.rule, top.title, top.severity, len(entries), state)


def _seconds(value: timedelta) -> float:
    return td_ns(value) / 1e9


def groups_by_default(channel_type: str) -> bool:
    return channel_type in DEFAULT_ON


__all__ = [
    "DEFAULT_ON",
    "ENTITY_KINDS",
    "Entity",
    "IncidentView",
    "Incidents",
    "Pending",
    "RuleLine",
    "Split",
    "by_severity",
    "entity_of",
    "groups_by_default",
    "incident_id",
    "message_order",
    "severity_rank",
]

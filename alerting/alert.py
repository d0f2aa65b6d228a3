"""The alert: what the engine produces and every channel delivers.

It sits outside ``engine`` and ``notify`` so that data flows one way: the engine builds
alerts, notify renders and sends them, and neither imports the other. ``to_dict`` is the
stable JSON contract (the ``replay`` output line and the default webhook body).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alerting import jsonutil

if TYPE_CHECKING:
    from _hashlib import HASH

SEVERITIES = ("info", "low", "medium", "high", "critical")
MAX_EVENT_IDS = 1000
MAX_SAMPLE_EVENTS = 5


@dataclass(slots=True)
class Alert:
    rule: str
    title: str
    severity: str
    group: dict[str, Any]
    count: int
    first_event_time: str
    last_event_time: str
    event_ids: list[str]
    fingerprint: str
    summary: str
    events: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    description: str = ""
    # Alerts of the same rule and group that realert held back since the previous one.
    suppressed: int = 0
    # Where on-call looks next: the rule's ``references`` (links) and ``runbook``.
    references: list[str] = field(default_factory=list)
    runbook: str = ""
    # The JumpCloud org the events belong to (the trigger event's ``organization``), and
    # its display name from ``source.org_names`` ("" when none is configured).
    organization: str = ""
    organization_name: str = ""
    # The incident this alert belongs to (alerting/notify/incidents.py): set when the
    # notifier records it; None where no notifier ran (``replay`` output).
    incident: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The alert JSON contract (DESIGN section 5), plus tags/description/suppressed
        and the additive references/runbook/organization/organization_name/incident."""
        return {
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity,
            "group": self.group,
            "count": self.count,
            "first_event_time": self.first_event_time,
            "last_event_time": self.last_event_time,
            "event_ids": self.event_ids,
            "fingerprint": self.fingerprint,
            "summary": self.summary,
            "events": self.events,
            "tags": self.tags,
            "description": self.description,
            "suppressed": self.suppressed,
            "references": self.references,
            "runbook": self.runbook,
            "organization": self.organization,
            "organization_name": self.organization_name,
            "incident": self.incident,
        }

    def to_json(self) -> str:
        return jsonutil.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            rule=data["rule"],
            title=data["title"],
            severity=data["severity"],
            group=dict(data.get("group") or {}),
            count=int(data["count"]),
            first_event_time=data["first_event_time"],
            last_event_time=data["last_event_time"],
            event_ids=list(data.get("event_ids") or []),
            fingerprint=data["fingerprint"],
            summary=data.get("summary", ""),
            events=list(data.get("events") or []),
            tags=list(data.get("tags") or []),
            description=data.get("description", ""),
            suppressed=int(data.get("suppressed", 0)),
            references=[str(r) for r in data.get("references") or []],
            runbook=str(data.get("runbook") or ""),
            organization=str(data.get("organization") or ""),
            organization_name=str(data.get("organization_name") or ""),
            incident=data.get("incident"),
        )

    @property
    def group_text(self) -> str:
        """``alice`` or ``alice, 1.2.3.4``: the group's known values, for humans.

        A rule may group by fields only some events carry (``initiated_by.username`` for
        users, ``initiated_by.email`` for admins): missing values are left out. In MSP
        mode the org shows by its ``org_names`` name when it has one.
        """
        values = [
            self.organization_name if k == "organization" and self.organization_name else str(v)
            for k, v in self.group.items()
            if v is not None and v != ""
        ]
        return ", ".join(values) if values else "all"


def make_fingerprint(rule: str, group: dict[str, Any], trigger_event_id: str) -> str:
    """A stable alert identity: rule + group + the event that made the alert fire.

    Deterministic, so re-evaluating the same events after a restart yields the same
    fingerprint and the outbox can refuse to send it twice; receivers can dedupe on it.
    """
    return fingerprint_from(fingerprint_base(rule, group), trigger_event_id)


def fingerprint_base(rule: str, group: dict[str, Any]) -> HASH:
    """The hash of a fingerprint's material up to the trigger's id: the same for every
    alert of one rule and group, so the engine keeps it per group."""
    material = jsonutil.dumps([rule, sorted((k, str(v)) for k, v in group.items()), ""])
    return hashlib.sha256(material[:-3].encode())  # all but the empty id and the "]"


def fingerprint_from(base: HASH, trigger_event_id: str) -> str:
    """``make_fingerprint`` from its rule and group's ``fingerprint_base``."""
    digest = base.copy()
    if trigger_event_id.isalnum() and trigger_event_id.isascii():
        # DI ids (hex ObjectIds) are their own JSON text: '"<id>"]' without the encoder
        digest.update(f'"{trigger_event_id}"]'.encode())
    else:
        digest.update(jsonutil.dumps([trigger_event_id])[1:].encode())  # '"<id>"]'
    return digest.hexdigest()[:32]

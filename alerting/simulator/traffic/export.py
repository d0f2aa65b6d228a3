"""Writing generated traffic and its ground truth to files (``simulate --export``).

The file formats (JSON Lines, one compact event per line; the ground truth as a pretty
JSON array) are a contract with ``replay``, the benchmarks and the rule-pack tests, so
they live apart from how the events are made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.eventfile import EventFileWriter
from alerting.simulator.traffic.scenarios import InjectedAttack


def attacks_to_json(
    attacks: Iterable[InjectedAttack], events: Iterable[dict[str, Any]] = ()
) -> str:
    """The ground truth as a pretty JSON array (written beside exported events as
    ``F.truth.json``, what ``replay --truth`` scores against). Each attack names its
    ``entity``: the alert group's values, or, for rules that alert on each event, who
    did it (from ``events``, the exported traffic)."""
    wanted = {i for a in attacks for i in a.event_ids} if events else set()
    by_id = {e.get("id"): e for e in events if e.get("id") in wanted}
    out = []
    for attack in attacks:
        data = attack.to_dict()
        data["entity"] = _entity(attack, by_id)
        out.append(data)
    return jsonutil.dumps(out, indent=True)


def _entity(attack: InjectedAttack, by_id: dict[Any, dict[str, Any]]) -> str:
    if attack.group:
        return ", ".join(str(v) for v in attack.group.values())
    for event_id in attack.event_ids:
        event = by_id.get(event_id)
        if event is None:
            continue
        actor = event.get("initiated_by")
        if isinstance(actor, dict):
            for key in ("email", "username", "id"):
                if isinstance(actor.get(key), str):
                    return str(actor[key])
        # no initiated_by: the 2020 admin login names the admin in resource.email; LDAP
        # binds and JumpCloud's own alerts name the account in username
        resource = event.get("resource")
        if isinstance(resource, dict) and isinstance(resource.get("email"), str):
            return str(resource["email"])
        if isinstance(event.get("username"), str):
            return str(event["username"])
    return ""


def export_jsonl(path: str | Path, events: Iterable[dict[str, Any]]) -> int:
    """Write events as JSON Lines (gzip for a ``.gz`` name; nothing under ``path`` unless
    it completes); returns how many were written."""
    with EventFileWriter(path) as out:
        for event in events:
            out.write(event)
    return out.count

"""Sigma documents in rule files: identity, metadata, correlations, filters, placeholders,
and the located errors for what is refused (did-you-mean knows Sigma's words)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import build_test_events
from alerting.errors import RuleError

ROOT = Path(__file__).resolve().parents[2]

BASE = """
---
title: Failed login
id: 53BA33FD-3A50-4468-A5EF-C583635CFA92
name: failed_login
detection:
  selection: {event_type: user_login_attempt, success: false}
  condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
detection:
  selection: {event_type: user_login_attempt, success: true}
  condition: selection
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def problems(tmp_path: Path) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    return [str(p).split(str(tmp_path) + "/", 1)[-1] for p in info.value.problems]


def test_the_shipped_pack_keeps_its_ids_and_severities():
    rules = load_rules([ROOT / "rules"])
    for rule in rules:
        text = rule.path.read_text(encoding="utf-8")
        assert f"id: {rule.id}\n" in text
        assert f"severity: {rule.severity}\n" in text
        assert rule.logsource.product == "jumpcloud"  # the default, for filters and convert


def test_every_rule_has_a_stable_sigma_uuid():
    """Rules written with a kebab-case id get a derived UUID (for convert), the same on
    every load; a rule's own UUID is kept."""
    first = {r.id: r.sigma_id for r in load_rules([ROOT / "rules"])}
    again = {r.id: r.sigma_id for r in load_rules([ROOT / "rules"])}
    assert first == again
    assert len(set(first.values())) == len(first)
    assert all(len(u) == 36 and u.count("-") == 4 for u in first.values())


def test_sigma_identity_name_then_id_in_lower_case(tmp_path):
    write(tmp_path, "a.yml", BASE)
    rules = {r.title: r for r in load_rules([tmp_path])}
    assert rules["Failed login"].id == "failed_login"
    assert rules["Successful login"].id == "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8"
    assert rules["Failed login"].severity == "medium"  # no level: Sigma's middle
    assert rules["Failed login"].sigma_id == "53ba33fd-3a50-4468-a5ef-c583635cfa92"


def test_metadata_is_kept_for_convert(tmp_path):
    write(
        tmp_path,
        "a.yml",
        """
title: MFA factor reset
id: 50e068d7-1e6b-4054-87e5-0a592c40c7e0
name: mfa-reset
status: test
description: A user's MFA factors were reset.
references: [https://example.com/mfa]
author: Someone
date: 2023-10-01
modified: 2024-01-02
related: [{id: 8fd8eca6-1b9b-4ea8-8a1b-4b6ec1a4c4b9, type: derived}]
tags: [attack.persistence]
logsource: {product: okta, service: okta}
falsepositives: [helpdesk resets]
level: informational
detection:
  selection: {eventType: user.mfa.factor.reset_all}
  condition: selection
""",
    )
    (rule,) = load_rules([tmp_path])
    meta = rule.meta
    assert (rule.id, rule.severity, meta.status, meta.level) == (
        "mfa-reset",
        "info",
        "test",
        "informational",
    )
    assert str(meta.date) == "2023-10-01"
    assert meta.related[0].type == "derived"
    assert rule.logsource.product == "okta"
    assert meta.falsepositives == ["helpdesk resets"]


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("levle: high", "unknown key 'levle' (did you mean 'level'?)"),
        ("lvel: high", "(did you mean 'level'?)"),
        ("logsorce: {product: x}", "(did you mean 'logsource'?)"),
        ("stauts: test", "(did you mean 'status'?)"),
    ],
)
def test_did_you_mean_knows_sigma_keys(tmp_path, key, fragment):
    write(tmp_path, "a.yml", f"title: t\nname: t\n{key}\ndetection: {{s: {{a: 1}}}}\n")
    (message,) = problems(tmp_path)
    assert message.startswith("a.yml:3:1: ")
    assert fragment in message


def test_level_is_a_key_and_windash_a_modifier(tmp_path):
    """Before Sigma support, 'level' suggested 'travel' and 'windash' 'endswith'."""
    write(
        tmp_path,
        "a.yml",
        "title: t\nname: t\nlevel: high\ndetection:\n  s: {error_message|windash|contains: ' -x'}\n",
    )
    (rule,) = load_rules([tmp_path])
    assert rule.severity == "high"
    write(tmp_path, "a.yml", "title: t\nname: t\ndetection:\n  s: {a|windah: x}\n")
    (message,) = problems(tmp_path)
    assert "unknown modifier 'windah' in 'a|windah' (did you mean 'windash'?)" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title: t\ndetection: {s: {a: 1}}\n", "a.yml:1:1: a rule needs a name"),
        (
            "title: t\nid: Not_A_Uuid\ndetection: {s: {a: 1}}\n",
            "a.yml:2:5: id: rule id 'Not_A_Uuid' must be a UUID",
        ),
        (
            "title: t\nname: Bad Name\ndetection: {s: {a: 1}}\n",
            "a.yml:2:7: name: rule name 'Bad Name' must be",
        ),
        (
            "title: t\nname: t\nlevel: high\nseverity: low\ndetection: {s: {a: 1}}\n",
            "level 'high' and severity 'low' disagree",
        ),
        (
            "title: t\nname: t\nstatus: beta\ndetection: {s: {a: 1}}\n",
            "a.yml:3:9: status: 'beta' is not one of",
        ),
    ],
)
def test_identity_errors_are_located(tmp_path, text, expected):
    write(tmp_path, "a.yml", text)
    (message,) = problems(tmp_path)
    assert expected in message


def correlation(body: str, extra: str = "") -> str:
    return (
        "title: c\nname: c\nlevel: high\ncorrelation:\n"
        + "".join(f"  {line}\n" for line in body.strip().splitlines())
        + extra
        + BASE
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "type: value_sum\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {gt: 10}",
            "value_sum needs the numeric field it adds up",
        ),
        (
            "type: value_avg\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {field: bytes, gt: 10}",
            "a.yml:5:9: correlation type 'value_avg' is not supported yet",
        ),
        (
            "type: value_percentile\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {field: bytes, lte: 1}",
            "correlation type 'value_percentile' is not supported yet",
        ),
        (
            "type: event_count\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {lt: 10}",
            "a.yml:9:14: condition {'lt': 10} is not supported yet",
        ),
        (
            "type: event_count\nrules: [failed_logon]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {gte: 10}",
            "a.yml:6:11: correlation names unknown rule 'failed_logon' (did you mean "
            "'failed_login'?)",
        ),
        (
            "type: value_count\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "condition: {gte: 10}",
            "value_count needs the field whose distinct values it counts",
        ),
        (
            "type: temporal_ordered\nrules: [failed_login, 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8]\n"
            "group-by: [a]\ntimespan: 1h\ncondition: {gte: 1}",
            "temporal_ordered needs all 2 rules in order",
        ),
        (
            "type: temporal\nrules: [failed_login]\ngroup-by: [a]\ntimespan: 1h\n"
            "aliases: {ip: {failed_login: client_ip}}",
            "alias 'ip' is not used in group-by",
        ),
        (
            "type: event_count\nrules: [failed_login]\ngroup-by: [a]\ntimspan: 1h\n"
            "condition: {gte: 10}",
            "unknown key 'timspan' (did you mean 'timespan'?)",
        ),
    ],
)
def test_correlation_errors_are_located(tmp_path, body, expected):
    write(tmp_path, "a.yml", correlation(body))
    messages = problems(tmp_path)
    assert any(expected in m for m in messages), messages


def test_correlation_may_name_rules_of_other_files_by_id_in_any_case(tmp_path):
    write(tmp_path, "base.yml", BASE)
    write(
        tmp_path,
        "mr.yml",
        "title: c\nname: c\ngenerate: true\ncorrelation:\n  type: event_count\n"
        "  rules: [53ba33fd-3a50-4468-a5ef-c583635cfa92]\n  group-by: [initiated_by.username]\n"
        "  timespan: 5m\n  condition: {gt: 2}\n",
    )
    rules = load_rules([tmp_path])
    by_id = {r.id: r for r in rules}
    assert by_id["failed_login"].enabled  # generate: true keeps its own alerts
    assert by_id["failed_login"].correlated_by == ["c"]
    events = build_test_events(
        [
            {
                "event": {
                    "event_type": "user_login_attempt",
                    "success": False,
                    "initiated_by": {"username": "amy"},
                },
                "repeat": 3,
            }
        ]
    )
    alerts = Engine([by_id["c"]]).process_many(events)
    assert [(a.rule, a.count) for a in alerts] == [("c", 3)]


FILTERED = """
title: User deleted
name: user-deleted
detection:
  s: {event_type: user_delete}
  condition: s
"""


def test_filter_allowlists_for_named_and_any_rules(tmp_path):
    write(tmp_path, "rule.yml", FILTERED)
    write(
        tmp_path,
        "ours.yml",
        "title: office\nlogsource: {product: jumpcloud}\nfilter:\n  rules: any\n"
        "  office: {client_ip|cidr: 192.0.2.0/24}\n  condition: not office\n",
    )
    (rule,) = load_rules([tmp_path])
    assert rule.filters == ["office"]
    assert rule.condition({"event_type": "user_delete", "client_ip": "203.0.113.9"})
    assert not rule.condition({"event_type": "user_delete", "client_ip": "192.0.2.9"})
    # the engine's plans (partial evaluation per event type) keep the filter
    events = build_test_events(
        [
            {"event_type": "user_delete", "client_ip": "192.0.2.9"},
            {"event_type": "user_delete", "client_ip": "203.0.113.9"},
        ]
    )
    assert len(Engine([rule]).process_many(events)) == 1


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        (
            "title: f\nlogsource: {product: jumpcloud}\nfilter:\n  rules: [user-delted]\n"
            "  s: {a: 1}\n  condition: not s\n",
            "ours.yml:4:11: filter names unknown rule 'user-delted' (did you mean 'user-deleted'?)",
        ),
        (
            "title: f\nlogsource: {product: okta}\nfilter:\n  rules: [user-deleted]\n"
            "  s: {a: 1}\n  condition: not s\n",
            "ours.yml:4:11: filter's logsource does not cover rule 'user-deleted'",
        ),
        (
            "title: f\nlogsource: {product: jumpcloud}\nfilter:\n  rules: [user-deleted]\n"
            "  s: {a|startwith: 1}\n  condition: not s\n",
            "ours.yml:5:7: unknown modifier 'startwith'",
        ),
        (
            "title: f\nlogsource: {product: jumpcloud}\nfilter:\n  rules: [user-deleted]\n"
            "  s: {a: 1}\n",
            "filter needs a condition",
        ),
    ],
)
def test_filter_errors_are_located(tmp_path, filter_text, expected):
    write(tmp_path, "rule.yml", FILTERED)
    write(tmp_path, "ours.yml", filter_text)
    messages = problems(tmp_path)
    assert any(expected in m for m in messages), messages


def test_placeholders_document_and_config_values(tmp_path):
    write(
        tmp_path,
        "rule.yml",
        "title: t\nname: t\ndetection:\n  s: {client_ip|expand|cidr: '%office%'}\n  condition: s\n",
    )
    write(tmp_path, "placeholders.yml", "placeholders:\n  office: [192.0.2.0/24]\n")
    (rule,) = load_rules([tmp_path], placeholders={"office": ["10.0.0.0/8"]})
    assert rule.condition({"client_ip": "192.0.2.4"})
    assert not rule.condition({"client_ip": "10.1.1.1"})  # the rules-side file wins
    (tmp_path / "placeholders.yml").unlink()
    (rule,) = load_rules([tmp_path], placeholders={"office": ["10.0.0.0/8"]})
    assert rule.condition({"client_ip": "10.1.1.1"})


def test_fieldref_on_a_planned_field_is_not_decided_by_its_value_alone(tmp_path):
    """The engine plans per event type and boolean flag; an entry comparing a flag with
    another field reads that field too."""
    write(
        tmp_path,
        "rule.yml",
        "title: t\nname: t\ndetection:\n  s: {event_type: user_update, success|fieldref: "
        "expected}\n  condition: s\n",
    )
    events = build_test_events(
        [
            {"event_type": "user_update", "success": True, "expected": True},
            {"event_type": "user_update", "success": True, "expected": False},
            {"event_type": "user_update", "success": False, "expected": False},
        ]
    )
    alerts = Engine(load_rules([tmp_path])).process_many(events)
    assert [a.event_ids for a in alerts] == [["evt-0001"], ["evt-0003"]]


def test_keyword_rules_read_whole_events(tmp_path):
    write(tmp_path, "rule.yml", "title: t\nname: t\ndetection:\n  k: [mimikatz]\n  condition: k\n")
    engine = Engine(load_rules([tmp_path]))
    assert engine.fields_read() is None
    (event,) = build_test_events([{"event_type": "x", "changes": [{"to": "run Mimikatz"}]}])
    assert len(engine.process_many([event])) == 1


def test_validate_notes_rules_that_alert_only_through_a_correlation(tmp_path):
    write(tmp_path, "base.yml", BASE)
    write(
        tmp_path,
        "mr.yml",
        "title: c\nname: c\ncorrelation:\n  type: event_count\n  rules: [failed_login]\n"
        "  group-by: [initiated_by.username]\n  timespan: 5m\n  condition: {gte: 3}\n",
    )
    (corr,) = [r for r in load_rules([tmp_path]) if r.id == "c"]
    assert [str(n).split(str(tmp_path) + "/", 1)[-1] for n in corr.notes] == [
        "mr.yml:5:11: rule 'failed_login' alerts only through this correlation; "
        "add generate: true to keep its own alerts"
    ]

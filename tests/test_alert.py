"""The alert contract and its human-facing helpers."""

from __future__ import annotations

import hashlib
import json

from alerting.alert import Alert, make_fingerprint


def _alert(group: dict[str, object]) -> Alert:
    return Alert(
        rule="login-without-mfa",
        title="t",
        severity="high",
        group=group,
        count=1,
        first_event_time="2026-11-20T10:00:01Z",
        last_event_time="2026-11-20T10:00:01Z",
        event_ids=["a"],
        fingerprint=make_fingerprint("login-without-mfa", group, "a"),
        summary="s",
    )


def test_group_text_leaves_out_missing_values() -> None:
    user = _alert({"initiated_by.username": "chloe", "initiated_by.email": None})
    admin = _alert({"initiated_by.username": None, "initiated_by.email": "ann@example.com"})
    assert user.group_text == "chloe"
    assert admin.group_text == "ann@example.com"
    assert _alert({}).group_text == "all"


def test_round_trip_keeps_the_contract_fields() -> None:
    alert = _alert({"initiated_by.username": "chloe"})
    again = Alert.from_dict(alert.to_dict())
    assert again == alert
    assert set(alert.to_dict()) >= {
        "rule", "title", "severity", "group", "count", "first_event_time",
        "last_event_time", "event_ids", "fingerprint", "summary", "events",
    }  # fmt: skip


def test_fingerprint_depends_on_rule_group_and_trigger() -> None:
    base = make_fingerprint("r", {"u": "a"}, "e1")
    assert base == make_fingerprint("r", {"u": "a"}, "e1")
    assert (
        len(
            {
                base,
                make_fingerprint("r2", {"u": "a"}, "e1"),
                make_fingerprint("r", {"u": "b"}, "e1"),
                make_fingerprint("r", {"u": "a"}, "e2"),
            }
        )
        == 4
    )


def test_fingerprints_stay_what_earlier_versions_wrote() -> None:
    # Outboxes and receivers dedupe on fingerprints across upgrades: the material is the
    # compact JSON of [rule, sorted (field, text) pairs, trigger id], hashed whole.
    group = {"initiated_by.username": 'j"o\u00eb', "n": 7, "none": None}
    # ids of every shape: a DI ObjectId (no encoder on that path), a DI UUID, text to
    # escape, a non-ASCII letter, none
    triggers = ("648b1e56c0b7fd51eb1d0938", "D4F9D65B-9F21-34DA-388D-292F393266A0")
    for trigger in (*triggers, 'id "quoted" \u2603', "\u00e91", ""):
        pairs = sorted((k, str(v)) for k, v in group.items())
        material = json.dumps(["r", pairs, trigger], separators=(",", ":"), ensure_ascii=False)
        expected = hashlib.sha256(material.encode()).hexdigest()[:32]
        assert make_fingerprint("r", group, trigger) == expected

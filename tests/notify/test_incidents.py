"""One incident, one message: entities, grouping, inhibition, windows, follow-ups.

The notifier against real loopback receivers (httpx webhook, aiosmtpd) and SQLite, with a
ManualClock: no sleeping. The service-level tests are in tests/service/test_incidents.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from alerting.alert import Alert
from alerting.clock import ManualClock
from alerting.events import format_timestamp
from alerting.notify.incidents import Entity, entity_of
from alerting.store import Store
from tests.support.notify import HttpReceiver, SmtpServer, make_alert, make_notifier, states

NS = 1_000_000_000
MINUTE = 60


# ---------------------------------------------------------------------------- entity


def test_the_same_user_name_in_two_customer_orgs_is_two_entities() -> None:
    acme = entity_of(
        {"initiated_by.username": "john.doe", "organization": "641b3db57090821c0b2f8183"}
    )
    globex = entity_of(
        {"initiated_by.username": "john.doe", "organization": "5bf6defbdcd8233029e0c598"}
    )
    assert acme is not None
    assert globex is not None
    assert (acme.kind, acme.value) == (globex.kind, globex.value) == ("user", "john.doe")
    assert acme.key != globex.key
    assert entity_of({"initiated_by.username": "john.doe"}) == Entity("user", "john.doe")


def test_entity_mapping_names_users_admins_addresses_and_systems() -> None:
    assert entity_of({"initiated_by.username": "Alice "}) == Entity("user", "alice")
    assert entity_of({"initiated_by.email": "Ann@Example.com"}) == Entity(
        "admin", "ann@example.com"
    )
    assert entity_of({"resource.email": "ann@example.com"}) == Entity("admin", "ann@example.com")
    assert entity_of({"client_ip": "203.0.113.5"}) == Entity("address", "203.0.113.5")
    assert entity_of({"system.hostname": "JDOE-LAPTOP"}) == Entity("system", "jdoe-laptop")
    # login-without-mfa groups by both: the one present decides; a user beats an address.
    both = {"initiated_by.username": None, "initiated_by.email": "ann@example.com"}
    assert entity_of(both) == Entity("admin", "ann@example.com")
    assert entity_of({"client_ip": "1.2.3.4", "initiated_by.username": "bob"}) == Entity(
        "user", "bob"
    )
    assert entity_of({}) is None  # an org-wide rule: an incident of its own
    assert entity_of({"initiated_by.username": ""}) is None


# ---------------------------------------------------------------------------- notifier


def at(alert: Alert, minutes: float) -> Alert:
    """The alert, its events ``minutes`` after 2026-11-20T10:00:00Z."""
    base = 1_795_168_800  # 2026-11-20T10:00:00Z
    first = format_timestamp(int((base + minutes * 60) * NS))
    last = format_timestamp(int((base + minutes * 60 + 30) * NS))
    return dataclasses.replace(alert, first_event_time=first, last_event_time=last)


def hook_notifier(store: Store, clock: ManualClock, url: str) -> Any:
    return make_notifier(
        store,
        clock,
        {"siem": {"type": "webhook", "url": url}},
        routes=[{"channels": ["siem"], "incidents": True}],
    )


def bodies(receiver: HttpReceiver) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.requests]


def test_a_lower_alert_is_held_while_a_higher_one_is_open_and_named_later(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    critical = at(make_alert("brute-force-success", severity="critical"), 0)
    notifier.enqueue([critical])
    clock.advance(2 * MINUTE)
    assert notifier.deliver_due().sent == 1

    # Ten minutes on, the same user trips a medium rule: covered by the critical message.
    clock.advance(8 * MINUTE)
    medium = at(make_alert("unusual-geoip-login", severity="medium"), 10)
    notifier.enqueue([medium])
    clock.advance(10 * MINUTE)
    result = notifier.deliver_due()
    assert (result.sent, result.held) == (0, 1)
    assert len(receiver.requests) == 1
    assert states(store) == {"pending": 0, "sent": 1, "dead": 0, "held": 1}
    held = store.list_deliveries(("held",))[0]
    assert held.fingerprint == medium.fingerprint  # recorded, with its JSON
    assert json.loads(held.payload)["incident"] == critical.incident
    assert "brute-force-success" not in (held.last_error or "")

    # A higher-or-equal alert of the incident is a follow-up, and it names the held one.
    high = at(make_alert("impossible-travel", severity="critical"), 15)
    notifier.enqueue([high])
    clock.advance(5 * MINUTE)
    assert notifier.deliver_due().sent == 1
    follow_up = bodies(receiver)[1]
    assert [a["rule"] for a in follow_up["alerts"]] == ["impossible-travel"]
    rules = {r["rule"]: r["state"] for r in follow_up["incident"]["rules"]}
    assert rules == {
        "brute-force-success": "sent",
        "impossible-travel": "new",
        "unusual-geoip-login": "held",
    }
    assert follow_up["incident"]["follow_up"] is True
    assert follow_up["incident"]["held"] == 1
    assert receiver.requests[1].header("X-Alerting-Incident") == critical.incident


def test_alerts_waiting_together_go_out_together_highest_first(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    medium = at(make_alert("unusual-geoip-login", severity="medium"), 0)
    critical = at(make_alert("brute-force-success", severity="critical"), 1)
    notifier.enqueue([medium])
    clock.advance(MINUTE)
    notifier.enqueue([critical])
    assert notifier.deliver_due().sent == 0
    clock.advance(MINUTE)
    result = notifier.deliver_due()
    assert (result.sent, result.held, result.messages) == (2, 0, 1)
    body = bodies(receiver)[0]
    assert [a["rule"] for a in body["alerts"]] == ["brute-force-success", "unusual-geoip-login"]
    assert body["incident"]["rule_ids"] == ["brute-force-success", "unusual-geoip-login"]
    assert body["incident"]["severity"] == "critical"
    assert {a["incident"] for a in body["alerts"]} == {body["incident"]["id"]}


def test_window_expiry_starts_a_new_incident_and_nothing_is_held(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    critical = at(make_alert("brute-force-success", severity="critical"), 0)
    notifier.enqueue([critical])
    clock.advance(2 * MINUTE)
    notifier.deliver_due()
    # 31 minutes of event time later (window 30m): a new incident, so the medium is sent.
    later = at(make_alert("unusual-geoip-login", severity="medium"), 31)
    notifier.enqueue([later])
    assert later.incident != critical.incident
    clock.advance(2 * MINUTE)
    result = notifier.deliver_due()
    assert (result.sent, result.held) == (1, 0)
    second = bodies(receiver)[1]
    assert second["incident"]["follow_up"] is False
    assert second["incident"]["rule_ids"] == ["unusual-geoip-login"]


def test_other_entities_are_other_incidents(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    alice = at(make_alert("failed-login-burst", username="alice"), 0)
    bob = at(make_alert("failed-login-burst", username="bob"), 0)
    admin = at(
        make_alert("admin-login-failure-burst", group={"initiated_by.email": "alice@x.io"}), 0
    )
    notifier.enqueue([alice, bob, admin])
    assert len({alice.incident, bob.incident, admin.incident}) == 3
    clock.advance(2 * MINUTE)
    assert notifier.deliver_due().messages == 3


def test_a_follow_up_waits_for_group_interval(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    notifier.enqueue([at(make_alert("failed-login-burst"), 0)])
    clock.advance(2 * MINUTE)
    notifier.deliver_due()
    notifier.enqueue([at(make_alert("brute-force-success", severity="critical"), 2)])
    clock.advance(2 * MINUTE)
    assert notifier.deliver_due().sent == 0  # 2 min after the first message; interval 5m
    clock.advance(3 * MINUTE)
    assert notifier.deliver_due().sent == 1
    assert len(receiver.requests) == 2


def test_incident_email_lists_every_rule_escaped(
    store: Store, clock: ManualClock, smtp_plain: SmtpServer
) -> None:
    notifier = make_notifier(
        store,
        clock,
        {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp_plain.port,
                "starttls": False,
                "from": "alerts@example.com",
                "to": ["soc@example.com"],
            }
        },
        routes=[{"channels": ["mail"]}],  # email groups by incident by default
    )
    evil = "<script>alert(1)</script>"
    notifier.enqueue(
        [
            at(make_alert("unusual-geoip-login", severity="medium", username=evil), 0),
            at(make_alert("brute-force-success", severity="critical", username=evil), 0),
        ]
    )
    clock.advance(2 * MINUTE)
    assert notifier.deliver_due().messages == 1
    ((_, _, message),) = smtp_plain.messages
    assert message["X-Alerting-Incident"].startswith("inc-")
    assert message["Subject"].startswith("[CRITICAL] Incident: 2 rules for user")
    plain, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html_part is not None
    text = plain.get_content()
    assert text.index("brute-force-success") < text.index("unusual-geoip-login")
    html = html_part.get_content()
    assert evil not in html
    assert "&lt;script&gt;" in html


def test_an_alert_about_no_entity_is_sent_at_once(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook_notifier(store, clock, receiver.url)
    org_wide = at(make_alert("bulk-user-lockouts", severity="medium", group={}), 0)
    notifier.enqueue([org_wide])
    assert org_wide.incident is not None  # it still has an incident id, its own
    assert notifier.deliver_due().sent == 1  # no group_wait: nothing can join it
    assert bodies(receiver)[0]["rule"] == "bulk-user-lockouts"  # one alert, its own JSON


def test_a_slack_incident_message_never_pings_from_event_text(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = make_notifier(
        store,
        clock,
        {"oncall": {"type": "slack", "webhook_url": f"{receiver.url}/services/T/B/X"}},
        routes=[{"channels": ["oncall"]}],  # slack groups by incident by default
    )
    evil = "<!channel> <https://evil.example|click>"
    notifier.enqueue(
        [
            at(make_alert("failed-login-burst", username=evil), 0),
            at(make_alert("brute-force-success", severity="critical", username=evil), 1),
        ]
    )
    clock.advance(2 * MINUTE)
    assert notifier.deliver_due().messages == 1
    raw = receiver.requests[0].body.decode()
    assert "<!channel>" not in raw
    assert "<https://evil" not in raw
    message = receiver.requests[0].json()
    assert "&lt;!channel&gt;" in message["blocks"][0]["text"]["text"]  # the entity, escaped
    section = message["blocks"][1]["text"]["text"]
    assert section.index("brute-force-success") < section.index("failed-login-burst")

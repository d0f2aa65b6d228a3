"""One incident, one message: grouping and inhibition per entity, through the real service.

Events are built from real Directory Insights shapes (../shared/reference/real-events/):
``sso_auth`` from sekoia-intake-formats.jsonl (id 6407359ff5c3cc91c4d4608b) and the
portal login from the ``admin_login_attempt`` of jumpcloud-api-docs.jsonl with a user
initiator, as JumpCloud documents ``user_login_attempt``. Slack is slack-sdk against a
loopback receiver, the webhook is httpx against one; the clock is a ManualClock.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.alert import Alert
from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.events import format_timestamp
from alerting.notify.incidents import Entity, entity_of
from alerting.service import Service
from alerting.store import Store
from tests import notify_fakes as fakes
from tests.notify_fakes import (
    PROJECT_TEMPLATES,
    START,
    HttpReceiver,
    SmtpServer,
    make_alert,
    make_notifier,
    states,
)

store, receiver, smtp_plain = fakes.store, fakes.receiver, fakes.smtp_plain

REPO = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
MINUTE = 60

# sekoia-intake-formats.jsonl, an SSO launch (id, time, user and place are replaced).
SSO_AUTH: dict[str, Any] = {
    "id": "6407359ff5c3cc91c4d4608b",
    "mfa": False,
    "geoip": {
        "latitude": 48.8323,
        "timezone": "Europe/Paris",
        "longitude": 2.4075,
        "region_code": "75",
        "region_name": "Paris",
        "country_code": "FR",
        "continent_code": "EU",
    },
    "service": "sso",
    "@version": "1",
    "provider": "",
    "client_ip": "1.2.3.4",
    "timestamp": "2023-03-07T13:01:19.21859368Z",
    "useragent": {"os": "Windows", "name": "Chrome", "major": "110", "os_name": "Windows"},
    "event_type": "sso_auth",
    "application": {
        "id": "5fad07f2b9f5414721b3d797",
        "name": "zoom",
        "sso_url": "https://sso.jumpcloud.com/saml2/zoom",
        "sso_type": "saml",
        "display_label": "Zoom",
    },
    "initiated_by": {"id": "5ee8dbcb03231715576d73cc", "type": "user", "username": "john.doe"},
    "organization": "5bf6defbdcd8233029e0c598",
    "error_message": "",
    "idp_initiated": False,
    "sso_token_success": True,
}
# jumpcloud-api-docs.jsonl's admin_login_attempt, as a user's portal login.
PORTAL_LOGIN: dict[str, Any] = {
    "geoip": {
        "timezone": "America/Denver",
        "country_code": "US",
        "continent_code": "NA",
        "region_name": "Colorado",
        "region_code": "CO",
    },
    "event_type": "user_login_attempt",
    "service": "directory",
    "initiated_by": {"id": "5ce434e77128503e528e747c", "type": "user", "username": "jane.doe"},
    "provider": None,
    "success": True,
    "organization": "6ce434e87128303e528e747b",
    "@version": "1",
    "mfa": True,
    "client_ip": "73.203.76.115",
    "id": "5e95d60b05e8907888c4e009",
    "useragent": {"name": "Chrome", "os": "Mac OS X", "major": "81", "os_name": "Mac OS X"},
    "timestamp": "2020-04-14T15:26:03.218Z",
}
PLACES = {
    "new-york": {
        "client_ip": "73.45.1.2",
        "geoip": {
            "country_code": "US",
            "region_name": "New York",
            "region_code": "NY",
            "timezone": "America/New_York",
            "continent_code": "NA",
            "latitude": 40.7128,
            "longitude": -74.006,
        },
    },
    "moscow": {
        "client_ip": "95.165.3.4",
        "geoip": {
            "country_code": "RU",
            "region_name": "Moscow",
            "region_code": "MOW",
            "timezone": "Europe/Moscow",
            "continent_code": "EU",
            "latitude": 55.7558,
            "longitude": 37.6173,
        },
    },
}
ATTACK_AT = START - 30 * MINUTE  # event time of the first guessed password
_ids = iter(range(1, 10**6))


def _event(shape: dict[str, Any], at: float, user: str, place: str, **fields: Any) -> dict:
    event = copy.deepcopy(shape)
    event["id"] = f"65a0c0de{next(_ids):016x}"
    event["timestamp"] = format_timestamp(int(at * NS))
    event["initiated_by"]["username"] = user
    event.update(copy.deepcopy(PLACES[place]))
    event.update(fields)
    return event


def sso_login(at: float, user: str, place: str) -> dict[str, Any]:
    return _event(SSO_AUTH, at, user, place)


def portal_login(at: float, user: str, place: str, *, success: bool) -> dict[str, Any]:
    return _event(PORTAL_LOGIN, at, user, place, success=success)


def alice_at_home() -> list[dict[str, Any]]:
    """Two days of alice's SSO launches from New York: her countries are learnt."""
    days = [ATTACK_AT - d * 86_400 - h * 3600 for d in (2, 1) for h in (6, 2)]
    return [sso_login(t, "alice", "new-york") for t in sorted(days)] + [
        sso_login(ATTACK_AT - 2 * 3600, "alice", "new-york")
    ]


def guessing(user: str = "alice", count: int = 12) -> list[dict[str, Any]]:
    """A password guessed from Moscow: ``count`` failures 15 s apart."""
    return [portal_login(ATTACK_AT + i * 15, user, "moscow", success=False) for i in range(count)]


def guessed(user: str = "alice") -> dict[str, Any]:
    """...and the attacker is in (with MFA pushed through: T1621)."""
    return portal_login(ATTACK_AT + 12 * 15 + 20, user, "moscow", success=True)


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def write_config(tmp_path: Path, slack_url: str, *, route_extra: str = "") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
source: {{kind: file, path: events.jsonl}}
state: {{path: state/alerting.db}}
rules: {{paths: [{REPO / "rules"}]}}
templates: {{path: {PROJECT_TEMPLATES}}}
channels:
  oncall: {{type: slack, webhook_url: "{slack_url}/services/T000/B000/XXXX"}}
  archive: {{type: file, path: state/alerts.jsonl}}
routes:
  - channels: [oncall, archive]{route_extra}
server: {{listen: "127.0.0.1:0"}}
logging: {{level: warning, format: json}}
"""
    )
    return config


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def service_factory(clock: ManualClock) -> Iterator[Any]:
    opened: list[Service] = []

    def open_service(config: Path) -> Service:
        service = Service(load_config(config), clock=clock)
        service.open(serve=False)
        opened.append(service)
        return service

    yield open_service
    for service in opened:
        service.close()


def slack_rules(message: dict[str, Any]) -> list[str]:
    """The rule ids a Slack incident message lists, in order."""
    section = message["blocks"][1]["text"]["text"]
    return re.findall(r"`([a-z0-9-]+)`", section)


FOUR = ["brute-force-success", "failed-login-burst", "impossible-travel", "unusual-geoip-login"]


# ---------------------------------------------------------------------------- entity


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


# ---------------------------------------------------------------------------- end to end


def test_an_attack_that_trips_four_rules_yields_one_notification_naming_the_four(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    write_events(tmp_path / "events.jsonl", [*alice_at_home(), *guessing(), guessed()])
    service = service_factory(write_config(tmp_path, receiver.url))

    assert service.poll_once().alerts == 4
    assert service.deliver_once().sent == 4  # the archive file gets each alert at once...
    assert receiver.requests == []  # ...Slack waits group_wait for the rest of the attack
    clock.advance(2 * MINUTE)
    assert service.deliver_once().sent == 4
    clock.advance(30 * MINUTE)
    service.deliver_once()

    assert len(receiver.requests) == 1  # one Slack message...
    message = receiver.requests[0].json()
    assert slack_rules(message) == FOUR  # ...naming the four, highest severity first
    assert message["text"].startswith(
        ":rotating_light: [CRITICAL] Incident: 4 rules for user alice"
    )
    # Every alert is still recorded on its own, with its fingerprint and the incident id.
    lines = [json.loads(x) for x in (tmp_path / "state/alerts.jsonl").read_text().splitlines()]
    assert sorted(a["rule"] for a in lines) == FOUR
    assert len({a["fingerprint"] for a in lines}) == 4
    assert len({a["incident"] for a in lines}) == 1
    incident = lines[0]["incident"]
    assert re.fullmatch(r"inc-[0-9a-f]{16}", incident)
    context = message["attachments"][0]["blocks"][-1]["elements"][0]["text"]
    assert f"incident `{incident}`" in context
    assert states(service.db) == {"pending": 0, "sent": 8, "dead": 0, "held": 0}


def test_a_restart_in_the_middle_of_an_incident_sends_it_exactly_once(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events, [*alice_at_home(), *guessing()])
    config = write_config(tmp_path, receiver.url)
    first = service_factory(config)
    assert first.poll_once().alerts == 1  # the burst; the success is not in yet
    clock.advance(MINUTE)
    assert first.deliver_once().sent == 1  # to the archive; Slack waits
    first.close()  # stopped inside group_wait: the burst waits in the outbox

    write_events(events, [*alice_at_home(), *guessing(), guessed()])
    second = service_factory(config)
    assert second.poll_once().alerts == 3
    assert second.deliver_once().sent == 3  # the archive; Slack: still group_wait
    assert receiver.requests == []
    clock.advance(MINUTE)
    assert second.deliver_once().sent == 4
    second.close()

    third = service_factory(config)  # and once more: nothing is sent twice
    assert third.poll_once().alerts == 0
    clock.advance(10 * MINUTE)
    assert third.deliver_once().sent == 0
    assert len(receiver.requests) == 1
    assert slack_rules(receiver.requests[0].json()) == FOUR


def test_a_route_can_switch_incidents_off(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    write_events(tmp_path / "events.jsonl", [*alice_at_home(), *guessing(), guessed()])
    config = write_config(tmp_path, receiver.url, route_extra="\n    incidents: false")
    service = service_factory(config)
    assert service.poll_once().alerts == 4
    assert service.deliver_once().sent == 8  # at once, one message per alert
    assert len(receiver.requests) == 4
    heads = sorted(r.json()["text"] for r in receiver.requests)
    assert not any("Incident" in h for h in heads)


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


def test_a_schema_1_database_is_migrated_with_its_outbox(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE alerts (fingerprint TEXT PRIMARY KEY, rule TEXT NOT NULL,
            created_at REAL NOT NULL, payload TEXT NOT NULL);
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT,
            fingerprint TEXT NOT NULL REFERENCES alerts(fingerprint), channel TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
            last_error TEXT, created_at REAL NOT NULL, sent_at REAL,
            UNIQUE (fingerprint, channel));
        INSERT INTO alerts VALUES ('fp1', 'r', 1.0, '{}');
        INSERT INTO deliveries (fingerprint, channel, state, next_attempt_at, created_at)
            VALUES ('fp1', 'slack', 'pending', 1.0, 1.0);
        PRAGMA user_version = 1;
        """
    )
    conn.close()
    store = Store(db)
    try:
        assert states(store) == {"pending": 1, "sent": 0, "dead": 0, "held": 0}
        (pending,) = store.list_deliveries(("pending",))
        assert (pending.id, pending.channel, pending.incident) == (1, "slack", None)
        store.mark_held(pending.id, 2.0, "held: test")  # the new state is allowed
        assert states(store)["held"] == 1
    finally:
        store.close()

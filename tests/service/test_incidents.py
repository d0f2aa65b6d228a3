"""One incident, one message, through the real service: the shipped pack, a file source,
Slack (slack-sdk against a loopback receiver) and a file channel, on a ManualClock.

Events are built from real Directory Insights shapes (../shared/reference/real-events/):
``sso_auth`` from sekoia-intake-formats.jsonl (id 6407359ff5c3cc91c4d4608b) and the
portal login from the ``admin_login_attempt`` of jumpcloud-api-docs.jsonl with a user
initiator, as JumpCloud documents ``user_login_attempt``. Slack is slack-sdk against a
loopback receiver, the webhook is httpx against one; the clock is a ManualClock.
"""

from __future__ import annotations

import copy
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.alert import SEVERITIES
from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.events import format_timestamp
from alerting.service.app import Service
from alerting.store import Store
from tests.support.notify import (
    PROJECT_TEMPLATES,
    START,
    HttpReceiver,
    states,
)
from tests.support.service import run_alerting

REPO = Path(__file__).resolve().parents[2]
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


def write_config(
    tmp_path: Path, slack_url: str, *, route_extra: str = "", delivery: str = ""
) -> Path:
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
{delivery}"""
    )
    return config


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """Slack's incoming-webhook endpoint on loopback."""
    server = HttpReceiver()
    yield server
    server.close()


@pytest.fixture
def service_factory(clock: ManualClock) -> Iterator[Any]:
    opened: list[Service] = []

    def open_service(config: Path) -> Service:
        service = Service.from_config(load_config(config), clock=clock)
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


# The current pack's rules this attack trips; a pack that adds rules the attack also
# trips (e.g. failed logins from a new country) must see them in the same one message.
FOUR = ["brute-force-success", "failed-login-burst", "impossible-travel", "unusual-geoip-login"]


def archived(tmp_path: Path) -> list[dict[str, Any]]:
    """Every alert as the file channel wrote it: one alert JSON object per line."""
    text = (tmp_path / "state/alerts.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def incident_order(alerts: list[dict[str, Any]]) -> list[str]:
    """Rule ids as an incident message must list them: highest severity first."""
    top: dict[str, int] = {}
    for a in alerts:
        top[a["rule"]] = max(top.get(a["rule"], 0), SEVERITIES.index(a["severity"]))
    return sorted(top, key=lambda rule: (-top[rule], rule))


# ---------------------------------------------------------------------------- end to end


def test_an_attack_that_trips_four_rules_yields_one_notification_naming_the_four(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    write_events(tmp_path / "events.jsonl", [*alice_at_home(), *guessing(), guessed()])
    service = service_factory(write_config(tmp_path, receiver.url))

    raised = service.poll_once().alerts
    assert service.deliver_once().sent == raised  # the archive file gets each alert at once...
    assert receiver.requests == []  # ...Slack waits group_wait for the rest of the attack
    clock.advance(2 * MINUTE)
    assert service.deliver_once().sent == raised
    clock.advance(30 * MINUTE)
    service.deliver_once()

    # Every alert is still recorded on its own, with its fingerprint and the incident id.
    lines = archived(tmp_path)
    assert len(lines) == raised
    assert set(FOUR) <= {a["rule"] for a in lines}
    assert len({a["fingerprint"] for a in lines}) == raised
    assert len({a["incident"] for a in lines}) == 1
    assert len(receiver.requests) == 1  # one Slack message...
    message = receiver.requests[0].json()
    named = slack_rules(message)
    assert named == incident_order(lines)  # ...naming every rule, highest severity first
    assert named[0] == "brute-force-success"
    assert set(FOUR) <= set(named)
    assert message["text"].startswith(
        f":rotating_light: [CRITICAL] Incident: {len(named)} rules for user alice"
    )
    incident = lines[0]["incident"]
    assert re.fullmatch(r"inc-[0-9a-f]{16}", incident)
    contexts = [
        element["text"]
        for block in message["attachments"][0]["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    ]
    assert any(f"incident `{incident}`" in text for text in contexts)
    assert states(service.db) == {"pending": 0, "sent": 2 * raised, "dead": 0, "held": 0}


def test_a_restart_in_the_middle_of_an_incident_sends_it_exactly_once(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events, [*alice_at_home(), *guessing()])
    config = write_config(tmp_path, receiver.url)
    first = service_factory(config)
    before = first.poll_once().alerts  # the burst; the success is not in yet
    assert before >= 1
    clock.advance(MINUTE)
    assert first.deliver_once().sent == before  # to the archive; Slack waits
    first.close()  # stopped inside group_wait: the burst waits in the outbox

    write_events(events, [*alice_at_home(), *guessing(), guessed()])
    second = service_factory(config)
    after = second.poll_once().alerts
    assert after >= 3
    assert second.deliver_once().sent == after  # the archive; Slack: still group_wait
    assert receiver.requests == []
    clock.advance(MINUTE)
    assert second.deliver_once().sent == before + after  # Slack: all of them, at once
    second.close()

    third = service_factory(config)  # and once more: nothing is sent twice
    assert third.poll_once().alerts == 0
    clock.advance(10 * MINUTE)
    assert third.deliver_once().sent == 0
    assert len(receiver.requests) == 1
    lines = archived(tmp_path)
    assert len(lines) == before + after
    assert slack_rules(receiver.requests[0].json()) == incident_order(lines)
    assert set(FOUR) <= {a["rule"] for a in lines}


def test_a_route_can_switch_incidents_off(
    tmp_path: Path, receiver: HttpReceiver, clock: ManualClock, service_factory: Any
) -> None:
    write_events(tmp_path / "events.jsonl", [*alice_at_home(), *guessing(), guessed()])
    config = write_config(tmp_path, receiver.url, route_extra="\n    incidents: false")
    service = service_factory(config)
    raised = service.poll_once().alerts
    assert raised >= 4
    assert service.deliver_once().sent == 2 * raised  # at once, one message per alert
    assert len(receiver.requests) == raised
    heads = sorted(r.json()["text"] for r in receiver.requests)
    assert not any("Incident" in h for h in heads)


@pytest.mark.slow
def test_a_kill_after_the_commit_still_sends_the_incident_once(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    """``alerting run --once`` SIGKILLed right after enqueueing, then run again (real clock,
    so the incident's group_wait is 0s here)."""
    write_events(tmp_path / "events.jsonl", [*alice_at_home(), *guessing(), guessed()])
    config = write_config(
        tmp_path, receiver.url, delivery="delivery: {incidents: {group_wait: 0s}}\n"
    )
    killed = run_alerting(config, "--once", env={"ALERTING_FAILPOINT": "after_commit"})
    _, err = killed.communicate(timeout=30)
    assert killed.returncode == -signal.SIGKILL, err
    assert receiver.requests == []
    store = Store(tmp_path / "state/alerting.db")
    try:
        counts = store.outbox_counts()
    finally:
        store.close()
    assert counts["pending"] >= 8  # Slack and the archive, for each alert
    assert counts["sent"] == counts["dead"] == counts["held"] == 0

    for _ in range(2):  # the restart delivers it; one more run sends nothing again
        proc = run_alerting(config, "--once")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert len(receiver.requests) == 1
    lines = archived(tmp_path)
    assert 2 * len(lines) == counts["pending"]
    assert slack_rules(receiver.requests[0].json()) == incident_order(lines)

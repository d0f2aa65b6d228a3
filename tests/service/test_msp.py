"""MSP mode: several customer orgs in one stream, told apart everywhere.

Two orgs both have a ``john.doe`` (MSP customers often share naming schemes). With more
than one ``org_id`` each is its own group, its own alert, carrying the org's id and
display name, and routed to that customer's channel; silences can name the org too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from alerting import cli
from alerting.alert import Alert
from alerting.clock import SystemClock
from alerting.config import load_config
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, sort_key
from alerting.notify.preview import MessagePreview
from alerting.notify.routing import Router, matches
from alerting.notify.settings import AlertMatch, RouteConfig
from alerting.simulator.di_api import DEMO_API_KEY, DIApiServer
from tests.support.real_events import RADIUS_FAILURE, shaped

NS = 1_000_000_000
ACME = "641b3db57090821c0b2f8183"  # the org id of the real sample
GLOBEX = "5bf6defbdcd8233029e0c598"
INITECH = "5dc058bc3f53f95e3972f03f"  # the key can see it, the config does not ask for it


pytestmark = pytest.mark.usefixtures("restore_logging")


BURST_RULE = """\
id: radius-failure-burst
title: Burst of failed RADIUS logins
severity: high
detection:
  failed: {event_type: radius_auth_attempt, success: false}
  condition: failed
threshold: {count: 3, within: 10m, by: initiated_by.username}
"""
EACH_RULE = """\
id: radius-failure
title: Failed RADIUS login
severity: low
detection:
  failed: {event_type: radius_auth_attempt, success: false}
  condition: failed
by: initiated_by.username
realert: 1h
"""


def failures(org: str, start: float, n: int = 3, user: str = "john.doe") -> list[dict[str, Any]]:
    """``n`` real RADIUS failures of ``user`` in ``org``, a minute apart from ``start``."""
    return [
        shaped(
            RADIUS_FAILURE,
            f"{org[:8]}-{user}-{int(start)}-{i}",
            round((start + 60 * i) * NS),
            organization=org,
            initiated_by={"type": "user", "username": user},
        )
        for i in range(n)
    ]


def write_rules(directory: Path) -> Path:
    rules = directory / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "burst.yaml").write_text(BURST_RULE)
    (rules / "each.yaml").write_text(EACH_RULE)
    return rules


def run_engine(rules_dir: Path, raws: list[dict[str, Any]], **options: Any) -> list[Alert]:
    engine = Engine(load_rules([rules_dir]), **options)
    events = sorted((Event.from_raw(r) for r in raws), key=sort_key)
    return [a for a in engine.process_many(events) if a.rule == "radius-failure-burst"]


def test_the_same_user_name_in_two_orgs_is_two_groups(tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    raws = failures(ACME, 1_000_000) + failures(GLOBEX, 1_000_030)
    # One org per key (today's default): john.doe is one account, failing six times.
    single = run_engine(rules, raws)
    assert [a.group for a in single] == [{"initiated_by.username": "john.doe"}] * 2
    # MSP mode: one john.doe per customer, three failures each, one alert each.
    names = {ACME: "Acme Corp", GLOBEX: "Globex"}
    msp = run_engine(rules, raws, group_by_organization=True, org_names=names)
    assert sorted((a.organization, a.organization_name, a.count) for a in msp) == [
        (GLOBEX, "Globex", 3),
        (ACME, "Acme Corp", 3),
    ]
    for alert in msp:
        assert alert.group == {
            "initiated_by.username": "john.doe",
            "organization": alert.organization,
        }
        assert alert.to_dict()["organization"] == alert.organization
    assert msp[0].fingerprint != msp[1].fingerprint
    # A single-org alert still says which org its events came from.
    assert single[0].organization == ACME
    assert single[0].organization_name == ""


def test_routes_match_the_org_id_or_its_display_name() -> None:
    alert = Alert(
        rule="r", title="t", severity="high", group={}, count=1, first_event_time="",
        last_event_time="", event_ids=[], fingerprint="f", summary="",
        organization=ACME, organization_name="Acme Corp",
    )  # fmt: skip
    assert matches(AlertMatch(organization=["Acme*"]), alert)
    assert matches(AlertMatch(organization=[ACME]), alert)
    assert not matches(AlertMatch(organization=["Globex", GLOBEX]), alert)
    nameless = Alert.from_dict({**alert.to_dict(), "organization_name": ""})
    assert not matches(AlertMatch(organization=["Acme*"]), nameless)
    router = Router(
        [
            RouteConfig(match=AlertMatch(organization=["Globex"]), channels=["globex"]),
            RouteConfig(match=AlertMatch(organization=["Acme Corp"]), channels=["acme"]),
        ]
    )
    assert router.channels_for(alert) == ["acme"]


def write_config(tmp_path: Path, api: DIApiServer) -> Path:
    write_rules(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
source:
  kind: jumpcloud
  base_url: {api.url}
  api_key: {DEMO_API_KEY}
  org_id: [{ACME}, {GLOBEX}]
  org_names: {{{ACME}: Acme Corp, {GLOBEX}: Globex}}
  lag: 0s
  max_retries: 0
rules: {{paths: [rules]}}
templates: {{path: {Path(__file__).resolve().parent.parent / "templates"}}}
channels:
  acme: {{type: file, path: acme.jsonl}}
  globex: {{type: file, path: globex.jsonl}}
routes:
  - match: {{organization: Acme Corp}}
    channels: [acme]
  - match: {{organization: {GLOBEX}}}
    channels: [globex]
silences:
  - match: {{rule: radius-failure, organization: Globex}}
    until: 2099-01-01T00:00:00Z
    reason: Globex RADIUS migration (CHG-42)
    owner: noc
logging: {{level: info, format: json}}
"""
    )
    return config


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_two_orgs_with_the_same_user_reach_their_own_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.time() - 1800
    raws = failures(ACME, start) + failures(GLOBEX, start + 10) + failures(INITECH, start + 20)
    with DIApiServer(raws, clock=SystemClock()) as api:
        config = write_config(tmp_path, api)
        assert load_config(config).source.multi_org
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        assert api.requests[-1].header_values("x-org-id") == [ACME, GLOBEX]
    acme, globex = read(tmp_path / "acme.jsonl"), read(tmp_path / "globex.jsonl")
    # Acme: the burst and the first single failure (realert holds the other two back).
    assert sorted(a["rule"] for a in acme) == ["radius-failure", "radius-failure-burst"]
    # Globex: only the burst; its single failures are silenced for that org only.
    assert [a["rule"] for a in globex] == ["radius-failure-burst"]
    for alerts, org, name in ((acme, ACME, "Acme Corp"), (globex, GLOBEX, "Globex")):
        for alert in alerts:
            assert alert["organization"] == org
            assert alert["organization_name"] == name
            assert alert["group"] == {"initiated_by.username": "john.doe", "organization": org}
            assert {e["organization"] for e in alert["events"]} == {org}
    assert "Traceback" not in capsys.readouterr().err


def test_messages_name_the_customer(tmp_path: Path) -> None:
    raws = failures(ACME, 1_000_000)
    (alert,) = run_engine(
        write_rules(tmp_path), raws, group_by_organization=True, org_names={ACME: "Acme Corp"}
    )
    texts = MessagePreview(Path(__file__).resolve().parents[2] / "templates")(alert)
    assert texts["email_subject"] == "[HIGH] Burst of failed RADIUS logins: john.doe, Acme Corp"
    assert f"*Org*\nAcme Corp ({ACME})" in texts["slack"]
    assert f"org:   Acme Corp ({ACME})" in texts["console"]


SIGMA_CORRELATION = """\
title: Failed RADIUS login
name: radius_failed
level: low
detection:
  selection: {event_type: radius_auth_attempt, success: false}
  condition: selection
---
title: Many failed RADIUS logins for one account
name: radius_failures_correlated
level: high
runbook: https://wiki.example.com/runbooks/radius
references: [https://attack.mitre.org/techniques/T1110/]
correlation:
  type: event_count
  rules: [radius_failed]
  group-by: [initiated_by.username]
  timespan: 10m
  condition: {gte: 3}
"""


def test_a_sigma_correlation_counts_per_org_and_carries_its_runbook(tmp_path: Path) -> None:
    (tmp_path / "sigma").mkdir()
    (tmp_path / "sigma" / "radius.yml").write_text(SIGMA_CORRELATION)
    raws = failures(ACME, 1_000_000, n=2) + failures(GLOBEX, 1_000_010, n=2)
    # Four failures of "john.doe" in one stream: without MSP mode one account, one alert.
    assert len(run_engine_rules(tmp_path / "sigma", raws)) == 1
    alerts = run_engine_rules(tmp_path / "sigma", raws, group_by_organization=True)
    assert alerts == []  # two per org: neither reaches three
    alerts = run_engine_rules(
        tmp_path / "sigma", [*raws, *failures(GLOBEX, 1_000_500, n=1)], group_by_organization=True
    )
    (alert,) = alerts
    assert alert.organization == GLOBEX
    assert alert.group == {"initiated_by.username": "john.doe", "organization": GLOBEX}
    assert alert.runbook == "https://wiki.example.com/runbooks/radius"
    assert alert.references == ["https://attack.mitre.org/techniques/T1110/"]


def run_engine_rules(rules_dir: Path, raws: list[dict[str, Any]], **options: Any) -> list[Alert]:
    engine = Engine(load_rules([rules_dir]), **options)
    events = sorted((Event.from_raw(r) for r in raws), key=sort_key)
    return [a for a in engine.process_many(events) if a.rule == "radius_failures_correlated"]

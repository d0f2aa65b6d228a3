"""What on-call reads: each message-content fix, in the rendered Slack, e-mail and console.

Alerts come from real DI events through a real rule (loader + engine), so the rule's
``description``, ``references`` and ``runbook`` travel the way they do in production;
messages are rendered with the shipped templates and their escaping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerting import cli
from alerting.alert import Alert
from alerting.config import load_config
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, sort_key
from alerting.notify.preview import MessagePreview
from alerting.notify.render import MessageBuilder, Renderer
from tests.support.notify import PROJECT_TEMPLATES
from tests.support.real_events import (
    RADIUS_FAILURE,
    USER_UPDATE_DIVISION,
    USER_UPDATE_SCIM,
    shaped,
)

NS = 1_000_000_000
T0 = 1_780_000_000
ADMIN_ID = "603e0c284295c570a179ef4a"  # initiated_by.id of the real user_update
USER_ID = "6127579ec58b6d6144c06492"  # resource.id of the real user_update

RADIUS_RULE = """\
id: radius-failures
title: Failed RADIUS logins
description: Several failed RADIUS logins for one user. Ask the user before resetting.
severity: high
references: [https://attack.mitre.org/techniques/T1110/, "ticket template SEC-7"]
runbook: https://wiki.example.com/runbooks/radius
detection:
  failed: {event_type: radius_auth_attempt, success: false}
  condition: failed
threshold: {count: COUNT, within: 10m, by: initiated_by.username}
summary: >-
  {{ count }} failed RADIUS logins for {{ group['initiated_by.username'] }}
  from {{ pairs('client_ip', 'geoip.country_code') | join(', ') }}
"""
CHANGE_RULE = """\
id: user-or-policy-changed
title: User or policy changed
severity: medium
runbook: Check the change against its change request; revert it in the console if none.
detection:
  changed: {event_type: [user_update, policy_update]}
  condition: changed
"""


def rules_dir(tmp_path: Path, count: int = 3) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "radius.yaml").write_text(RADIUS_RULE.replace("COUNT", str(count)))
    (rules / "change.yaml").write_text(CHANGE_RULE)
    return rules


def alerts_for(tmp_path: Path, raws: list[dict[str, Any]], count: int = 3) -> list[Alert]:
    engine = Engine(load_rules([rules_dir(tmp_path, count)]))
    return engine.process_many(sorted((Event.from_raw(r) for r in raws), key=sort_key))


def radius(n: int, at: int, ip: str, country: str, user: str = "john.doe") -> dict[str, Any]:
    raw = shaped(RADIUS_FAILURE, f"radius-{at}-{n}", (T0 + at) * NS, client_ip=ip)
    raw["geoip"] = {**raw["geoip"], "country_code": country}
    raw["initiated_by"] = {"type": "user", "username": user}
    return raw


@pytest.fixture
def preview() -> MessagePreview:
    return MessagePreview(PROJECT_TEMPLATES)


@pytest.fixture
def builder() -> MessageBuilder:
    return MessageBuilder(Renderer(PROJECT_TEMPLATES))


def test_each_ip_is_shown_with_its_own_country(tmp_path: Path, preview: MessagePreview) -> None:
    # Sorted separately, "198.51.100.9, 203.0.113.7 (FR, RU)" pairs the wrong ones.
    (alert,) = alerts_for(
        tmp_path,
        [radius(1, 0, "203.0.113.7", "FR"), radius(2, 5, "198.51.100.9", "RU"),
         radius(3, 9, "203.0.113.7", "FR")],
    )  # fmt: skip
    assert alert.summary == (
        "3 failed RADIUS logins for john.doe from 198.51.100.9 (RU), 203.0.113.7 (FR)"
    )
    texts = preview(alert)
    assert "*Where*\n203.0.113.7 (FR), 198.51.100.9 (RU)" in texts["slack"]
    assert "Where:     203.0.113.7 (FR), 198.51.100.9 (RU)" in texts["email_text"]
    assert "<td>203.0.113.7 (FR), 198.51.100.9 (RU)</td>" in texts["email_html"]
    assert "where: 203.0.113.7 (FR), 198.51.100.9 (RU)" in texts["console"]


def test_one_event_is_one_event(tmp_path: Path, preview: MessagePreview) -> None:
    (single,) = alerts_for(tmp_path, [radius(1, 0, "203.0.113.7", "FR")], count=1)
    texts = preview(single)
    assert "*How many*\n1 event" in texts["slack"]
    assert "How many:  1 event\n" in texts["email_text"]
    assert "<td>1 event</td>" in texts["email_html"]
    assert "count: 1 event," in texts["console"]
    for text in texts.values():
        assert "1 events" not in text


def test_rule_description_runbook_and_references_reach_every_message(
    tmp_path: Path, preview: MessagePreview, builder: MessageBuilder
) -> None:
    (alert,) = alerts_for(tmp_path, [radius(i, i, "203.0.113.7", "FR") for i in range(3)])
    assert alert.runbook == "https://wiki.example.com/runbooks/radius"
    assert alert.references == [
        "https://attack.mitre.org/techniques/T1110/",
        "ticket template SEC-7",
    ]
    texts = preview(alert)
    description = "Several failed RADIUS logins for one user. Ask the user before resetting."
    for name in ("slack", "email_text", "email_html", "console"):
        assert description in texts[name], name
    assert "• <https://wiki.example.com/runbooks/radius|Runbook>" in texts["slack"]
    assert (
        "• <https://attack.mitre.org/techniques/T1110/|attack.mitre.org/techniques/T1110>"
        in (texts["slack"])
    )
    assert "• ticket template SEC-7" in texts["slack"]  # not a URL: text, no link
    assert "- Runbook: https://wiki.example.com/runbooks/radius" in texts["email_text"]
    assert '<a href="https://wiki.example.com/runbooks/radius">Runbook</a>' in texts["email_html"]
    assert "next:  Runbook: https://wiki.example.com/runbooks/radius" in texts["console"]
    # The webhook body stays the alert JSON, now with the next steps in it.
    body = json.loads(builder.webhook([alert]))
    assert body == alert.to_dict()
    assert body["runbook"] == alert.runbook
    assert body["references"] == alert.references
    assert body["description"] == description


def test_users_and_admins_link_to_the_jumpcloud_console(
    tmp_path: Path, preview: MessagePreview
) -> None:
    update = shaped(USER_UPDATE_DIVISION, "64907cb6e968be7fe5b14d81", T0 * NS)
    (alert,) = alerts_for(tmp_path, [update])
    texts = preview(alert)
    user_url = f"https://console.jumpcloud.com/#/users/{USER_ID}/details"
    admin_url = f"https://console.jumpcloud.com/#/settings/administrators/details/{ADMIN_ID}"
    assert f"<{user_url}|user jane.doe in the JumpCloud console>" in texts["slack"]
    assert f"<{admin_url}|admin maurice.moss@sekoia.io in the JumpCloud console>" in texts["slack"]
    assert f'<a href="{user_url}">user jane.doe in the JumpCloud console</a>' in texts["email_html"]
    assert f"admin maurice.moss@sekoia.io in the JumpCloud console: {admin_url}" in texts["console"]
    eu = MessagePreview(PROJECT_TEMPLATES, "https://console.eu.jumpcloud.com")(alert)
    assert f"https://console.eu.jumpcloud.com/#/users/{USER_ID}/details" in eu["email_text"]


def test_event_text_cannot_plant_a_link_or_ping(tmp_path: Path, preview: MessagePreview) -> None:
    update = shaped(USER_UPDATE_DIVISION, "64907cb6e968be7fe5b14d82", T0 * NS)
    update["resource"] = {"type": "user", "id": USER_ID, "username": "<!channel>|x>"}
    update["initiated_by"] = {"type": "admin", "id": "javascript:alert(1)", "email": "a@b"}
    (alert,) = alerts_for(tmp_path, [update])
    texts = preview(alert)
    assert "user &lt;!channel&gt;|x&gt; in the JumpCloud console>" in texts["slack"]
    assert "<!channel>" not in texts["slack"]
    assert "javascript:" not in texts["email_html"].split("Sample events")[0]
    assert "administrators/details/javascript" not in texts["email_text"]


def test_changes_show_field_old_and_new_value(tmp_path: Path, preview: MessagePreview) -> None:
    # A disk-encryption policy switched off. No public sample of policy_update exists;
    # the entry has the real `changes` shape ({field, from, to}, values as objects).
    policy = shaped(
        USER_UPDATE_DIVISION,
        "64907cb6e968be7fe5b14d83",
        T0 * NS,
        event_type="policy_update",
        resource={"type": "policy", "id": "5f1b9a2f3c4d5e6f7a8b9c0d", "name": "Disk Encryption (macOS)"},
        changes=[
            {
                "field": "values",
                "from": [{"configFieldID": "5f1b9a2f3c4d5e6f7a8b9c11", "configFieldName": "enableFileVault", "value": True}],
                "to": [{"configFieldID": "5f1b9a2f3c4d5e6f7a8b9c11", "configFieldName": "enableFileVault", "value": False}],
            }
        ],
    )  # fmt: skip
    scim = shaped(USER_UPDATE_SCIM, "64907cb6e968be7fe5b14d84", (T0 + 60) * NS)
    division = shaped(USER_UPDATE_DIVISION, "64907cb6e968be7fe5b14d85", (T0 + 120) * NS)
    first, second, third = alerts_for(tmp_path, [policy, scim, division])
    texts = preview(first)
    line = "values[enableFileVault].value: true → false"
    assert f"*Changes*\n```{line}```" in texts["slack"]
    assert f"Changes:\n  {line}\n" in texts["email_text"]
    assert f"<li><code>{line}</code></li>" in texts["email_html"]
    assert f"changed: {line}" in texts["console"]
    scim_text = preview(second)["email_text"]
    assert "  company: SEKOIA.IO → Sekoia.io\n" in scim_text
    assert "  location: Paris → France\n" in scim_text
    assert "attributes[Division].value: Marketing → Sales" in preview(third)["console"]


def test_samples_are_key_value_lines_and_the_webhook_keeps_json(
    tmp_path: Path, preview: MessagePreview, builder: MessageBuilder
) -> None:
    (alert,) = alerts_for(tmp_path, [radius(i, i, "203.0.113.7", "FR") for i in range(3)])
    texts = preview(alert)
    assert "```timestamp: " in texts["slack"]
    assert "\nevent_type: radius_auth_attempt\n" in texts["slack"]
    assert "\nerror_message: mschap: MS-CHAP2-Response is incorrect\n" in texts["slack"]
    assert "  geoip.country_code: FR\n" in texts["email_text"]
    assert "  outer.eap_type: PEAP\n" in texts["email_text"]
    assert '{"' not in texts["email_text"]  # no minified JSON for people
    body = json.loads(builder.webhook([alert]))
    assert body["events"] == alert.events  # machines still get the events whole


# ---------------------------------------------------------------------------- rule tests


RENDERED_TESTS = """
tests:
  - name: on-call reads the pair and the next step
    events:
      - {event: {event_type: radius_auth_attempt, success: false, initiated_by: {username: bob}, client_ip: 203.0.113.7, geoip: {country_code: FR}}, repeat: 3, every: 10s}
    expect:
      alerts: 1
      rendered:
        slack_contains: ["*Where*\\n203.0.113.7 (FR)", "|Runbook>"]
        email_subject: "[HIGH] Failed RADIUS logins: bob"
        email_contains: "How many:  3 events"
        console_contains: "next:  Runbook: https://wiki.example.com/runbooks/radius"
"""


def test_inline_tests_check_the_rendered_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_dir(tmp_path)
    (rules / "radius.yaml").write_text((rules / "radius.yaml").read_text() + RENDERED_TESTS)
    args = ["test", "--rules", str(rules), "--templates", str(PROJECT_TEMPLATES), "radius-failures"]
    assert cli.main(args) == 0, capsys.readouterr().out
    wrong = RENDERED_TESTS.replace("[HIGH] Failed RADIUS logins: bob", "[HIGH] Failed logins")
    wrong = wrong.replace("How many:  3 events", "How many:  3 event\\n")
    (rules / "radius.yaml").write_text(RADIUS_RULE.replace("COUNT", "3") + wrong)
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert (
        "alert 1: rendered: e-mail subject: expected '[HIGH] Failed logins', "
        "got '[HIGH] Failed RADIUS logins: bob'"
    ) in out
    assert "alert 1: rendered: e-mail text does not contain 'How many:  3 event\\n': '" in out
    missing = ["test", "--rules", str(rules), "--templates", str(tmp_path / "nope")]
    assert cli.main(missing) == 1
    assert "templates directory" in capsys.readouterr().out


def test_console_links_follow_the_api_region(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("source: {kind: jumpcloud, base_url: eu, api_key: jc_key_0123456789}\n")
    assert load_config(path).source.console_url == "https://console.eu.jumpcloud.com"
    path.write_text("source: {kind: jumpcloud, api_key: jc_key_0123456789}\n")
    assert load_config(path).source.console_url == "https://console.jumpcloud.com"


def test_a_single_org_deployment_gets_no_org_line(tmp_path: Path, preview: MessagePreview) -> None:
    (alert,) = alerts_for(tmp_path, [radius(i, i, "203.0.113.7", "FR") for i in range(3)])
    assert alert.organization == "641b3db57090821c0b2f8183"  # still in the alert JSON
    texts = preview(alert)
    assert "*Org*" not in texts["slack"]
    assert "Org:" not in texts["email_text"]
    assert "org:" not in texts["console"]

"""Templates: the shipped ones render what on-call needs; overrides, fallbacks, checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from alerting.notify.render import (
    DEFAULT_TEMPLATES,
    MessageBuilder,
    Renderer,
    check_templates,
    plain_text,
    sample_alert,
)
from tests.support.notify import PROJECT_TEMPLATES, make_alert


@pytest.fixture
def builder() -> MessageBuilder:
    return MessageBuilder(Renderer(PROJECT_TEMPLATES))


def _all_text(obj: object) -> str:
    """Every string inside a JSON value, joined (what Slack would display)."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return "\n".join(_all_text(v) for v in obj.values())
    if isinstance(obj, list):
        return "\n".join(_all_text(v) for v in obj)
    return str(obj)


def test_shipped_templates_pass_their_own_check() -> None:
    assert check_templates(PROJECT_TEMPLATES, ["failed-login-burst"]) == []
    for name in DEFAULT_TEMPLATES:
        assert (PROJECT_TEMPLATES / name).is_file(), name


def test_slack_message_says_who_what_where_how_many(builder: MessageBuilder) -> None:
    alert = make_alert(username="alice")
    msg = builder.slack([alert])
    assert msg.blocks[0]["type"] == "header"
    assert msg.blocks[0]["text"]["text"] == ":red_circle: [HIGH] Failed login burst"
    assert msg.text.startswith(":red_circle: [HIGH] Failed login burst: 12 failed logins")
    attachment = msg.attachments[0]
    assert attachment["color"] == "#E01E5A"
    fields = {
        f["text"].split("\n", 1)[0]: f["text"].split("\n", 1)[1]
        for b in attachment["blocks"]
        if b["type"] == "section" and "fields" in b
        for f in b["fields"]
    }
    assert fields["*Who*"] == "alice"
    assert fields["*What*"] == "user_login_attempt"
    assert fields["*Where*"] == "203.0.113.7 (RU)"
    assert fields["*How many*"] == "12 events"
    assert fields["*When*"] == "2026-11-20T10:00:01.123Z to 2026-11-20T10:03:40Z"
    context = _all_text(attachment["blocks"][-2])
    assert alert.rule in context
    assert alert.fingerprint in context
    # The message ends with the command that silences exactly this rule and group.
    assert _all_text(attachment["blocks"][-1]).endswith(
        "`alerting silence add --rule failed-login-burst --group "
        'initiated_by.username=alice --for 1h --reason investigating --owner "$USER"`'
    )


def test_grouped_burst_is_one_message_listing_every_alert(builder: MessageBuilder) -> None:
    alerts = [make_alert(username=f"user{i}") for i in range(5)]
    msg = builder.slack(alerts)
    assert msg.blocks[0]["text"]["text"] == ":red_circle: 5 alerts: Failed login burst"
    listing = msg.blocks[1]["text"]["text"]
    assert [line.split(" ")[5] for line in listing.splitlines()] == [f"user{i}" for i in range(5)]
    email = builder.email(alerts)
    assert email.subject == "[HIGH] 5 alerts: Failed login burst"
    for i in range(5):
        assert f"12 failed logins for user{i}" in email.text
        assert f"12 failed logins for user{i}" in email.html


def test_a_big_burst_lists_twenty_and_counts_the_rest(builder: MessageBuilder) -> None:
    alerts = [make_alert(username=f"u{i}") for i in range(25)]
    msg = builder.slack(alerts)
    assert len(msg.blocks[1]["text"]["text"].splitlines()) == 20
    assert "+5 more alerts not listed" in _all_text(msg.attachments)


def test_per_rule_override_beats_the_default(tmp_path: Path) -> None:
    (tmp_path / "console.txt.j2").write_text("default {{ alert.rule }}\n")
    rule_dir = tmp_path / "rules" / "special-rule"
    rule_dir.mkdir(parents=True)
    (rule_dir / "console.txt.j2").write_text("special {{ alert.title }}\n")
    builder = MessageBuilder(Renderer(tmp_path))
    assert builder.console([make_alert("special-rule", title="T")]) == "special T"
    assert builder.console([make_alert("other-rule")]) == "default other-rule"


def test_channel_template_setting_picks_an_alternative_file(tmp_path: Path) -> None:
    (tmp_path / "slack_compact.json.j2").write_text(
        '{"text": {{ alert.title | tojson }}, "blocks": []}'
    )
    builder = MessageBuilder(Renderer(tmp_path))
    msg = builder.slack([make_alert(title="Compact")], template="slack_compact")
    assert (msg.text, msg.blocks) == ("Compact", [])


def test_render_error_falls_back_and_logs_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "slack.json.j2").write_text('{\n"text": {{ alert.no_such_field | tojson }}\n}\n')
    builder = MessageBuilder(Renderer(tmp_path))
    alert = make_alert(summary="12 failed logins for alice")
    with caplog.at_level(logging.ERROR):
        msg = builder.slack([alert])
    # The alert still goes out, as the plain built-in message.
    assert msg.text == "[HIGH] Failed login burst"
    assert "12 failed logins for alice" in msg.blocks[0]["text"]["text"]
    assert alert.fingerprint in msg.blocks[0]["text"]["text"]
    assert f"{tmp_path / 'slack.json.j2'} line 2" in caplog.text
    assert "no_such_field" in caplog.text


def test_template_that_renders_invalid_json_falls_back(tmp_path: Path) -> None:
    (tmp_path / "webhook.json.j2").write_text('{"rule": "{{ alert.rule }}", broken')
    alert = make_alert()
    body = MessageBuilder(Renderer(tmp_path)).webhook([alert])
    assert json.loads(body) == alert.to_dict()


def test_missing_templates_use_the_built_in_message(tmp_path: Path) -> None:
    builder = MessageBuilder(Renderer(tmp_path))
    alert = make_alert()
    assert builder.console([alert]) == plain_text([alert])
    email = builder.email([alert])
    assert email.subject == "[HIGH] Failed login burst"
    assert email.text == plain_text([alert])
    # Even the built-in message keeps the rule's next steps.
    alert.runbook = "https://wiki.example.com/runbooks/failed-logins"
    alert.references = ["ticket SEC-7"]
    assert plain_text([alert]).splitlines()[-2:] == [
        "next: Runbook: https://wiki.example.com/runbooks/failed-logins",
        "next: ticket SEC-7",
    ]


def test_check_reports_syntax_error_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text("line one\n{% if alert.rule %}\nno endif\n")
    problems = check_templates(tmp_path, [])
    assert len(problems) == 1
    assert str(problems[0].location) == f"{tmp_path / 'email.txt.j2'}:3"
    assert "endif" in problems[0].message


def test_check_reports_unknown_variable_with_line(tmp_path: Path) -> None:
    (tmp_path / "console.txt.j2").write_text("{{ alert.rule }}\n{{ alert.titel }}\n")
    problems = check_templates(tmp_path, [])
    assert [str(p.location) for p in problems] == [f"{tmp_path / 'console.txt.j2'}:2"]
    assert "titel" in problems[0].message


def test_check_reports_invalid_json_and_unknown_rule_folders(tmp_path: Path) -> None:
    (tmp_path / "webhook.json.j2").write_text('{"rule": {{ alert.rule }}}')
    rule_dir = tmp_path / "rules" / "failed-login-bursts"
    rule_dir.mkdir(parents=True)
    (rule_dir / "console.txt.j2").write_text("x")
    problems = {
        str(p.location): p.message for p in check_templates(tmp_path, ["failed-login-burst"])
    }
    assert "valid JSON" in problems[str(tmp_path / "webhook.json.j2")]
    assert "did you mean 'failed-login-burst'" in problems[str(rule_dir / "console.txt.j2")]


def test_check_renders_rule_overrides_for_that_rule(tmp_path: Path) -> None:
    rule_dir = tmp_path / "rules" / "r1"
    rule_dir.mkdir(parents=True)
    (rule_dir / "email_subject.txt.j2").write_text("{{ alert.rule }} {{ nope }}")
    problems = check_templates(tmp_path, ["r1"])
    assert [str(p.location) for p in problems] == [f"{rule_dir / 'email_subject.txt.j2'}:1"]


def test_check_missing_directory(tmp_path: Path) -> None:
    problems = check_templates(tmp_path / "absent", [])
    assert "templates directory not found" in problems[0].message


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    (tmp_path / "console.txt.j2").write_text('{{ "".__class__.__mro__ }}')
    problems = check_templates(tmp_path, [])
    assert len(problems) == 1
    assert "SecurityError" in problems[0].message
    # At send time the same template falls back instead of leaking anything.
    builder = MessageBuilder(Renderer(tmp_path))
    assert builder.console([sample_alert()]) == plain_text([sample_alert()])

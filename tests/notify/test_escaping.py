"""Attacker-controlled event text cannot ping, link, run, inject headers or drive a TTY."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jinja2 import DictLoader

from alerting.jinja_env import make_environment
from alerting.notify import escape
from alerting.notify.render import MessageBuilder, Renderer
from tests.support.notify import PROJECT_TEMPLATES, make_alert

HOSTILE = [
    "<!channel>",
    "<!here|here> <@U123ABC> <#C999>",
    "<https://evil.example/phish|click here>",
    "<script>alert(1)</script>",
    '"quote" \\ backslash \\" }] {',
    "@channel @here @everyone wake up",
    "ünïcödé 用户 🚨 \u202eevil",
    "line1\nline2\r\nBcc: victim@example.com",
]


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


@pytest.fixture
def builder() -> MessageBuilder:
    return MessageBuilder(Renderer(PROJECT_TEMPLATES))


def test_slack_escape_neutralises_mentions_links_and_broadcasts() -> None:
    assert escape.slack_escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape.slack_escape("<https://evil|x>") == "&lt;https://evil|x&gt;"
    assert escape.slack_escape("hi @here") == "hi @\u200dhere"
    # Already escaped text is not escaped twice.
    assert escape.slack_escape(escape.slack_escape("<a>")) == "&lt;a&gt;"


def test_cap_never_cuts_an_entity_in_half() -> None:
    text = str(escape.slack_escape("a" * 8 + "<"))  # aaaaaaaa&lt;
    assert escape.cap(text, 11) == "aaaaaaaa…"
    assert escape.cap("short", 10) == "short"
    assert len(escape.cap("x" * 5000, 3000)) == 3000


def test_truncate_middle_keeps_both_ends() -> None:
    value = "start-" + "x" * 1000 + "-end"
    out = escape.truncate_middle(value, 21)
    assert len(out) == 21
    assert out.startswith("start-")
    assert out.endswith("-end")


@pytest.mark.parametrize("value", HOSTILE)
def test_slack_payload_is_valid_json_and_nothing_pings(builder: MessageBuilder, value: str) -> None:
    alert = make_alert(username=value, summary=f"12 failed logins for {value}")
    msg = builder.slack([alert])
    payload = json.loads(
        json.dumps({"text": msg.text, "blocks": msg.blocks, "attachments": msg.attachments})
    )
    joined = "\n".join(_strings(payload))
    # Slack treats only <...> as mentions/links and @channel-like words as broadcasts.
    assert "<" not in joined
    assert ">" not in joined
    for word in ("@channel", "@here", "@everyone"):
        assert word not in joined
    # What on-call reads is still the attacker's text, shown literally.
    shown = msg.blocks[1]["text"]["text"]
    shown = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown.replace("@\u200d", "@") == f"12 failed logins for {value}"


def test_slack_tojson_escapes_even_when_the_template_forgets_the_filter(tmp_path: Path) -> None:
    (tmp_path / "slack.json.j2").write_text('{"text": {{ alert.summary | tojson }}, "blocks": []}')
    msg = MessageBuilder(Renderer(tmp_path)).slack([make_alert(summary="<!channel> now")])
    assert msg.text == "&lt;!channel&gt; now"


def test_slack_limits_hold_for_100kb_values(builder: MessageBuilder) -> None:
    huge = "<" + "A" * 100_000
    alert = make_alert(username=huge, summary=huge, title="T" * 500)
    msg = builder.slack([alert])
    assert len(msg.blocks[0]["text"]["text"]) <= escape.SLACK_HEADER_MAX
    for block in msg.blocks + [b for a in msg.attachments for b in a["blocks"]]:
        if "text" in block and isinstance(block["text"], dict):
            assert len(block["text"]["text"]) <= escape.SLACK_SECTION_MAX
        for f in block.get("fields", []):
            assert len(f["text"]) <= escape.SLACK_FIELD_MAX
    assert len(msg.text) <= 3000


def test_html_email_escapes_script_and_quotes(builder: MessageBuilder) -> None:
    alert = make_alert(username="<script>alert(1)</script>", summary='<img src=x onerror="x()">')
    html = builder.email([alert]).html
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;x()&#34;&gt;" in html


def test_html_override_of_one_rule_is_escaped_too(tmp_path: Path) -> None:
    # Autoescape is chosen by name in make_environment (``*.html.j2``), so a per-rule
    # override gets it as well as the default template.
    override = tmp_path / "rules" / "r1" / "email.html.j2"
    override.parent.mkdir(parents=True)
    override.write_text("<p>{{ alert.summary }}</p>")
    alert = make_alert(rule="r1", summary="<script>x()</script>")
    html = MessageBuilder(Renderer(tmp_path)).email([alert]).html
    assert html == "<p>&lt;script&gt;x()&lt;/script&gt;</p>"


def test_make_environment_escapes_html_templates_only() -> None:
    loader = DictLoader(dict.fromkeys(("a.html.j2", "a.htm", "a.json.j2", "a.txt.j2"), "{{ v }}"))
    env = make_environment(loader, html_autoescape=True)
    out = {n: env.get_template(n).render(v="<b>") for n in loader.mapping}
    assert out == {
        "a.html.j2": "&lt;b&gt;",
        "a.htm": "&lt;b&gt;",
        "a.json.j2": "<b>",
        "a.txt.j2": "<b>",
    }
    plain = make_environment(loader)
    assert plain.get_template("a.html.j2").render(v="<b>") == "<b>"


def test_email_subject_is_one_line_whatever_the_values(builder: MessageBuilder) -> None:
    alert = make_alert(
        username="bob\r\nBcc: victim@example.com\nX-Evil: 1", title="Login\u2028burst"
    )
    subject = builder.email([alert]).subject
    assert "\n" not in subject
    assert "\r" not in subject
    assert "\u2028" not in subject
    assert subject == "[HIGH] Login burst: bob Bcc: victim@example.com X-Evil: 1"


def test_email_subject_capped() -> None:
    assert len(escape.header_line("x" * 100_000)) == 200


def test_console_shows_control_characters_as_text(builder: MessageBuilder) -> None:
    alert = make_alert(username="\x1b[2J\x1b]0;pwned\x07alice", summary="a\x1b[31mred\u202e")
    text = builder.console([alert])
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "\\x1b[2J\\x1b]0;pwned\\x07alice" in text
    assert "a\\x1b[31mred\\u202e" in text


def test_webhook_body_is_the_alert_json_whatever_the_values(builder: MessageBuilder) -> None:
    for value in [*HOSTILE, "x" * 100000]:
        alert = make_alert(username=value, summary=value)
        assert json.loads(builder.webhook([alert])) == alert.to_dict()


def test_unicode_survives_every_channel(builder: MessageBuilder) -> None:
    alert = make_alert(username="Zoë 用户", summary="Zoë 用户 🚨")
    assert "Zoë 用户 🚨" in builder.slack([alert]).blocks[1]["text"]["text"]
    content = builder.email([alert])
    assert "Zoë 用户" in content.subject
    assert "Zoë 用户 🚨" in content.html
    assert "Zoë 用户 🚨" in builder.console([alert])


def test_html_tojson_is_inert_inside_html() -> None:
    out = escape.html_tojson({"a": "</script><script>x()</script>"})
    assert "<" not in out
    assert json.loads(out) == {"a": "</script><script>x()</script>"}

"""Every Slack and email message ends with the exact `alerting silence add ...` line for
its rule and group: a shell reads it back to exactly those values (event fields are
attacker-controlled), and each target escapes it (Slack mrkdwn entities, HTML)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest

from alerting.notify.render import MessageBuilder, Renderer
from alerting.notify.silences import shell_quote, silence_command, silence_commands
from tests.notify.test_render import PROJECT_TEMPLATES, _all_text
from tests.support.notify import make_alert

HOSTILE = [
    "alice",
    "o'brien",
    "$(touch /tmp/pwned)`id`",
    "<!channel> & <@U123>",
    "line\nbreak\tand\x1b[31mred",
    "ünïcode\u2028sep",
    "*glob?[x]",
]


@pytest.fixture
def builder() -> MessageBuilder:
    return MessageBuilder(Renderer(PROJECT_TEMPLATES))


def _shell_words(line: str) -> list[str]:
    """What bash makes of the line (``alerting`` swapped for a printer of its args)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    assert line.startswith("alerting ")
    script = "printf '%s\\0' " + line.removeprefix("alerting ")
    done = subprocess.run(
        [bash, "-c", script], capture_output=True, env={"USER": "oncall"}, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8").split("\0")[:-1]


@pytest.mark.parametrize("value", HOSTILE)
def test_the_line_reads_back_to_exactly_the_rule_and_group(value: str) -> None:
    alert = make_alert(group={"initiated_by.username": value, "client_ip": None})
    line = silence_command(alert)
    assert "\n" not in line
    words = _shell_words(line)
    assert words == [
        "silence", "add", "--rule", "failed-login-burst",
        "--group", f"initiated_by.username={value}",
        "--for", "1h", "--reason", "investigating", "--owner", "oncall",
    ]  # fmt: skip


def test_shell_quote_is_plain_for_plain_words() -> None:
    assert shell_quote("alice") == "alice"
    assert shell_quote("a b") == "'a b'"
    assert shell_quote("a\nb") == "$'a\\nb'"


def test_slack_and_email_end_with_the_escaped_line(builder: MessageBuilder) -> None:
    value = "<!channel> & o'brien"
    alert = make_alert(username=value)
    line = silence_command(alert)
    slack = builder.slack([alert])
    last = slack.attachments[0]["blocks"][-1]
    assert _all_text(last).splitlines()[-1] == (
        "`" + line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "`"
    )
    assert "<!channel>" not in _all_text(slack.attachments)
    email = builder.email([alert])
    assert email.text.rstrip().splitlines()[-2:] == ["To silence:", f"  {line}"]
    codes = re.findall(r"<code>(.*?)</code>", email.html, re.DOTALL)
    assert html.unescape(codes[-1]) == line
    assert "<!channel>" not in email.html
    assert email.html.rstrip().endswith("</html>")


def test_a_backtick_leaves_the_code_span_but_keeps_the_line_exact(
    builder: MessageBuilder,
) -> None:
    alert = make_alert(username="a`b")
    slack = builder.slack([alert])
    text = _all_text(slack.attachments[0]["blocks"][-1]).splitlines()[-1]
    assert text == silence_command(alert)  # no code span to break out of


def test_a_burst_lists_each_group_or_silences_the_rule(builder: MessageBuilder) -> None:
    few = [make_alert(username=f"user{i}") for i in range(3)]
    assert [c.split("=")[-1].split()[0] for c in silence_commands(few)] == [
        "user0",
        "user1",
        "user2",
    ]
    email = builder.email(few)
    assert email.text.count("alerting silence add") == 3
    many = [make_alert(username=f"user{i}") for i in range(9)]
    [line] = silence_commands(many)
    assert "--group" not in line
    assert line.startswith("alerting silence add --rule failed-login-burst --for 1h")

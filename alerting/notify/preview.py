"""Alerts rendered as on-call will read them, offline: for rule tests (``expect.rendered``).

``MessagePreview`` renders one alert through the same ``MessageBuilder`` the channels use
(the real templates, per-rule overrides, escaping and fallbacks) and returns each text
a person reads: the Slack message, the e-mail subject and bodies, the console block.
Nothing is sent. ``alerting test`` hands it to the rule-test runner, which compares.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alerting.alert import Alert
from alerting.errors import AlertingError
from alerting.notify.details import DEFAULT_CONSOLE_URL
from alerting.notify.render import MessageBuilder, Renderer, SlackMessage

SLACK = "slack"
EMAIL_SUBJECT = "email_subject"
EMAIL_TEXT = "email_text"
EMAIL_HTML = "email_html"
CONSOLE = "console"


def _texts(value: Any) -> Iterator[str]:
    """Every ``text`` string inside Block Kit JSON (what Slack displays)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "text" and isinstance(inner, str):
                yield inner
            else:
                yield from _texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _texts(inner)


def slack_text(message: SlackMessage) -> str:
    """Every text of a Slack message as sent (mrkdwn-escaped), one per line."""
    return "\n".join([message.text, *_texts(message.blocks), *_texts(message.attachments)])


class MessagePreview:
    """Renders an alert's messages: ``{slack, email_subject, email_text, email_html,
    console}`` texts, exactly as the channels would send them."""

    def __init__(self, templates_dir: Path, console_url: str = DEFAULT_CONSOLE_URL) -> None:
        self.templates_dir = Path(templates_dir)
        self.messages = MessageBuilder(Renderer(self.templates_dir, console_url))

    def __call__(self, alert: Alert) -> dict[str, str]:
        if not self.templates_dir.is_dir():
            raise AlertingError(
                f"templates directory {self.templates_dir} not found: pass --templates DIR"
            )
        email = self.messages.email([alert])
        return {
            SLACK: slack_text(self.messages.slack([alert])),
            EMAIL_SUBJECT: email.subject,
            EMAIL_TEXT: email.text,
            EMAIL_HTML: email.html,
            CONSOLE: self.messages.console([alert]),
        }

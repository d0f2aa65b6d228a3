"""Delivery channels: Slack, e-mail, webhook, console and file, and the registry of them.

Each channel turns a list of alerts into one message and sends it, raising a
``DeliveryError`` subclass (``errors.py``) that tells the outbox whether to retry, wait or
give up. The protocol is in ``base.py``; this module is the one place that knows every
channel (``SENDERS``, ``build_channel``), and no channel module imports it.
"""

from __future__ import annotations

from typing import IO

from alerting.clock import Clock
from alerting.notify.channels.base import Channel
from alerting.notify.channels.console import ConsoleSender
from alerting.notify.channels.email import EmailSender
from alerting.notify.channels.errors import (
    DeliveryError,
    PermanentError,
    RateLimited,
    TemporaryError,
)
from alerting.notify.channels.file import FileSender
from alerting.notify.channels.slack import SlackSender
from alerting.notify.channels.webhook import WebhookSender
from alerting.notify.render import MessageBuilder
from alerting.notify.settings import (
    ChannelConfig,
    ConsoleChannel,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)

# The config's ``type:`` -> the class that sends for it.
SENDERS: dict[str, type[Channel]] = {
    "slack": SlackSender,
    "email": EmailSender,
    "webhook": WebhookSender,
    "console": ConsoleSender,
    "file": FileSender,
}


def build_channel(
    name: str,
    config: ChannelConfig,
    messages: MessageBuilder,
    clock: Clock,
    stdout: IO[str] | None = None,
) -> Channel:
    """The channel object for one ``channels:`` entry."""
    if isinstance(config, SlackChannel):
        return SlackSender(name, config, messages, clock)
    if isinstance(config, EmailChannel):
        return EmailSender(name, config, messages, clock)
    if isinstance(config, WebhookChannel):
        return WebhookSender(name, config, messages, clock)
    if isinstance(config, ConsoleChannel):
        return ConsoleSender(name, config, messages, stdout)
    return FileSender(name, config)


__all__ = [
    "SENDERS",
    "Channel",
    "DeliveryError",
    "PermanentError",
    "RateLimited",
    "TemporaryError",
    "build_channel",
]

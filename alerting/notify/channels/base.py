"""What every channel is: ``send(alerts)`` plus errors that drive the outbox's retries."""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import IO, Protocol

from alerting.alert import Alert
from alerting.clock import Clock
from alerting.notify.incidents import IncidentView
from alerting.notify.render import MessageBuilder
from alerting.notify.settings import (
    ConsoleChannel,
    EmailChannel,
    FileChannel,
    SlackChannel,
    WebhookChannel,
)


class DeliveryError(Exception):
    """A send failed; ``str()`` is a one-line reason with no secret in it."""


class TemporaryError(DeliveryError):
    """Worth retrying with backoff: connection refused, timeout, 5xx, SMTP 4xx."""


class RateLimited(TemporaryError):
    """The receiver said "slow down": retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help (bad token, unknown channel, 4xx, SMTP 5xx): dead-letter now."""


class Channel(Protocol):
    name: str
    # Whether a burst of one rule's alerts may go out as one message (humans read it).
    groups_bursts: bool

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        """Deliver ``alerts`` as one message or raise ``DeliveryError``.

        ``incident`` is set for an incident message: ``alerts`` are its alerts sent now,
        highest severity first, and it names every rule of the incident so far.
        """
        ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float, default: float = 1.0) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    return max(0.0, when.timestamp() - now)


def build_channel(
    name: str,
    config: SlackChannel | EmailChannel | WebhookChannel | ConsoleChannel | FileChannel,
    messages: MessageBuilder,
    clock: Clock,
    stdout: IO[str] | None = None,
) -> Channel:
    """The channel object for one ``channels:`` entry."""
    if isinstance(config, SlackChannel):
        from alerting.notify.channels.slack import SlackSender

        return SlackSender(name, config, messages, clock)
    if isinstance(config, EmailChannel):
        from alerting.notify.channels.email import EmailSender

        return EmailSender(name, config, messages, clock)
    if isinstance(config, WebhookChannel):
        from alerting.notify.channels.webhook import WebhookSender

        return WebhookSender(name, config, messages, clock)
    if isinstance(config, ConsoleChannel):
        from alerting.notify.channels.console import ConsoleSender

        return ConsoleSender(name, config, messages, stdout)
    from alerting.notify.channels.file import FileSender

    return FileSender(name, config)

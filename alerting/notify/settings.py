"""Configuration models for channels, routes, silences and delivery.

They live beside the code that uses them; ``alerting.config`` embeds them in the whole
config model. Secrets are ``SecretStr`` so they never show in reprs, logs or errors;
``*_file`` variants (``password_file``) are resolved by ``alerting.config`` before
validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alerting.alert import SEVERITIES
from alerting.durations import Duration
from alerting.timeintervals import TimeInterval
from alerting.yamlfile import one_or_many


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AlertMatch(_Model):
    """Which alerts a route or silence applies to; every given key must match.

    ``rule`` and ``group`` values are glob patterns (``admin-*``); lists are OR.
    """

    rule: list[str] = Field(default_factory=list)
    severity: list[Literal["info", "low", "medium", "high", "critical"]] = Field(
        default_factory=list
    )
    tags: list[str] = Field(default_factory=list)
    group: dict[str, str | list[str]] = Field(default_factory=dict)

    _lists = field_validator("rule", "severity", "tags", mode="before")(one_or_many)


class SlackChannel(_Model):
    """Slack through an incoming-webhook URL, or a bot token + channel."""

    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    base_url: str = "https://slack.com/api/"
    template: str | None = None  # template name override, e.g. slack_compact
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackChannel:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set exactly one of webhook_url or token (with channel)")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel, e.g. channel: '#security-alerts'")
        return self


class EmailChannel(_Model):
    """SMTP with STARTTLS (port 587) or implicit TLS (port 465); multipart text + HTML."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    tls: bool = False  # implicit TLS (SMTPS); excludes starttls
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: Duration = timedelta(seconds=15)
    ca_file: str | None = None  # extra CA bundle for a private relay; verification stays on

    _to = field_validator("to", mode="before")(one_or_many)

    @model_validator(mode="after")
    def _tls_modes(self) -> EmailChannel:
        if self.tls and self.starttls:
            raise ValueError("tls (implicit, port 465) and starttls exclude each other: set one")
        return self


class WebhookChannel(_Model):
    """HTTP POST of the alert JSON, signed with HMAC-SHA256 when a secret is set."""

    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    template: str | None = None
    timeout: Duration = timedelta(seconds=10)
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"url {value!r} must start with https:// (or http:// on loopback)")
        return value


class ConsoleChannel(_Model):
    """Readable alerts on stdout, coloured on a terminal."""

    type: Literal["console"]
    color: Literal["auto", "always", "never"] = "auto"


class FileChannel(_Model):
    """One alert JSON object per line, appended to ``path``."""

    type: Literal["file"]
    path: str


ChannelConfig = Annotated[
    SlackChannel | EmailChannel | WebhookChannel | ConsoleChannel | FileChannel,
    Field(discriminator="type"),
]


class RouteConfig(_Model):
    """Send alerts matching ``match`` (all alerts when absent) to ``channels``.

    Routes are tried in order; the first match wins unless it sets ``continue: true``.
    """

    match: AlertMatch = Field(default_factory=AlertMatch)
    channels: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    # Group this route's alerts into one message per incident (alerting/notify/incidents.py);
    # None = the channel type's default: on for slack and email, off for the others.
    incidents: bool | None = None
    # Alertmanager's: names of the config's time_intervals. Muted: the route is skipped
    # while one holds; active: the route is used only while one holds.
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)

    _channels = field_validator(
        "channels", "mute_time_intervals", "active_time_intervals", mode="before"
    )(one_or_many)


class SilenceConfig(_Model):
    """Mute matching alerts until ``until``; ``reason`` and ``owner`` say why and who."""

    match: AlertMatch
    until: datetime
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    # Only while one of these named time_intervals holds (e.g. nightly maintenance).
    active_time_intervals: list[str] = Field(default_factory=list)

    _active = field_validator("active_time_intervals", mode="before")(one_or_many)

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("until needs a time zone, e.g. 2026-12-01T00:00:00Z")
        return value


class IncidentConfig(_Model):
    """How alerts about one entity (user, admin, address, system) become one incident.

    ``window`` is event time from the incident's first alert; ``group_wait`` and
    ``group_interval`` are service-clock delays before the first and between later
    notifications of one incident on one channel (Alertmanager's timers, per entity).
    """

    window: Duration = timedelta(minutes=30)
    group_wait: Duration = timedelta(minutes=2)
    group_interval: Duration = timedelta(minutes=5)

    @field_validator("window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than 0s, e.g. 30m")
        return value


class DeliveryConfig(_Model):
    """Outbox retry policy, burst grouping and incident grouping."""

    max_attempts: int = Field(default=8, ge=1)
    initial_backoff: Duration = timedelta(seconds=10)
    max_backoff: Duration = timedelta(minutes=30)
    interval: Duration = timedelta(seconds=5)  # how often the delivery job runs
    # Alerts of one rule arriving within group_wait go out as one message with a count.
    group_wait: Duration = timedelta(seconds=0)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)


@dataclass(frozen=True)
class NotifySettings:
    """Everything the notify stage is configured by, without the rest of the config."""

    channels: Mapping[str, ChannelConfig]
    routes: Sequence[RouteConfig]
    silences: Sequence[SilenceConfig]
    delivery: DeliveryConfig
    templates_dir: Path
    # Named time intervals (alerting.timeintervals) that routes and silences refer to.
    time_intervals: Mapping[str, Sequence[TimeInterval]] = field(default_factory=dict)


__all__ = [
    "SEVERITIES",
    "AlertMatch",
    "ChannelConfig",
    "ConsoleChannel",
    "DeliveryConfig",
    "EmailChannel",
    "FileChannel",
    "IncidentConfig",
    "NotifySettings",
    "RouteConfig",
    "SilenceConfig",
    "SlackChannel",
    "WebhookChannel",
]

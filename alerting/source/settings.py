"""Configuration models for the source: the DI API, the embedded simulator, a file.

They live beside the code that uses them (``open_source``); ``alerting.config`` embeds
them in the whole config model and resolves ``*_file`` secrets before validation.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerting.durations import Duration
from alerting.errors import AlertingError
from alerting.netutil import is_loopback_url
from alerting.simulator.di_api import parse_faults
from alerting.simulator.embedded import resolve_scenarios
from alerting.yamlfile import one_or_many, positive

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TOKEN_URL",
    "REGION_BASE_URLS",
    "SimulatorConfig",
    "SourceConfig",
]

DEFAULT_BASE_URL = "https://api.jumpcloud.com"
REGION_BASE_URLS = {
    "us": DEFAULT_BASE_URL,
    "eu": "https://api.eu.jumpcloud.com",
    "in": "https://api.in.jumpcloud.com",
}
US_CONSOLE_URL = "https://console.jumpcloud.com"
EU_CONSOLE_URL = "https://console.eu.jumpcloud.com"
DEFAULT_TOKEN_URL = "https://admin-oauth.id.jumpcloud.com/oauth2/token"  # noqa: S105 - a URL


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SimulatorConfig(_Model):
    """The embedded fake DI API (``kind: simulator``): reproducible traffic with attacks."""

    seed: int = 7
    history: Duration = timedelta(hours=2)  # how much past traffic exists at start
    scenarios: list[str] | None = None  # None = every attack scenario; [] = none
    faults: list[str] = Field(default_factory=list)  # API faults to inject (429s, 5xx...)
    users: int = Field(default=60, ge=1, le=100_000)
    # share of the people not enrolled in MFA yet (an org mid-rollout)
    unenrolled_mfa: float = Field(default=0.0, ge=0.0, lt=1.0)

    _lists = field_validator("scenarios", "faults", mode="before")(one_or_many)

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, value: list[str] | None) -> list[str] | None:
        """An unknown scenario is an error with a did-you-mean, never silently skipped."""
        try:
            resolve_scenarios(value)
        except AlertingError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("faults")
    @classmethod
    def _known_faults(cls, value: list[str]) -> list[str]:
        try:
            parse_faults(value)
        except AlertingError as exc:
            raise ValueError(str(exc).removeprefix("--fault ")) from None
        return value


class SourceConfig(_Model):
    """Where events come from, and how the DI API is polled."""

    kind: Literal["simulator", "jumpcloud", "file"]
    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr | None = None
    bearer_token: SecretStr | None = None
    # A service account: the client-credentials grant fetches (and refreshes) the token.
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_url: str = DEFAULT_TOKEN_URL
    org_id: list[str] = Field(default_factory=list)
    # MSP mode: display names of the org ids, shown in alerts and matchable by routes.
    org_names: dict[str, str] = Field(default_factory=dict)
    services: list[str] = Field(default_factory=lambda: ["all"], min_length=1)
    poll_interval: Duration = timedelta(seconds=60)
    lag: Duration = timedelta(minutes=2)
    overlap: Duration = timedelta(minutes=5)
    start_from: Duration = timedelta(hours=1)
    rate_limit: float = Field(default=10.0, gt=0, le=1000)  # requests per second
    timeout: Duration = timedelta(seconds=30)
    # The whole request (connect, headers, body); None = the same as ``timeout``.
    request_deadline: Duration | None = None
    max_retries: int = Field(default=5, ge=0, le=100)
    path: Path | None = None  # events file (JSON array or JSONL) for kind: file
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig)

    _services = field_validator("services", mode="before")(one_or_many)

    @field_validator("api_key", "bearer_token", "client_id", "client_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any) -> Any:
        """``${JUMPCLOUD_API_KEY:-}`` with the variable unset means "no key"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("org_id", mode="before")
    @classmethod
    def _org_ids(cls, value: Any) -> Any:
        """One id, a list of ids, or empty (``${JUMPCLOUD_ORG_ID:-}``) for none."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            value = [v.strip() if isinstance(v, str) else v for v in value]
            return [v for v in value if v != ""]
        return value

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value]
        for name in names:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(
                    f"service {name!r} is not a DI service name, e.g. all, directory, sso, radius"
                )
        return names

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value.lower() in REGION_BASE_URLS:
            return REGION_BASE_URLS[value.lower()]
        if value.startswith("https://") and len(value) > len("https://"):
            return value
        if value.startswith("http://") and is_loopback_url(value):
            return value  # a local fake API (the simulator, tests); never the real one
        raise ValueError(
            f"base_url {value!r} must be an https:// URL: {DEFAULT_BASE_URL} (US), "
            f"{REGION_BASE_URLS['eu']} (EU) or {REGION_BASE_URLS['in']} (IN); "
            "http:// is allowed only for 127.0.0.1/localhost"
        )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("https://") and len(value) > len("https://"):
            return value
        if value.startswith("http://") and is_loopback_url(value):
            return value  # the simulator's token endpoint (tests); never the real one
        raise ValueError(
            f"token_url {value!r} must be an https:// URL (default {DEFAULT_TOKEN_URL}); "
            "http:// is allowed only for 127.0.0.1/localhost"
        )

    @field_validator("org_names", mode="before")
    @classmethod
    def _org_names(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def console_url(self) -> str:
        """The admin console of the API's region, for links in messages (EU has its own)."""
        return EU_CONSOLE_URL if self.base_url == REGION_BASE_URLS["eu"] else US_CONSOLE_URL

    @property
    def multi_org(self) -> bool:
        """MSP mode: several orgs in one stream, so alerts group by organization."""
        return len(self.org_id) > 1

    @field_validator("poll_interval")
    @classmethod
    def _pollpositive(cls, value: timedelta) -> timedelta:
        return positive("poll_interval", value)

    @field_validator("timeout")
    @classmethod
    def _timeoutpositive(cls, value: timedelta) -> timedelta:
        return positive("timeout", value)

    @field_validator("request_deadline")
    @classmethod
    def _deadline_covers_the_timeout(
        cls, value: timedelta | None, info: ValidationInfo
    ) -> timedelta | None:
        if value is None:
            return None
        positive("request_deadline", value)
        timeout = info.data.get("timeout")
        if isinstance(timeout, timedelta) and value < timeout:
            raise ValueError(
                f"request_deadline ({value.total_seconds():g}s) is shorter than timeout "
                f"({timeout.total_seconds():g}s), which bounds each connect and read of the "
                "same request: make it at least the timeout, or leave it out (it is then "
                "the timeout)"
            )
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> SourceConfig:
        if (self.client_id is None) != (self.client_secret is None):
            given, missing = (
                ("client_id", "client_secret")
                if self.client_secret is None
                else ("client_secret", "client_id")
            )
            raise ValueError(
                f"{given} needs {missing} too: a service account signs in with both "
                f"(client_secret_file: a file holding the secret)"
            )
        if self.kind == "jumpcloud":
            ways = [
                name
                for name, value in (
                    ("api_key", self.api_key),
                    ("bearer_token", self.bearer_token),
                    ("client_id/client_secret", self.client_secret),
                )
                if value is not None
            ]
            if not ways:
                raise ValueError(
                    "kind jumpcloud needs credentials: set api_key: ${JUMPCLOUD_API_KEY} and "
                    "export JUMPCLOUD_API_KEY (or api_key_file: a file holding the key), "
                    "or client_id + client_secret for a service account"
                )
            if len(ways) > 1:
                raise ValueError(f"set only one of {' or '.join(ways)}, not several")
            if ways[0] != "api_key" and not self.org_id:
                raise ValueError(
                    f"{ways[0].split('/')[0]} (service account) needs org_id: set org_id: "
                    "${JUMPCLOUD_ORG_ID} and export JUMPCLOUD_ORG_ID"
                )
        if self.kind == "file" and self.path is None:
            raise ValueError("kind file needs path: the JSON or JSONL events file to read")
        return self

"""HTTP POST of the alert JSON with httpx, signed with HMAC-SHA256 when a secret is set.

The signature covers the exact body bytes (``X-Alerting-Signature: sha256=<hex>``) so a
receiver can verify before parsing; ``X-Alerting-Fingerprint`` lets it deduplicate the
at-least-once deliveries. 2xx is success; 408/429 and 5xx are retried (honouring
Retry-After); any other status is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import Sequence

import httpx

from alerting.alert import Alert
from alerting.clock import Clock
from alerting.errors import AlertingError
from alerting.netutil import retry_after_seconds
from alerting.notify.channels.errors import PermanentError, RateLimited, TemporaryError
from alerting.notify.incidents import IncidentView
from alerting.notify.render import MessageBuilder
from alerting.notify.settings import WebhookChannel

SIGNATURE_HEADER = "X-Alerting-Signature"
FINGERPRINT_HEADER = "X-Alerting-Fingerprint"
INCIDENT_HEADER = "X-Alerting-Incident"


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    # The body is the alert JSON contract (one alert per POST), so bursts are not merged.
    groups_bursts = False

    def __init__(
        self, name: str, config: WebhookChannel, messages: MessageBuilder, clock: Clock
    ) -> None:
        self.name = name
        self.config = config
        self.messages = messages
        self.clock = clock
        verify: ssl.SSLContext | bool = True
        if config.ca_file:
            try:
                verify = ssl.create_default_context(cafile=config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                # At startup, so a wrong path stops the service with one line instead of
                # a traceback (or every alert dead-lettering later).
                raise AlertingError(
                    f"channel {name!r}: cannot load ca_file {config.ca_file!r} ({exc}): "
                    "point ca_file at a PEM CA bundle"
                ) from None
        self._client = httpx.Client(
            verify=verify,
            timeout=config.timeout.total_seconds(),
            follow_redirects=False,
            headers={"User-Agent": "jc-alerting"},
        )

    def request_headers(
        self, alert: Alert, body: bytes, incident: IncidentView | None = None
    ) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        headers.update(self.config.headers)
        headers[FINGERPRINT_HEADER] = alert.fingerprint
        if incident is not None:
            headers[INCIDENT_HEADER] = incident.id
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value().encode(), body)
        return headers

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        if incident is not None:
            # One POST per incident message: {"incident": {...}, "alerts": [...]}.
            self._post(alerts, incident)
            return
        for alert in alerts:  # one POST per alert: the body contract is one alert object
            self._post([alert], None)

    def _post(self, alerts: Sequence[Alert], incident: IncidentView | None) -> None:
        body = self.messages.webhook(alerts, self.config.template, incident)
        try:
            resp = self._client.post(
                self.config.url,
                content=body,
                headers=self.request_headers(alerts[0], body, incident),
            )
        except httpx.TimeoutException:
            raise TemporaryError(
                f"webhook timed out after {self.config.timeout.total_seconds():g}s"
            ) from None
        except httpx.TransportError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise PermanentError(
                    f"webhook TLS certificate not trusted ({exc}): "
                    "set ca_file to the receiver's CA bundle"
                ) from None
            raise TemporaryError(f"cannot reach webhook: {type(exc).__name__}: {exc}") from None
        status = resp.status_code
        if 200 <= status < 300:
            return
        detail = " ".join(resp.text[:200].split()) or resp.reason_phrase
        if status == 429:
            wait = _wait(resp.headers.get("Retry-After"), self.clock.time())
            raise RateLimited(f"webhook rate limit (429), retry after {wait:g}s", wait)
        if status == 408 or status >= 500:
            raise TemporaryError(f"webhook returned {status}: {detail}")
        if 300 <= status < 400:
            raise PermanentError(
                f"webhook answered with a redirect ({status}): set url to the final address"
            )
        raise PermanentError(f"webhook returned {status}: {detail}")

    def close(self) -> None:
        self._client.close()


def _wait(header: str | None, now: float) -> float:
    """Seconds to postpone after a 429: the receiver's Retry-After, else one second."""
    seconds = retry_after_seconds(header, now)
    return 1.0 if seconds is None else seconds

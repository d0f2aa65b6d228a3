"""Service-account sign-in: an OAuth access token from the client-credentials grant.

A static ``bearer_token`` expires (JumpCloud's tokens live about an hour) and the service
then stops on 401. ``ClientCredentials`` does what JumpCloud's own exporters do: POST
``grant_type=client_credentials&scope=api`` with HTTP Basic ``client_id:client_secret``
to the token URL, keep the ``access_token``, fetch a new one shortly before
``expires_in`` runs out, and again when the API answers 401 (``invalidate``). Time comes
from the injected ``Clock``. The secret is never put in a message: errors name the
config keys, and the endpoint's own words are redacted.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from alerting import __version__, jsonutil
from alerting.clock import Clock
from alerting.errors import SourceError

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 3600.0  # seconds, when the endpoint leaves ``expires_in`` out
REFRESH_MARGIN = 60.0  # refresh this long before expiry...
REFRESH_FRACTION = 0.2  # ...or a fifth of the lifetime for short-lived tokens
_MASK = "***"


class TokenRejected(SourceError):
    """The token endpoint refused the credentials (400/401/403): retrying cannot help."""


class TokenUnavailable(SourceError):
    """The token endpoint did not answer usefully (network, 5xx): the next poll retries."""


class TokenSource(Protocol):
    """What the DI client needs of a sign-in: a current token, and forgetting it."""

    def token(self) -> str:
        """A token valid now; raises ``TokenRejected`` or ``TokenUnavailable``."""
        ...

    def invalidate(self) -> None:
        """The API refused the token: the next ``token()`` fetches a new one."""
        ...

    @property
    def current(self) -> str | None:
        """The cached token, if any (so messages can redact it)."""
        ...

    def close(self) -> None: ...


class ClientCredentials:
    """An OAuth 2.0 client-credentials token, cached and refreshed before it expires."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        clock: Clock,
        timeout: float = 30.0,
        scope: str = "api",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.clock = clock
        self.timeout = timeout
        self.fetches = 0  # how many tokens were requested (for tests and logs)
        self._token: str | None = None
        self._refresh_at = 0.0
        self._http = httpx.Client(
            headers={"User-Agent": f"jc-alerting/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            verify=True,
            transport=transport,
            follow_redirects=False,
        )

    @property
    def current(self) -> str | None:
        """The cached token, if any (for redaction; may be expired)."""
        return self._token

    def token(self) -> str:
        if self._token is None or self.clock.time() >= self._refresh_at:
            self._fetch()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        self._token = None

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ the request

    def _fetch(self) -> None:
        self.fetches += 1
        try:
            response = self._http.post(
                self.token_url,
                auth=(self.client_id, self._secret),
                data={"grant_type": "client_credentials", "scope": self.scope},
            )
        except httpx.TimeoutException:
            raise TokenUnavailable(
                f"the service-account token endpoint {self.token_url} did not answer within "
                f"{self.timeout:g}s; the next poll retries"
            ) from None
        except httpx.TransportError as exc:
            raise TokenUnavailable(
                f"the service-account token endpoint {self.token_url} is unreachable "
                f"({type(exc).__name__}: {self._redact(str(exc))}); the next poll retries"
            ) from None
        status = response.status_code
        if status in (400, 401, 403):
            raise TokenRejected(
                f"JumpCloud refused the service account's credentials at {self.token_url} "
                f"({status}{self._reason(response)}): check source.client_id and "
                "source.client_secret (or client_secret_file)"
            )
        if status != 200:
            raise TokenUnavailable(
                f"the service-account token endpoint {self.token_url} answered HTTP {status}"
                f"{self._reason(response)}; the next poll retries"
            )
        token, expires_in = self._parse(response)
        now = self.clock.time()
        margin = min(REFRESH_MARGIN, expires_in * REFRESH_FRACTION)
        self._token = token
        self._refresh_at = now + expires_in - margin
        log.info(
            "signed in as service account %s (token valid %gs, refreshed after %gs)",
            self.client_id,
            expires_in,
            expires_in - margin,
        )

    def _parse(self, response: httpx.Response) -> tuple[str, float]:
        try:
            data = jsonutil.loads(response.content)
        except jsonutil.JSONDecodeError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise TokenUnavailable(
                f"the service-account token endpoint {self.token_url} answered 200 without "
                "an access_token; the next poll retries"
            )
        raw = data.get("expires_in") if isinstance(data, dict) else None
        try:
            expires_in = float(raw) if raw is not None else DEFAULT_EXPIRES_IN
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        if expires_in <= 0:
            expires_in = DEFAULT_EXPIRES_IN
        return token.strip(), expires_in

    def _reason(self, response: httpx.Response) -> str:
        """``: invalid_client (bad secret)`` from an RFC 6749 error body, redacted."""
        try:
            data = jsonutil.loads(response.content)
        except jsonutil.JSONDecodeError:
            return ""
        if not isinstance(data, dict):
            return ""
        parts = [str(data[k]) for k in ("error", "error_description") if data.get(k)]
        if not parts:
            return ""
        text = " ".join(" ".join(parts).split())[:200]
        return f": {self._redact(text)}"

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, _MASK) if self._secret else text

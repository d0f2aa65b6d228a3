"""Slack through slack-sdk: an incoming-webhook URL, or a bot token + channel.

Retries are the outbox's job, so slack-sdk's own retry handlers are switched off (they
would ``time.sleep`` inside the delivery job). Responses are checked here: 429 becomes
``RateLimited`` with Retry-After, 5xx and network errors ``TemporaryError``, and
configuration faults (``invalid_auth``, ``channel_not_found``, ``no_service``...)
``PermanentError`` so they dead-letter at once with a reason an operator can act on.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Sequence
from urllib.error import URLError

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerting.alert import Alert
from alerting.clock import Clock
from alerting.netutil import retry_after_seconds
from alerting.notify.channels.errors import PermanentError, RateLimited, TemporaryError
from alerting.notify.incidents import IncidentView
from alerting.notify.render import MessageBuilder, SlackMessage
from alerting.notify.settings import SlackChannel

# slack-sdk logs request URLs (a webhook URL is a secret) and headers at debug level;
# its client logger is kept quiet and this module reports errors itself.
_SDK_LOG = logging.getLogger("alerting.notify.slack_sdk")
_SDK_LOG.setLevel(logging.CRITICAL)
_SDK_LOG.propagate = False

# Web API errors that a retry can fix; every other ``ok: false`` error is permanent.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackSender:
    groups_bursts = True

    def __init__(
        self, name: str, config: SlackChannel, messages: MessageBuilder, clock: Clock
    ) -> None:
        self.name = name
        self.config = config
        self.messages = messages
        self.clock = clock
        timeout = max(1, round(config.timeout.total_seconds()))
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        if config.webhook_url is not None:
            self._webhook = WebhookClient(
                config.webhook_url.get_secret_value(),
                timeout=timeout,
                logger=_SDK_LOG,
                retry_handlers=[],
            )
        else:
            assert config.token is not None
            self._web = WebClient(
                token=config.token.get_secret_value(),
                base_url=config.base_url,
                timeout=timeout,
                logger=_SDK_LOG,
                retry_handlers=[],
            )

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        message = self.messages.slack(alerts, self.config.template, incident)
        try:
            if self._webhook is not None:
                self._send_webhook(self._webhook, message)
            else:
                assert self._web is not None
                self._send_web(self._web, message)
        except (URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise TemporaryError(f"cannot reach Slack: {reason}") from None
        except SlackClientError as exc:
            # e.g. SlackRequestError("Invalid URL detected: <url>"): never echo the URL.
            raise PermanentError(
                f"Slack client error ({type(exc).__name__}): check webhook_url/base_url"
            ) from None

    def _send_webhook(self, client: WebhookClient, message: SlackMessage) -> None:
        resp = client.send(
            text=message.text, blocks=message.blocks, attachments=message.attachments or None
        )
        body = (resp.body or "").strip()
        if resp.status_code == 200:
            return
        if resp.status_code == 429:
            wait = _wait(_header(resp.headers, "Retry-After"), self.clock.time())
            raise RateLimited(f"Slack rate limit (429), retry after {wait:g}s", wait)
        detail = body[:200] or "no body"
        if resp.status_code >= 500:
            raise TemporaryError(f"Slack webhook returned {resp.status_code}: {detail}")
        raise PermanentError(f"Slack webhook returned {resp.status_code}: {detail}" + _hint(body))

    def _send_web(self, client: WebClient, message: SlackMessage) -> None:
        try:
            client.chat_postMessage(
                channel=self.config.channel or "",
                text=message.text,
                blocks=message.blocks,
                attachments=message.attachments or None,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or "") if exc.response.data else ""
            if status == 429 or error == "ratelimited":
                header = _header(exc.response.headers, "Retry-After")
                wait = _wait(header, self.clock.time())
                raise RateLimited(
                    f"Slack rate limit ({error or status}), retry after {wait:g}s", wait
                ) from None
            if status >= 500 or error in RETRYABLE_ERRORS:
                raise TemporaryError(
                    f"Slack API error {status}: {error or 'server error'}"
                ) from None
            raise PermanentError(
                f"Slack API error {status}: {error or 'request rejected'}" + _hint(error)
            ) from None

    def close(self) -> None:
        return None


def _header(headers: object, name: str) -> str | None:
    """A header from slack-sdk's dicts, whose values may be strings or lists."""
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


_HINTS = {
    "invalid_auth": "the token is wrong or revoked: set a valid bot token",
    "not_authed": "no token was sent: set token",
    "token_revoked": "the token was revoked: create a new one",
    "account_inactive": "the token's user or app is deactivated",
    "channel_not_found": "the channel does not exist or the bot cannot see it: check channel",
    "not_in_channel": "invite the bot to the channel",
    "is_archived": "the channel is archived: pick another",
    "no_service": "the incoming webhook is disabled or removed: create a new webhook URL",
    "no_active_hooks": "the incoming webhook is disabled: create a new webhook URL",
    "invalid_token": "the webhook URL is invalid: copy it again from Slack",
    "invalid_blocks": "the Slack template produced invalid blocks: check templates/slack.json.j2",
    "invalid_payload": "the Slack template produced an invalid payload",
    "missing_scope": "the bot lacks the chat:write scope",
}


def _hint(error: str) -> str:
    hint = _HINTS.get(error.strip())
    return f" ({hint})" if hint else ""


def _wait(header: str | None, now: float) -> float:
    """Seconds to postpone after a 429: the receiver's Retry-After, else one second."""
    seconds = retry_after_seconds(header, now)
    return 1.0 if seconds is None else seconds

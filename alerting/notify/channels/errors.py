"""The errors a channel raises; their class tells the outbox whether to retry, wait or give up."""

from __future__ import annotations


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

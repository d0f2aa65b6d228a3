"""Delivery channels: Slack, e-mail, webhook, console and file.

Each channel turns a list of alerts into one message and sends it, raising a
``DeliveryError`` subclass that tells the outbox whether to retry, wait or give up.
"""

from alerting.notify.channels.base import (
    Channel,
    DeliveryError,
    PermanentError,
    RateLimited,
    TemporaryError,
    build_channel,
)

__all__ = [
    "Channel",
    "DeliveryError",
    "PermanentError",
    "RateLimited",
    "TemporaryError",
    "build_channel",
]

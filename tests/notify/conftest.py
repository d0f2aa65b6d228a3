"""Fixtures for the notification tests: a ManualClock, a state store, loopback receivers,
a self-signed certificate and real aiosmtpd servers (tests/support/notify.py)."""

from tests.support.notify import (
    clock,
    receiver,
    smtp_plain,
    smtp_starttls,
    smtps,
    tls_cert,
)
from tests.support.store import store

__all__ = ["clock", "receiver", "smtp_plain", "smtp_starttls", "smtps", "store", "tls_cert"]

"""Network helpers shared by the config checks and the HTTP clients."""

from __future__ import annotations

import email.utils
import ipaddress
import math
from datetime import UTC
from urllib.parse import urlsplit


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is loopback: plain http is only acceptable there."""
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when it says nothing usable.

    One reading for the DI client and the HTTP channels (RFC 9110 §10.2.3):
    delta-seconds (``"12"``; a decimal is accepted) or an HTTP date. A date with no zone
    (or ``-0000``) is read as UTC, since HTTP dates are GMT by definition; a date in the
    past means "now" (0.0). Missing, empty, garbage, negative or non-finite values give
    None, and each caller applies its own fallback (the DI client its jittered backoff,
    the channels one second).
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from alerting.netutil import is_loopback_host, is_loopback_url, retry_after_seconds


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8089/x", True),
        ("http://127.5.6.7", True),
        ("http://localhost:9108", True),
        ("http://[::1]:80/", True),
        ("http://10.0.0.1", False),
        ("https://api.jumpcloud.com", False),
        ("http://127.0.0.1.evil.example/", False),
        ("not a url", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_is_loopback_host_handles_empty() -> None:
    assert not is_loopback_host(None)
    assert not is_loopback_host("")


NOW = 1_780_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("12", 12.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        # an HTTP date five seconds ahead, with its zone and without one (read as UTC)
        (format_datetime(datetime.fromtimestamp(NOW + 5, UTC), usegmt=True), 5.0),
        (format_datetime(datetime.fromtimestamp(NOW + 5, UTC)).rsplit(" ", 1)[0], 5.0),
        (format_datetime(datetime.fromtimestamp(NOW + 5, UTC)).replace("+0000", "-0000"), 5.0),
        # a date in the past means "now"
        (format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True), 0.0),
        # nothing usable: the caller's own fallback applies
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds

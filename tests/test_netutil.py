from __future__ import annotations

import pytest

from alerting.netutil import is_loopback_host, is_loopback_url


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

from __future__ import annotations

import pytest

from alerting.durations import MS, NS, format_duration_ns, ms_floor, parse_duration_ns

S = NS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("1w", 604800),
        ("1h30m", 5400),
        (" 90S ", 90),
        (45, 45),
        ("0s", 0),
    ],
)
def test_parse(text: object, seconds: int) -> None:
    assert parse_duration_ns(text) == seconds * S


def test_parse_milliseconds() -> None:
    assert parse_duration_ns("250ms") == S // 4


@pytest.mark.parametrize("text", ["", "5", "five minutes", "5q", "-5m", "m5", True, None, [1]])
def test_parse_rejects_with_hint(text: object) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 30s, 5m, 2h, 7d"):
        parse_duration_ns(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(300, "5m"), (5400, "1h30m"), (86400, "1d"), (0, "0s"), (61, "1m1s")]
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration_ns(seconds * S) == text


def test_ms_floor_drops_sub_millisecond_digits_only() -> None:
    t = parse_duration_ns("1h") + 123 * MS + 456_789
    assert ms_floor(t) == parse_duration_ns("1h") + 123 * MS
    assert ms_floor(ms_floor(t)) == ms_floor(t)
    assert ms_floor(5 * MS) == 5 * MS

"""Timestamps of every DI precision parse to the same numeric timeline."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from alerting.errors import EventError
from alerting.events import Event, format_timestamp, parse_timestamp

BASE = 1686842201 * 1_000_000_000  # 2023-06-15T15:16:41Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-06-15T15:16:41Z", BASE),  # RADIUS: whole seconds
        ("2023-06-15T15:16:41.657Z", BASE + 657_000_000),  # directory: ms
        ("2023-06-15T15:16:41.34334445Z", BASE + 343_344_450),  # SSO: 8 digits
        ("2023-06-15T15:16:41.812449824Z", BASE + 812_449_824),  # SSO/MDM: 9 digits
        ("2023-06-15T15:16:41.5Z", BASE + 500_000_000),
        ("2023-06-15T17:16:41+02:00", BASE),
        ("2023-06-15T10:46:41-04:30", BASE),
        ("2023-06-15T15:16:41", BASE),  # no zone: UTC, as the API treats it
        ("2023-06-15t15:16:41z", BASE),
    ],
)
def test_parse_timestamp_precisions(text: str, expected: int) -> None:
    assert parse_timestamp(text) == expected


def test_numeric_order_differs_from_string_order() -> None:
    whole, half = "2023-06-15T15:16:41Z", "2023-06-15T15:16:41.5Z"
    assert whole > half  # the string comparison is wrong ...
    assert parse_timestamp(whole) < parse_timestamp(half)  # ... the numeric one is right


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2023-13-01T00:00:00Z",
        "2023-02-30T00:00:00Z",
        "2023-06-15T25:00:00Z",
        "2023-06-15T15:16:41.1234567891Z",
    ],
)
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


def test_millisecond_times_parse_as_datetime_does_whatever_was_parsed_before() -> None:
    # Parsing caches minutes and reads a millisecond time's "SS" and "fff" from tables:
    # each time must still read as datetime reads it, and a malformed one be refused.
    rng = random.Random(7)
    for _ in range(3000):
        seconds = 1_767_225_540 + rng.randrange(-2 * 86_400, 2 * 86_400)
        millis = rng.randrange(1000)
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        text = f"{stamp}{rng.choice('.,')}{millis:03d}{rng.choice('Zz')}"
        assert parse_timestamp(text) == seconds * 1_000_000_000 + millis * 1_000_000
    parse_timestamp("2026-01-05T00:00:59.089Z")
    for bad in ("2026-01-05T00:00:61.089Z", "2026-01-05T00:00:5a.089Z", "2026-01-05T00:60:59.089Z"):
        with pytest.raises(ValueError, match="timestamp"):
            parse_timestamp(bad)


def test_format_roundtrip_keeps_significant_digits() -> None:
    for text in (
        "2023-06-15T15:16:41Z",
        "2023-06-15T15:16:41.657Z",
        "2023-06-15T15:16:41.812449824Z",
    ):
        assert format_timestamp(parse_timestamp(text)) == text


def test_format_gives_every_minute_as_the_calendar_does() -> None:
    # Formatting caches days and minutes: each must read as datetime spells it, across
    # days, month ends, leap days and the years before 1970.
    rng = random.Random(5)
    starts = [-86_400 * 400, 0, 951_782_400, 1_709_164_800, 1_767_225_540]
    for start in starts:
        for _ in range(300):
            seconds = start + rng.randrange(-3 * 86_400, 3 * 86_400)
            millis = rng.randrange(1000)
            micros = rng.randrange(10**6) | 1  # never a whole millisecond
            choices = [
                (0, ""),
                (millis * 10**6, f".{millis:03d}"),
                (micros * 1000, f".{micros:06d}"),
                (812_449_824, ".812449824"),
            ]
            nanos, fraction = rng.choice(choices)
            expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            text = format_timestamp(seconds * 1_000_000_000 + nanos)
            assert text == f"{expected}{fraction}Z"
            assert parse_timestamp(text) == seconds * 1_000_000_000 + nanos


def test_event_without_id_gets_stable_identity() -> None:
    a = Event.from_raw({"timestamp": "2023-06-15T15:16:41Z", "event_type": "x"})
    b = Event.from_raw({"event_type": "x", "timestamp": "2023-06-15T15:16:41Z"})
    assert a.id == b.id
    assert a.id.startswith("sha1:")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "not a JSON object"),
        ({"id": "a"}, "no 'timestamp'"),
        ({"timestamp": "soon"}, "invalid timestamp"),
    ],
)
def test_malformed_events_say_why(raw: object, reason: str) -> None:
    with pytest.raises(EventError, match=reason):
        Event.from_raw(raw)

"""Time intervals in a named zone: the interval type, routes and silences that use it.

The rule side (``timestamp|during:``) is exercised by the README example and the
conformance table; here the type itself (DST, ranges, errors) and the notify side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.errors import ConfigError
from alerting.store import Store
from alerting.timeintervals import TimeInterval
from tests.support.notify import START, make_alert, make_notifier

OFFICE = {
    "location": "Europe/Paris",
    "weekdays": ["monday:friday"],
    "times": [{"start_time": "08:00", "end_time": "18:00"}],
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2026-03-27T06:59:00Z", False),  # Friday 07:59 in Paris (winter, UTC+1)
        ("2026-03-27T07:00:00Z", True),  # 08:00 in Paris
        ("2026-03-30T06:00:00Z", True),  # Monday after the DST switch: 08:00 in Paris
        ("2026-03-30T05:59:00Z", False),  # 07:59 in Paris, UTC+2
        ("2026-03-27T17:00:00Z", False),  # 18:00 in Paris: the end is excluded
        ("2026-03-28T10:00:00Z", False),  # Saturday
        ("2026-10-26T16:59:00Z", True),  # Monday after the switch back: 17:59 in Paris
    ],
)
def test_office_hours_follow_paris_daylight_saving(when: str, inside: bool) -> None:
    assert TimeInterval.model_validate(OFFICE).contains(at(when)) is inside


@pytest.mark.parametrize(
    ("interval", "when", "inside"),
    [
        ({"days_of_month": ["-1"]}, "2026-02-28T12:00:00Z", True),  # the month's last day
        ({"days_of_month": ["-1"]}, "2026-02-27T12:00:00Z", False),
        ({"days_of_month": ["1:7"], "weekdays": ["monday"]}, "2026-01-05T12:00:00Z", True),
        ({"months": ["january", "12"]}, "2026-01-05T12:00:00Z", True),
        ({"years": ["2025:2026"]}, "2027-01-01T00:00:00Z", False),
        ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, "2026-01-05T23:59:00Z", True),
        (
            {"weekdays": ["saturday", "sunday"], "location": "Asia/Tokyo"},
            "2026-01-09T16:00:00Z",
            True,
        ),
    ],
)
def test_interval_parts(interval: dict[str, Any], when: str, inside: bool) -> None:
    assert TimeInterval.model_validate(interval).contains(at(when)) is inside


@pytest.mark.parametrize(
    ("interval", "fragment"),
    [
        ({"location": "Europe/Pariss"}, "unknown time zone 'Europe/Pariss'"),
        ({"times": [{"start_time": "8am", "end_time": "18:00"}]}, "must be HH:MM"),
        (
            {"times": [{"start_time": "22:00", "end_time": "06:00"}]},
            "split a range across midnight",
        ),
        ({"weekdays": ["funday"]}, "is not a weekday"),
        ({"days_of_month": ["32"]}, "out of range"),
        ({"months": ["december:february"]}, "runs backwards"),
        ({"hours": ["1"]}, "Extra inputs are not permitted"),
    ],
)
def test_interval_errors_say_how_to_fix(interval: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        TimeInterval.model_validate(interval)
    assert fragment in str(info.value)


# START (tests/support/notify.py) is Friday 2027-01-15 08:00 UTC: 09:00 in Paris.
NAMED = {"office-hours": [TimeInterval.model_validate(OFFICE)]}
CHANNELS = {"pager": {"type": "console"}, "chat": {"type": "console"}}


def test_routes_mute_and_activate_by_time_interval(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    clock = ManualClock(START)
    notifier = make_notifier(
        store,
        clock,
        CHANNELS,
        routes=[
            {"channels": ["pager"], "mute_time_intervals": ["office-hours"], "continue": True},
            {"channels": ["chat"], "active_time_intervals": "office-hours"},
        ],
        time_intervals=NAMED,
    )
    office = make_alert(username="alice")
    assert notifier.enqueue([office]).enqueued == 1
    assert {d.channel for d in store.list_deliveries(("pending",))} == {"chat"}

    clock.advance(12 * 3600)  # 21:00 in Paris: paging, no chat
    night = make_alert(username="bob")
    assert notifier.enqueue([night]).enqueued == 1
    channels = {
        d.channel for d in store.list_deliveries(("pending",)) if d.fingerprint == night.fingerprint
    }
    assert channels == {"pager"}


def test_a_silence_with_active_intervals_mutes_only_inside_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    clock = ManualClock(START)
    until = datetime.fromtimestamp(START + 7 * 86400, UTC).isoformat()
    notifier = make_notifier(
        store,
        clock,
        CHANNELS,
        routes=[{"channels": ["chat"]}],
        silences=[
            {
                "match": {"rule": "failed-login-burst"},
                "until": until,
                "reason": "helpdesk works these in office hours",
                "owner": "ops",
                "active_time_intervals": ["office-hours"],
            }
        ],
        time_intervals=NAMED,
    )
    assert notifier.enqueue([make_alert(username="alice")]).silenced == 1
    clock.advance(24 * 3600)  # Saturday
    result = notifier.enqueue([make_alert(username="bob")])
    assert (result.silenced, result.enqueued) == (0, 1)


def test_config_names_must_exist_and_load(tmp_path: Path) -> None:
    text = (
        "source:\n  kind: simulator\n"
        "channels:\n  chat: {type: console}\n"
        "time_intervals:\n"
        "  - name: office-hours\n"
        "    time_intervals:\n"
        "      - {location: Europe/Paris, weekdays: ['monday:friday'], "
        "times: [{start_time: '08:00', end_time: '18:00'}]}\n"
        "routes:\n  - {channels: [chat], mute_time_intervals: [ofice-hours]}\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{path}:10:46: routes.0.mute_time_intervals: unknown time interval 'ofice-hours' "
        "(did you mean 'office-hours'?) (defined in time_intervals: office-hours)"
    )
    path.write_text(text.replace("[ofice-hours]", "[office-hours]"), encoding="utf-8")
    config = load_config(path, environ={})
    assert config.intervals["office-hours"][0].location == "Europe/Paris"

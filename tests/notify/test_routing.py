"""Routing (ordered, first match, continue) and silences (matching, expiry) into the outbox."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.notify.routing import Router, matches
from alerting.notify.settings import AlertMatch, RouteConfig, SilenceConfig
from alerting.notify.silences import active_silence, expired_silences, from_config
from alerting.store import Store
from tests.support.notify import START, make_alert, make_notifier

CHANNELS: dict[str, Any] = {
    "pager": {"type": "console", "color": "never"},
    "siem": {"type": "console", "color": "never"},
    "chat": {"type": "console", "color": "never"},
}


def _m(**kwargs: Any) -> AlertMatch:
    return AlertMatch.model_validate(kwargs)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"rule": "failed-*"}, True),
        ({"rule": ["admin-*", "failed-login-burst"]}, True),
        ({"rule": "failed"}, False),  # globs are anchored: no substring match
        ({"severity": ["high", "critical"]}, True),
        ({"severity": "low"}, False),
        ({"tags": "attack.*"}, True),
        ({"tags": ["nope", "attack.credential_access"]}, True),
        ({"tags": "persistence"}, False),
        ({"group": {"initiated_by.username": "ali*"}}, True),
        ({"group": {"initiated_by.username": ["bob", "alice"]}}, True),
        ({"group": {"initiated_by.username": "bob"}}, False),
        ({"group": {"client_ip": "*"}}, False),  # a key the alert does not group by
        ({"rule": "failed-*", "severity": "low"}, False),  # keys are ANDed
    ],
)
def test_match_keys(match: dict[str, Any], expected: bool) -> None:
    assert matches(_m(**match), make_alert(username="alice")) is expected


def _router(*routes: dict[str, Any]) -> Router:
    return Router([RouteConfig.model_validate(r) for r in routes])


def test_first_match_wins() -> None:
    router = _router(
        {"match": {"severity": "critical"}, "channels": ["pager"]},
        {"match": {"severity": ["high", "critical"]}, "channels": ["siem"]},
        {"channels": ["chat"]},
    )
    assert router.channels_for(make_alert(severity="critical")) == ["pager"]
    assert router.channels_for(make_alert(severity="high")) == ["siem"]
    assert router.channels_for(make_alert(severity="low")) == ["chat"]


def test_continue_keeps_matching_and_deduplicates_channels() -> None:
    router = _router(
        {"match": {"tags": "attack.*"}, "channels": ["siem"], "continue": True},
        {"match": {"rule": "failed-*"}, "channels": ["pager", "siem"]},
        {"channels": ["chat"]},
    )
    assert router.channels_for(make_alert()) == ["siem", "pager"]
    assert router.channels_for(make_alert(rule="other", tags=())) == ["chat"]


def test_no_route_matches_gives_no_channels() -> None:
    router = _router({"match": {"severity": "critical"}, "channels": ["pager"]})
    assert router.channels_for(make_alert(severity="low")) == []


def _silence(until: float, **match: Any) -> SilenceConfig:
    return SilenceConfig.model_validate(
        {"match": match, "until": _iso(until), "reason": "pen test", "owner": "alice"}
    )


def test_silence_matches_until_it_expires() -> None:
    config = _silence(START + 3600, rule="failed-*", group={"initiated_by.username": "bob"})
    [silence] = from_config([config])
    bob, carol = make_alert(username="bob"), make_alert(username="carol")
    assert active_silence([silence], bob, START) is silence
    assert active_silence([silence], carol, START) is None
    assert active_silence([silence], bob, START + 3600) is None  # until is exclusive
    assert expired_silences([config], START + 3600) == [config]
    assert expired_silences([config], START) == []


def test_enqueue_silences_routes_and_stores(
    store: Store, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = make_notifier(
        store,
        clock,
        CHANNELS,
        routes=[
            {"match": {"severity": "critical"}, "channels": ["pager"], "continue": True},
            {"match": {"severity": ["high", "critical"]}, "channels": ["siem"]},
        ],
        silences=[
            {
                "match": {"group": {"initiated_by.username": "svc-*"}},
                "until": _iso(START + 60),
                "reason": "known scanner",
                "owner": "bob",
            },
            {"match": {}, "until": _iso(START - 1), "reason": "old", "owner": "x"},  # expired
        ],
    )
    critical = make_alert(severity="critical", username="alice")
    high = make_alert(severity="high", username="dave")
    muted = make_alert(severity="critical", username="svc-scan")
    low = make_alert(severity="low", username="erin")
    with caplog.at_level(logging.INFO):
        result = notifier.enqueue([critical, high, muted, low])
    assert (result.enqueued, result.silenced, result.duplicates, result.unrouted) == (2, 1, 0, 1)
    rows = {(d.fingerprint, d.channel) for d in store.list_deliveries(("pending",))}
    assert rows == {
        (critical.fingerprint, "pager"),
        (critical.fingerprint, "siem"),
        (high.fingerprint, "siem"),
    }
    assert "silenced until" in caplog.text
    assert "by bob: known scanner" in caplog.text
    assert f"alert {low.fingerprint}" in caplog.text
    assert "matched no route" in caplog.text
    # The same alert again (a restart re-evaluating the same events) is not re-queued.
    again = notifier.enqueue([critical])
    assert (again.enqueued, again.duplicates) == (0, 1)
    # Once the silence ends, a new alert for that user goes out.
    clock.advance(60)
    later = make_alert(severity="critical", username="svc-scan")
    assert notifier.enqueue([later]).enqueued == 1


def test_enqueue_joins_the_callers_transaction(store: Store, clock: ManualClock) -> None:
    notifier = make_notifier(store, clock, CHANNELS, routes=[{"channels": ["chat"]}])
    with pytest.raises(RuntimeError), store.transaction():
        store.set_cursor("di", 123, clock.time())
        notifier.enqueue([make_alert()])
        raise RuntimeError("crash before commit")
    # Neither the cursor nor the alert survived: they commit together or not at all.
    assert store.get_cursor("di") is None
    assert store.outbox_counts() == {"pending": 0, "sent": 0, "dead": 0, "held": 0}
    with store.transaction():
        store.set_cursor("di", 123, clock.time())
        notifier.enqueue([make_alert()])
    assert store.get_cursor("di") == 123
    assert store.outbox_counts()["pending"] == 1

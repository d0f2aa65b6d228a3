"""The DI client against API faults a user cannot see: trickled bodies and short reads.

A server that dribbles its answer out a few bytes at a time satisfies every per-read
timeout; only the whole-request deadline ends it. An empty page before the window's end
looks like the end of the data; only ``/events/count`` shows the events left unread.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.events import format_timestamp
from alerting.simulator.di_api import DEMO_API_KEY, DIApiServer
from alerting.source.jumpcloud import MAX_REREADS, DIClient, Poller, SourceUnavailable
from alerting.store import Store
from tests.support.di import NOW, NS, raw_event


def _client(server: DIApiServer, clock: ManualClock, **options: Any) -> DIClient:
    defaults: dict[str, Any] = {"api_key": DEMO_API_KEY, "clock": clock, "rate_limit": None}
    return DIClient(server.url, **(defaults | options))


def _poller(client: DIClient, store: Store, clock: ManualClock) -> Poller:
    return Poller(
        client,
        store,
        source_name="jumpcloud",
        lag_ns=120 * NS,
        overlap_ns=300 * NS,
        start_from_ns=3600 * NS,
        clock=clock,
    )


def _events(n: int) -> list[dict[str, Any]]:
    return [raw_event(f"ev{i:06d}", (NOW - 1800 + i) * NS) for i in range(n)]


# ---------------------------------------------------------------------- request deadline


def test_a_trickled_body_ends_at_the_request_deadline(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.add_events(_events(50))
    server.faults.trickle_seconds = 10  # every read gets bytes well within the timeout
    client = _client(server, clock, timeout=5.0, deadline=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        list(client.iter_pages((NOW - 3600) * NS, NOW * NS))
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3.0  # the body would take 10 s
    assert str(caught.value) == (
        "JumpCloud DI API unavailable: no complete response within 0.3s "
        "(source.request_deadline) after 1 attempts; the next poll retries"
    )


def test_the_deadline_defaults_to_the_timeout(server: DIApiServer, clock: ManualClock) -> None:
    server.add_events(_events(50))
    server.faults.trickle_seconds = 10
    client = _client(server, clock, timeout=0.3, max_retries=0)
    assert client.deadline == 0.3
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"no response within 0.3s \(timeout\)"):
        client.count((NOW - 3600) * NS, NOW * NS)
    assert time.monotonic() - started < 3.0  # the body would take 10 s


def test_slow_headers_on_a_kept_alive_connection_end_at_the_deadline(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.add_events(_events(5))
    client = _client(server, clock, timeout=5.0, deadline=0.3, max_retries=0)
    assert client.count((NOW - 3600) * NS, NOW * NS) == 5  # opens the connection
    server.faults.slow_seconds = 3  # the next answer's headers come late
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"within 0.3s \(source.request_deadline\)"):
        client.count((NOW - 3600) * NS, NOW * NS)
    assert time.monotonic() - started < 1.5
    server.faults.slow_seconds = 0
    assert client.count((NOW - 3600) * NS, NOW * NS) == 5  # and the client recovers


def test_a_whole_response_inside_the_deadline_is_read(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.add_events(_events(30))
    server.faults.trickle_seconds = 0.2
    client = _client(server, clock, timeout=5.0, deadline=3.0, max_retries=0)
    pages = list(client.iter_pages((NOW - 3600) * NS, NOW * NS))
    assert sum(len(p.events) for p in pages) == 30


# ---------------------------------------------------------------------- completeness


def test_a_window_ended_early_once_is_read_again_and_nothing_is_lost(
    server: DIApiServer, clock: ManualClock, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_events(_events(25))
    server.faults.empty_pages_next = 1  # page 2 of 3 comes back empty, once
    poller = _poller(_client(server, clock, page_limit=10), store, clock)
    with caplog.at_level(logging.INFO, logger="alerting.source.jumpcloud"):
        batch = poller.poll()
    assert batch is not None
    assert [e.id for e in batch.events] == [f"ev{i:06d}" for i in range(25)]
    assert batch.incomplete is None
    assert [r.message for r in caplog.records if "again" in r.message] == [
        "jumpcloud: read 10 of the 25 events /events/count reports in "
        f"[{_iso(NOW - 3600)}, {_iso(NOW - 120)}]; reading the window again"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_window_that_stays_short_is_one_warning_and_the_poll_goes_on(
    server: DIApiServer, clock: ManualClock, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_events(_events(25))
    server.faults.empty_page_every = 1  # every page after the first is empty
    poller = _poller(_client(server, clock, page_limit=10), store, clock)
    with caplog.at_level(logging.WARNING, logger="alerting.source.jumpcloud"):
        batch = poller.poll()
    assert batch is not None
    assert len(batch.events) == 10
    assert batch.incomplete == (10, 25)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    text = warning.getMessage()
    assert "returned 10 events" in text
    assert "/events/count reports 25" in text
    assert f"after {1 + MAX_REREADS} reads" in text
    page_ids = [r.request_id for r in server.requests if r.path.endswith("/events")]
    count_ids = [r.request_id for r in server.requests if r.path.endswith("/count")]
    assert len(count_ids) == 1 + MAX_REREADS  # one count per read: bounded
    assert f"page request ids {page_ids[-2]}, {page_ids[-1]};" in text  # the last read's
    assert f"count request id {count_ids[-1]})" in text
    poller.commit(batch)  # the poll goes on: what was read is processed
    assert store.get_cursor("jumpcloud") == batch.cursor_ns


def _iso(seconds: int) -> str:
    return format_timestamp(seconds * NS)


def test_a_short_history_read_for_the_warm_up_is_said(
    server: DIApiServer, clock: ManualClock, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_events(_events(25))
    server.faults.empty_page_every = 1
    poller = _poller(_client(server, clock, page_limit=10), store, clock)
    with caplog.at_level(logging.WARNING, logger="alerting.source.jumpcloud"):
        rebuilt = list(poller.history((NOW - 3600) * NS, NOW * NS))
    assert len(rebuilt) == 10
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "reading history (rule windows, or an export) got 10 events" in warning
    assert "/events/count reports 25" in warning

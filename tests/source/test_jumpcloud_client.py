"""DIClient + Poller against the real local DI API server, on a ManualClock.

The properties users rely on: every event is read exactly once over any sequence of
polls (paging, overlaps, late events, duplicates, restarts), API faults are retried with
the waits the server asked for, and fatal answers stop with a message naming the fix.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest

from alerting import __version__
from alerting.clock import ManualClock
from alerting.errors import SourceError
from alerting.events import format_timestamp, parse_timestamp, sort_key
from alerting.simulator.di_api import DEMO_API_KEY, DIApiServer, Faults
from alerting.source import jumpcloud
from alerting.source.jumpcloud import (
    DIClient,
    Poller,
    SourceAuthError,
    SourceRequestError,
    SourceUnavailable,
)
from alerting.store import Store
from tests.support.di import NOW, NS, raw_event

# Fixtures shared with test_di_api.py.


def event(n: int, at: float, **fields: Any) -> dict[str, Any]:
    """An event at epoch second ``at`` (fractions kept to the ns)."""
    return raw_event(f"ev{n:06d}", round(at * NS), **fields)


def make_client(server: DIApiServer, clock: ManualClock, **overrides: Any) -> DIClient:
    options: dict[str, Any] = {
        "api_key": DEMO_API_KEY,
        "clock": clock,
        "rate_limit": None,
        "timeout": 5.0,
        "seed": 1,
    }
    options.update(overrides)
    return DIClient(server.url, **options)


def make_poller(
    client: DIClient,
    store: Store,
    clock: ManualClock,
    *,
    lag: float = 120,
    overlap: float = 300,
    start_from: float = 3600,
) -> Poller:
    return Poller(
        client,
        store,
        source_name="jumpcloud",
        lag_ns=int(lag * NS),
        overlap_ns=int(overlap * NS),
        start_from_ns=int(start_from * NS),
        clock=clock,
    )


def poll_and_commit(poller: Poller, store: Store) -> list[str]:
    batch = poller.poll()
    if batch is None:
        return []
    with store.transaction():
        poller.commit(batch)
    return [e.id for e in batch.events]


# ---------------------------------------------------------------------------- paging


def test_25000_events_in_one_window_take_three_pages(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 3000 + i * 0.1) for i in range(25_000))
    client = make_client(server, clock)
    sizes = [len(page.events) for page in client.iter_pages((NOW - 3600) * NS, NOW * NS)]
    assert sizes == [10_000, 10_000, 5_000]

    poller = make_poller(client, store, clock)
    batch = poller.poll()
    assert batch is not None
    assert batch.requests == 4  # three pages and /events/count
    assert len(batch.events) == 25_000
    assert len({e.id for e in batch.events}) == 25_000
    assert batch.events == sorted(batch.events, key=sort_key)
    bodies = [r.json() for r in server.requests[-4:-1]]
    assert "search_after" not in bodies[0]
    assert bodies[1]["search_after"] == [
        (NOW - 3000) * 1000 + 9_999 * 100,
        "ev009999",
    ]
    assert bodies[2]["search_after"][1] == "ev019999"


def test_exact_multiple_of_the_limit_ends_with_an_empty_page(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 3000 + i * 0.1) for i in range(20_000))
    poller = make_poller(make_client(server, clock), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert len(batch.events) == 20_000
    assert batch.requests == 4  # three pages and /events/count
    assert server.requests[-2].status == 200
    assert server.requests[-2].json()["search_after"][1] == "ev019999"


def test_paging_ties_within_one_millisecond(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    same_ms = [event(i, NOW - 600.5) for i in range(23)]  # one burst, one millisecond
    server.add_events(same_ms)
    poller = make_poller(make_client(server, clock, page_limit=5), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert sorted(e.id for e in batch.events) == [e["id"] for e in same_ms]
    assert batch.requests == 6  # five pages and /events/count


def test_request_shape(server: DIApiServer, clock: ManualClock) -> None:
    client = make_client(server, clock, services=["sso", "radius"], page_limit=500)
    list(client.iter_pages((NOW - 60) * NS, (NOW - 30) * NS + 5))
    record = server.requests[-1]
    assert record.header("User-Agent") == f"jc-alerting/{__version__}"
    assert record.header("x-api-key") == DEMO_API_KEY
    assert record.json() == {
        "service": ["sso", "radius"],
        "start_time": format_timestamp((NOW - 60) * NS),
        "end_time": format_timestamp((NOW - 30) * NS + 5),
        "sort": "ASC",
        "limit": 500,
    }


def test_count(server: DIApiServer, clock: ManualClock) -> None:
    server.add_events(event(i, NOW - 100 + i) for i in range(50))
    client = make_client(server, clock)
    assert client.count((NOW - 100) * NS, (NOW - 60) * NS) == 41  # inclusive both ends


# ---------------------------------------------------------------------------- exactly once


@pytest.mark.parametrize(("overlap", "complete"), [(120, True), (0, False)])
def test_late_events_and_overlaps_over_many_polls(
    server: DIApiServer, clock: ManualClock, store: Store, overlap: float, complete: bool
) -> None:
    """Events show up 60 s late (lag is only 30 s): the overlap recovers them, once.

    Without an overlap the same run loses events, which proves the scenario bites.
    """
    server.faults.ingestion_delay = 60
    events = [event(i, NOW - 300 + i * 0.7) for i in range(900)]  # until NOW + 330
    events += [event(10_000 + i, NOW + 100.25) for i in range(12)]  # a same-ms burst
    server.add_events(events)
    client = make_client(server, clock, page_limit=50)
    poller = make_poller(client, store, clock, lag=30, overlap=overlap, start_from=600)
    delivered: list[str] = []
    duplicates = 0
    for _ in range(40):
        delivered += poll_and_commit(poller, store)
        assert poller.last_batch is not None
        duplicates += poller.last_batch.duplicates
        clock.advance(20)
    final_end = store.get_cursor("jumpcloud")
    assert final_end is not None
    assert final_end <= int(clock.time() * NS)
    expected = {e["id"] for e in events if _ns(e) <= final_end}
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    if complete:
        assert set(delivered) == expected
        assert duplicates > 0  # the overlap really re-read events, and they were dropped
    else:
        assert set(delivered) < expected


def _ns(raw: dict[str, Any]) -> int:
    return parse_timestamp(raw["timestamp"])


def test_cursor_persists_across_a_restart(
    server: DIApiServer, clock: ManualClock, tmp_path: Any
) -> None:
    db = tmp_path / "state.db"
    server.add_events(event(i, NOW - 1000 + i) for i in range(1000))  # until NOW - 1
    store = Store(db)
    first = poll_and_commit(make_poller(make_client(server, clock), store, clock), store)
    cursor = store.get_cursor("jumpcloud")
    store.close()
    assert first == [f"ev{i:06d}" for i in range(881)]  # up to now - lag (inclusive)
    assert cursor == (NOW - 120) * NS

    clock.advance(300)
    server.add_events(event(1000 + i, NOW + i) for i in range(100))
    store = Store(db)
    poller = make_poller(make_client(server, clock), store, clock)
    second = poll_and_commit(poller, store)
    store.close()
    assert poller.last_batch is not None
    assert poller.last_batch.start_ns == cursor - 300 * NS
    assert poller.last_batch.duplicates == 301  # the overlap re-read committed events...
    assert not set(first) & set(second)  # ...and none came out twice
    assert second == [f"ev{i:06d}" for i in range(881, 1100)]


def test_a_rolled_back_commit_leaves_the_window_to_be_read_again(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 500 + i) for i in range(10))
    poller = make_poller(make_client(server, clock), store, clock)
    batch = poller.poll()
    assert batch is not None
    with pytest.raises(RuntimeError), store.transaction():
        poller.commit(batch)
        raise RuntimeError("enqueueing the alerts failed")
    assert store.get_cursor("jumpcloud") is None
    again = poller.poll()
    assert again is not None
    assert [e.id for e in again.events] == [e.id for e in batch.events]


def test_poll_skips_when_start_is_not_before_end(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    poller = make_poller(make_client(server, clock), store, clock, overlap=0)
    assert poll_and_commit(poller, store) == []
    requests = len(server.requests)
    assert poller.poll() is None  # start == cursor == now - lag
    assert poller.skip_reason is not None
    assert "not before its end" in poller.skip_reason
    assert len(server.requests) == requests
    clock.advance(1)
    assert poller.poll() is not None

    # first run where start_from is shorter than the lag
    other = Poller(
        make_client(server, clock),
        store,
        source_name="other",
        lag_ns=120 * NS,
        overlap_ns=0,
        start_from_ns=60 * NS,
        clock=clock,
    )
    assert other.poll() is None


def test_cursor_never_passes_now_with_future_dated_events(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events([event(1, NOW - 500), event(2, NOW + 3600), event(3, NOW + 7200)])
    poller = make_poller(make_client(server, clock), store, clock)
    assert poll_and_commit(poller, store) == ["ev000001"]
    cursor = store.get_cursor("jumpcloud")
    assert cursor is not None
    assert cursor <= NOW * NS
    delivered: list[str] = []
    for _ in range(16):
        clock.advance(600)
        delivered += poll_and_commit(poller, store)
        cursor = store.get_cursor("jumpcloud")
        assert cursor is not None
        assert cursor <= int(clock.time() * NS)
    assert delivered == ["ev000002", "ev000003"]


def test_history_reads_a_range_without_repeats_or_malformed_records(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 1000 + i) for i in range(30))
    server.faults = Faults(duplicate_ids=True, malformed_every=10)
    poller = make_poller(make_client(server, clock, page_limit=7), store, clock)
    got = [e.id for e in poller.history((NOW - 1000) * NS, (NOW - 900) * NS)]
    assert len(got) == len(set(got))
    assert len(got) == 30 - 3  # every 10th served record was malformed
    assert store.get_cursor("jumpcloud") is None  # history never moves the cursor


def test_history_forgets_old_ids_but_still_drops_every_repeat(
    server: DIApiServer, clock: ManualClock, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export reads days through history(): ids are swept once they are older than the
    window, so memory holds minutes of ids; repeats (within a page or across pages) are
    still dropped, as they come right after their first copy."""
    monkeypatch.setattr(jumpcloud, "_HISTORY_SWEEP", 9)  # a sweep at the end of page one
    server.add_events(event(i, NOW - 5000 + 30 * i) for i in range(150))  # 75 minutes
    server.faults = Faults(duplicate_ids=True)
    poller = make_poller(make_client(server, clock, page_limit=9), store, clock)
    got = [e.id for e in poller.history((NOW - 5000) * NS, NOW * NS)]
    assert got == [f"ev{i:06d}" for i in range(150)]


# ---------------------------------------------------------------------------- faults


def test_429_with_retry_after_is_retried_after_that_wait(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events([event(1, NOW - 500)])
    server.faults = Faults(fail_next=[429], retry_after=7)
    poller = make_poller(make_client(server, clock), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert [e.id for e in batch.events] == ["ev000001"]
    assert clock.sleeps == [7.0]
    assert batch.retries == 1
    assert batch.requests == 3  # the 429, the page, /events/count


def test_429_without_retry_after_backs_off_with_jitter(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.faults = Faults(fail_next=[429, 429, 429], retry_after=None)
    client = make_client(server, clock, backoff_base=2.0)
    assert client.count((NOW - 60) * NS, NOW * NS) == 0
    assert len(clock.sleeps) == 3
    for n, wait in enumerate(clock.sleeps, 1):
        assert 0 <= wait <= 2.0 * 2 ** (n - 1)
    assert len(set(clock.sleeps)) == 3  # jittered, not a fixed schedule


def test_retry_after_longer_than_backoff_max_waits_for_the_next_poll(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.faults = Faults(fail_next=[429], retry_after=600)
    client = make_client(server, clock, backoff_max=60)
    with pytest.raises(SourceUnavailable, match=r"asked to wait 600s.*the next poll retries"):
        client.count((NOW - 60) * NS, NOW * NS)
    assert clock.sleeps == []


@pytest.mark.parametrize("statuses", [[500], [503, 503], [500, 502, 503, 504]])
def test_5xx_are_retried_then_succeed(
    server: DIApiServer, clock: ManualClock, store: Store, statuses: list[int]
) -> None:
    server.add_events(event(i, NOW - 500 + i) for i in range(3))
    server.faults.fail_next = list(statuses)
    poller = make_poller(make_client(server, clock), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert len(batch.events) == 3
    assert batch.retries == len(statuses)
    assert [r.status for r in server.requests] == [*statuses, 200, 200]  # page, count
    for n, wait in enumerate(clock.sleeps, 1):
        assert 0 <= wait <= 1.0 * 2 ** (n - 1)


def test_retries_exhausted_keep_the_cursor(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 500 + i) for i in range(10))
    poller = make_poller(make_client(server, clock, max_retries=3), store, clock)
    poll_and_commit(poller, store)
    cursor = store.get_cursor("jumpcloud")
    server.add_events([event(100, NOW - 60)])
    clock.advance(120)
    server.faults.fail_next = [503] * 10
    with pytest.raises(SourceUnavailable) as caught:
        poller.poll()
    message = str(caught.value)
    assert "HTTP 503" in message
    assert "after 4 attempts" in message
    assert "the next poll retries" in message
    assert "\n" not in message
    assert store.get_cursor("jumpcloud") == cursor
    server.faults.fail_next.clear()
    clock.advance(60)
    assert poll_and_commit(poller, store) == ["ev000100"]


def test_slow_response_times_out_and_is_retried(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events([event(1, NOW - 500)])
    server.faults.slow_seconds = 5  # cut short when the server stops
    calls = 0

    def speed_up_after_first(now_ns: int) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            server.faults.slow_seconds = 0

    server.event_feed = speed_up_after_first
    poller = make_poller(make_client(server, clock, timeout=0.5), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert [e.id for e in batch.events] == ["ev000001"]
    assert batch.retries == 1


def test_slow_responses_exhausting_retries_say_timeout(
    server: DIApiServer, clock: ManualClock
) -> None:
    server.faults.slow_seconds = 5
    client = make_client(server, clock, timeout=0.05, max_retries=1)
    with pytest.raises(SourceUnavailable, match=r"no response within 0.05s \(timeout\)"):
        client.count((NOW - 60) * NS, NOW * NS)


def test_network_errors_are_retried_then_unavailable(clock: ManualClock) -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        client = DIClient(url, api_key=DEMO_API_KEY, clock=clock, rate_limit=None, max_retries=2)
        with pytest.raises(SourceUnavailable, match="network error") as caught:
            client.count((NOW - 60) * NS, NOW * NS)
    assert DEMO_API_KEY not in str(caught.value)
    assert len(clock.sleeps) == 2


def test_duplicates_across_pages_are_dropped(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 500 + i) for i in range(25))
    server.faults.duplicate_ids = True
    poller = make_poller(make_client(server, clock, page_limit=10), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert [e.id for e in batch.events] == [f"ev{i:06d}" for i in range(25)]
    assert batch.duplicates == 2  # pages two and three each repeated one event


def test_malformed_records_are_skipped_with_their_request_id(
    server: DIApiServer, clock: ManualClock, store: Store
) -> None:
    server.add_events(event(i, NOW - 500 + i) for i in range(12))
    server.faults.malformed_every = 4
    poller = make_poller(make_client(server, clock, page_limit=6), store, clock)
    batch = poller.poll()
    assert batch is not None
    assert len(batch.events) == 9
    assert len(batch.skipped) == 3
    first_page, second_page = (r.request_id for r in server.requests[:2])
    assert batch.skipped[0].startswith(f"request {first_page}: event #4: ")
    assert batch.skipped[1].startswith(f"request {second_page}: event #2: ")
    assert batch.skipped[2].startswith(f"request {second_page}: event #6: ")
    reasons = " | ".join(batch.skipped)
    assert "no 'timestamp'" in reasons
    assert "invalid timestamp 'not-a-timestamp'" in reasons
    assert "not a JSON object" in reasons


# ---------------------------------------------------------------------------- fatal answers


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            401,
            "JumpCloud rejected the API key (401 Unauthorized): check source.api_key / "
            "JUMPCLOUD_API_KEY",
        ),
        (402, "Directory Insights is not enabled for this organization (402 Payment Required)"),
        (403, "not an administrator's API key (command runner keys get 403)"),
    ],
)
def test_auth_failures_stop_without_retrying(
    server: DIApiServer, clock: ManualClock, store: Store, status: int, expected: str
) -> None:
    server.faults.status = status
    poller = make_poller(make_client(server, clock), store, clock)
    with pytest.raises(SourceAuthError) as caught:
        poller.poll()
    assert expected in str(caught.value)
    assert DEMO_API_KEY not in str(caught.value)
    assert len(server.requests) == 1
    assert clock.sleeps == []
    assert store.get_cursor("jumpcloud") is None


def test_wrong_key_is_401_and_never_shown(server: DIApiServer, clock: ManualClock) -> None:
    wrong = "Wrong_Key_" + "x" * 30
    client = make_client(server, clock, api_key=wrong)
    with pytest.raises(SourceAuthError, match="rejected the API key") as caught:
        client.count((NOW - 60) * NS, NOW * NS)
    assert wrong not in str(caught.value)
    assert caught.value.status == 401


def test_400_names_the_api_message_and_request_id(server: DIApiServer, clock: ManualClock) -> None:
    client = make_client(server, clock, services=["directroy"])
    with pytest.raises(SourceRequestError) as caught:
        list(client.iter_pages((NOW - 60) * NS, NOW * NS))
    message = str(caught.value)
    request_id = server.requests[-1].request_id
    assert message.startswith("JumpCloud refused the query (400): unknown service 'directroy'")
    assert message.endswith(f"(request id {request_id})")
    assert uuid.UUID(request_id)
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------- tenants + config


def test_repeated_org_ids_are_sent_and_honoured(server: DIApiServer, clock: ManualClock) -> None:
    server.add_events(
        [
            event(1, NOW - 300, organization="org-a"),
            event(2, NOW - 200, organization="org-b"),
            event(3, NOW - 100, organization="org-c"),
        ]
    )
    client = make_client(server, clock, org_ids=["org-a", "org-c"])
    pages = list(client.iter_pages((NOW - 600) * NS, NOW * NS))
    assert [e["id"] for e in pages[0].events] == ["ev000001", "ev000003"]
    assert server.requests[-1].header_values("x-org-id") == ["org-a", "org-c"]


def test_bearer_token_needs_an_org_id(server: DIApiServer, clock: ManualClock) -> None:
    with pytest.raises(SourceError, match=r"source\.org_id is required"):
        DIClient(server.url, bearer_token=DEMO_API_KEY, clock=clock)
    server.add_events([event(1, NOW - 100)])
    client = DIClient(server.url, bearer_token=DEMO_API_KEY, org_ids=["org-a"], clock=clock)
    assert client.count((NOW - 600) * NS, NOW * NS) == 1
    assert server.requests[-1].header("Authorization") == f"Bearer {DEMO_API_KEY}"
    assert server.requests[-1].header("x-api-key") is None


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("http://api.jumpcloud.com", {"api_key": DEMO_API_KEY}, "plain http"),
        ("ftp://api.jumpcloud.com", {"api_key": DEMO_API_KEY}, "not an http"),
        ("https://api.jumpcloud.com", {}, "exactly one of"),
        (
            "https://api.jumpcloud.com",
            {"api_key": DEMO_API_KEY, "bearer_token": "t"},
            "exactly one of",
        ),
    ],
)
def test_client_configuration_errors(
    clock: ManualClock, url: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(SourceError, match=match) as caught:
        DIClient(url, clock=clock, **kwargs)
    assert DEMO_API_KEY not in str(caught.value)


def test_rate_limit_spaces_requests_on_the_clock(server: DIApiServer, clock: ManualClock) -> None:
    client = make_client(server, clock, rate_limit=2.0)
    for _ in range(6):
        client.count((NOW - 60) * NS, (NOW - 30) * NS)
    assert sum(clock.sleeps) == pytest.approx(2.0)  # a burst of 2, then one per 0.5 s
    assert all(wait <= 0.5 + 1e-9 for wait in clock.sleeps)

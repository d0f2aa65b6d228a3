"""The ``Source`` contract, one suite run against every source (APScheduler-style).

Each source is built by ``open_source`` from its settings, as the service builds it: the
DI API poller against the real local DI API, the embedded simulator behind that poller,
and an exported events file. The events for the first two are real DI events
(the reference capture sekoia-intake-formats.jsonl, admin_login_attempt) re-timed into the window.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.events import format_timestamp, sort_key
from alerting.simulator.di_api import DIApiServer
from alerting.source.base import PollBatch, Source
from alerting.source.open import open_source
from alerting.source.settings import SourceConfig
from alerting.store import Store
from tests.support.di import NOW, NS

API_KEY = "jc_contract_key_0123456789abcdef0123"

# A real admin login as DI returns it (SEKOIA-IO/intake-formats, admin_login.json).
REAL_ADMIN_LOGIN: dict[str, Any] = {
    "initiated_by": {
        "id": "61e536ebdbbe784cb2e55fb5",
        "type": "admin",
        "email": "john.doe@sekoia.io",
    },
    "geoip": {"country_code": "FR", "timezone": "Europe/Paris", "region_name": "Paris"},
    "mfa": True,
    "event_type": "admin_login_attempt",
    "provider": None,
    "service": "directory",
    "success": True,
    "organization": "641b3db57090821c0b2f8183",
    "client_ip": "1.2.3.4",
    "id": "648c6c758c2ac07fa1fdee94",
    "timestamp": "2023-06-16T14:06:45.921Z",
}


def real_events(count: int) -> list[dict[str, Any]]:
    """``count`` copies of the real login, one minute apart, ending a minute before now."""
    out = []
    for i in range(count):
        event = copy.deepcopy(REAL_ADMIN_LOGIN)
        event["id"] = f"648c6c758c2ac07f{i:08x}"
        event["timestamp"] = format_timestamp((NOW - 60 * (count - i)) * NS)
        event["success"] = i % 3 != 0
        out.append(event)
    return out


@dataclass
class Sources:
    """Opens sources of one kind on one store: a second one is the source after a restart."""

    open: Callable[[], Source]
    store: Store


@pytest.fixture(params=["jumpcloud", "simulator", "file"])
def sources(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> Iterator[Sources]:
    kind = request.param
    store = Store(tmp_path / "state.db")
    opened: list[Source] = []
    window = {"lag": "0s", "overlap": "5m", "start_from": "1h"}
    with DIApiServer(real_events(12), api_key=API_KEY, clock=clock) as api:
        settings: dict[str, Any] = {
            "jumpcloud": {"kind": "jumpcloud", "base_url": api.url, "api_key": API_KEY},
            "simulator": {"kind": "simulator", "simulator": {"history": "2h", "users": 5}},
            "file": {"kind": "file", "path": str(tmp_path / "events.jsonl")},
        }[kind]
        (tmp_path / "events.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in real_events(12))
        )
        config = SourceConfig.model_validate({**window, **settings})

        def make() -> Source:
            source = open_source(config, store, clock).source
            opened.append(source)
            return source

        yield Sources(make, store)
        for source in opened:
            source.close()
    store.close()


def first_batch(source: Source) -> PollBatch:
    batch = source.poll()
    assert batch is not None
    assert batch.events, "every source under test has events in its first window"
    return batch


def test_a_poll_reads_new_events_in_time_order_without_repeats(sources):
    batch = first_batch(sources.open())
    assert batch.events == sorted(batch.events, key=sort_key)
    assert len({e.id for e in batch.events}) == len(batch.events)
    assert batch.start_ns <= batch.events[0].time_ns
    assert batch.events[-1].time_ns <= batch.end_ns


def test_without_a_commit_a_restarted_source_reads_the_same_events(sources):
    source = sources.open()
    first = first_batch(source)
    assert sources.store.get_cursor(source.name) is None
    again = first_batch(sources.open())  # as after a crash before the commit
    assert [e.id for e in again.events] == [e.id for e in first.events]


def test_after_a_commit_nothing_is_read_twice(sources, clock):
    source = sources.open()
    batch = first_batch(source)
    with sources.store.transaction():  # the caller's transaction, as the service's poll
        source.commit(batch)
    assert sources.store.get_cursor(source.name) == batch.cursor_ns
    clock.advance(60)
    later = sources.open().poll()  # a restart after the commit
    seen = {e.id for e in batch.events}
    assert later is None or not seen & {e.id for e in later.events}


def test_history_replays_a_window_once_each(sources):
    source = sources.open()
    batch = first_batch(source)
    start, end = batch.events[0].time_ns, batch.events[-1].time_ns
    history = list(source.history(start, end))
    ids = [e.id for e in history]
    assert len(ids) == len(set(ids))
    assert all(start <= e.time_ns <= end for e in history)
    assert set(ids) >= {e.id for e in batch.events}


def test_a_source_names_its_cursor_overlap_and_closes_twice(sources):
    source = sources.open()
    assert source.name in ("jumpcloud", "simulator", "file")
    assert source.overlap_ns in (0, 5 * 60 * NS)
    assert source.retries >= 0
    assert source.skip_reason is None
    source.close()
    source.close()

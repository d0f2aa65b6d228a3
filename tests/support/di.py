"""Shared pieces of the DI API tests: a fixed "now", raw DI events, clock and server fixtures.

Used by test_di_api.py (events placed "seconds ago") and test_jumpcloud_client.py (events
placed at an absolute epoch second); each keeps its own ``event`` wrapper for that.
The fixtures are registered by the conftest.py of tests/source/ and tests/simulator/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.events import format_timestamp
from alerting.simulator.di_api import DIApiServer

NOW = 1_780_000_000  # 2026-05-28T20:26:40Z, the ManualClock's start
NS = 1_000_000_000


def raw_event(event_id: str, ns: int, **fields: Any) -> dict[str, Any]:
    """A minimal directory login event with ``id`` and a timestamp at ``ns``; ``fields`` override."""
    raw: dict[str, Any] = {
        "id": event_id,
        "timestamp": format_timestamp(ns),
        "service": "directory",
        "event_type": "user_login_attempt",
        "organization": "org-a",
    }
    raw.update(fields)
    return raw


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(float(NOW))


@pytest.fixture
def server(clock: ManualClock) -> Iterator[DIApiServer]:
    with DIApiServer(clock=clock) as srv:
        yield srv

"""A window the DI API ends early is read again, and if it stays short, said and counted.

The service's pages hold 10,000 events, so the window here holds a little more: the
short-read fault answers the second page with an empty one (the API's contract broken,
and no way to see it from the pages alone).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerting.clock import ManualClock
from alerting.simulator.di_api import DIApiServer
from tests.support.service import (
    API_KEY,
    START,
    Receiver,
    http_get,
    login,
    metric,
    open_service,
    write_config,
)

EVENTS = 10_250


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return [login(START - 3000 + i * 0.25, f"user{i % 50}", success=True) for i in range(EVENTS)]


@pytest.mark.parametrize(("fault", "read"), [("once", EVENTS), ("always", 10_000)])
def test_a_short_window_is_reread_or_reported_and_counted(
    fault: str,
    read: int,
    events: list[dict[str, object]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        if fault == "once":
            api.faults.empty_pages_next = 1
        else:
            api.faults.empty_page_every = 1
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        try:
            with caplog.at_level(logging.INFO):
                outcome = service.poll_once()
            assert outcome.ok
            assert outcome.new == read  # the poll goes on either way
            text = http_get(f"http://127.0.0.1:{service.port}/metrics")[1]
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            if fault == "once":
                assert warnings == []
                assert metric(text, "jc_alerting_incomplete_windows_total") == 0
            else:
                (line,) = warnings
                assert "returned 10000 events for [" in line
                assert f"/events/count reports {EVENTS}" in line
                assert metric(text, "jc_alerting_incomplete_windows_total") == 1
                assert metric(text, "jc_alerting_events_missing_total") == EVENTS - 10_000
                (poll,) = [r for r in caplog.records if r.getMessage() == "poll ok"]
                assert poll.__dict__["events_missing"] == EVENTS - 10_000
        finally:
            service.close()

"""A long poll does not flood the log: one line when runs are skipped, one when it ends.

The real scheduler runs the poll job every 100 ms while the first poll waits for the DI
API (the server holds its first request until the test lets it go), so APScheduler
tries to start the job many times while it still runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from apscheduler.schedulers.base import STATE_STOPPED

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


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


class _HeldFirstRequest:
    """The DI server's event feed hook: it holds the first request until ``release``."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, now_ns: int) -> None:
        if not self.arrived.is_set():
            self.arrived.set()
            self.release.wait(20)


@pytest.mark.usefixtures("restore_logging")
def test_a_long_poll_is_one_skip_line_then_silence_until_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(START)
    held = _HeldFirstRequest()
    with (
        DIApiServer(
            [login(START - 300, "alice")], api_key=API_KEY, clock=clock, event_feed=held
        ) as api,
        Receiver() as hook,
    ):
        config = write_config(
            tmp_path, base_url=api.url, webhook_url=hook.url, poll_interval="100ms"
        )
        service = open_service(config, clock)
        metrics_url = f"http://127.0.0.1:{service.port}/metrics"

        def skipped() -> float:
            text = http_get(metrics_url)[1]
            series = 'jc_alerting_skipped_runs_total{job="poll"}'
            return metric(text, series) if series in text else 0.0

        with caplog.at_level(logging.INFO):
            runner = threading.Thread(target=service.run, daemon=True)
            runner.start()
            try:
                assert held.arrived.wait(15)
                assert _wait(lambda: skipped() >= 5)  # APScheduler tried 5 times meanwhile
                held.release.set()
                assert _wait(lambda: any("long poll finished" in m for m in caplog.messages))
            finally:
                held.release.set()
                service.request_stop()
                runner.join(15)
                service.close()

    skips = [m for m in caplog.messages if m.startswith("poll skipped: the previous poll")]
    assert len(skips) == 1
    assert skips[0].endswith("skipped runs are not logged again until it finishes")
    scheduler = [r for r in caplog.records if r.name.startswith("apscheduler")]
    assert [r.getMessage() for r in scheduler if r.levelno >= logging.WARNING] == []
    (done,) = [m for m in caplog.messages if "long poll finished" in m]
    assert int(done.split("; ")[1].split()[0]) >= 5


def test_a_stop_during_a_long_poll_that_raises_alerts_finishes_and_stops(
    tmp_path: Path,
) -> None:
    """The poll's "deliver soon" nudge must not wait on the scheduler being shut down."""
    clock = ManualClock(START)
    held = _HeldFirstRequest()
    with (
        DIApiServer(
            [login(START - 300, "alice")], api_key=API_KEY, clock=clock, event_feed=held
        ) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        runner = threading.Thread(target=service.run, daemon=True)
        runner.start()
        try:
            assert held.arrived.wait(15)
            service.request_stop()  # SIGTERM while the poll waits for the API
            # The main loop is inside the scheduler's shutdown (it waits for the poll).
            assert _wait(lambda: getattr(service._scheduler, "state", None) == STATE_STOPPED)
            held.release.set()  # the poll finishes, with an alert
            runner.join(10)
            assert not runner.is_alive()
            assert service.store.alert_count() == 1
        finally:
            held.release.set()
            service.close()

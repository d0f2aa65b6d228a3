"""Every fault of the state database, as the operator meets it in a running service.

One log line naming the state file and the cause (not "internal error", no traceback),
the same words as the ``/healthz`` reason (503 at once: alerts cannot be queued), one
line again when it works again, and nothing lost: the next poll re-reads the window.
Faults are made with SQLite's own limits (tests/support/store_faults.py).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from alerting.clock import ManualClock, SystemClock
from alerting.simulator.di_api import DIApiServer
from alerting.store import SCHEMA_VERSION, Store
from tests.support.service import (
    API_KEY,
    START,
    Receiver,
    expected_fingerprints,
    http_get,
    login,
    metric,
    open_service,
    write_config,
)
from tests.support.store_faults import (
    Mend,
    corrupt_tables,
    fill_disk,
    hold_lock,
    make_read_only,
    upgrade_schema,
)

pytestmark = pytest.mark.usefixtures("restore_logging")


def _newer_schema(store: Store) -> Mend:
    upgrade_schema(store.path)

    def mend() -> None:  # the operator goes back to the version that wrote it
        conn = store._conn
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    return mend


FAULTS: dict[str, tuple[Callable[[Store], Mend], str]] = {
    "disk_full": (fill_disk, "the disk is full (database or disk is full): free space"),
    "read_only": (make_read_only, "it cannot be written (attempt to write a readonly database)"),
    "locked": (hold_lock, "it is locked by another process (database is locked)"),
    "newer_schema": (
        _newer_schema,
        f"written by a newer jc-alerting (schema {SCHEMA_VERSION + 1}",
    ),
}


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_storage_fault_is_one_line_and_one_health_reason_then_recovers(
    fault: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    make, words = FAULTS[fault]
    events = [login(START - 600 + i * 10, f"user{i}") for i in range(40)]
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        expected = expected_fingerprints(tmp_path / "rules", events)
        service = open_service(config, clock)
        health = f"http://127.0.0.1:{service.port}/healthz"
        state = str(service.store.path)
        try:
            mend = make(service.store)
            with caplog.at_level(logging.INFO):
                service._poll_job()
                clock.advance(60)
                service._poll_job()  # still broken: nothing more in the log
                service._delivery_job()
            (line,) = _errors(caplog)
            text = line.getMessage()
            assert text.startswith(f"poll failed: {state}: ")
            assert words in text
            assert "internal error" not in text
            assert line.exc_info is None  # no traceback
            code, body = http_get(health)
            assert code == 503
            report = json.loads(body)
            assert report["status"] == "error"
            assert report["reason"].startswith(f"{state}: ")
            assert words in report["reason"]
            assert service.store.get_cursor("jumpcloud") is None  # nothing half-written

            mend()
            caplog.clear()
            with caplog.at_level(logging.INFO):
                clock.advance(60)
                service._poll_job()
            assert not _errors(caplog)
            assert f"the state database {state} works again" in caplog.messages
            assert http_get(health)[0] == 200
            service.deliver_until_idle()
            assert sorted(hook.fingerprints()) == sorted(expected)  # nothing lost
            text = http_get(f"http://127.0.0.1:{service.port}/metrics")[1]
            # Two failed polls; the delivery pass had nothing to write.
            assert metric(text, f'jc_alerting_store_errors_total{{cause="{fault}"}}') == 2
        finally:
            service.close()


def test_corruption_found_while_running_stays_red_and_says_so_once(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    events = [login(START - 600 + i * 30, "alice") for i in range(5)]
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        state = str(service.store.path)
        assert service.poll_once().ok
        service.close()
        corrupt_tables(state, ("seen_ids", "seen_ids_time"))  # the header is intact

        service = open_service(config, clock)
        try:
            with caplog.at_level(logging.INFO):
                for _ in range(3):
                    clock.advance(60)
                    service._poll_job()
            (line,) = _errors(caplog)
            assert line.getMessage().startswith(
                f"poll failed: {state}: the state database is corrupt (database disk image "
                "is malformed): stop the service, move the file aside and restore a backup"
            )
            code, body = http_get(f"http://127.0.0.1:{service.port}/healthz")
            assert code == 503
            assert "the state database is corrupt" in json.loads(body)["reason"]
        finally:
            service.close()


def test_an_io_error_in_run_once_is_one_line_and_exit_1(tmp_path: Path) -> None:
    now = SystemClock().time()
    with (
        DIApiServer([login(now - 300, "alice")], api_key=API_KEY, clock=SystemClock()) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        command = [sys.executable, "-m", "alerting.cli", "run", "--once", "--config", str(config)]
        env = {k: v for k, v in os.environ.items() if k != "ALERTING_FAILPOINT"}
        first = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert first.returncode == 0, first.stderr
        state = tmp_path / "state" / "alerting.db"
        api.add_events(login(now - 200 + i * 0.01, f"user{i}") for i in range(3000))
        limit = state.stat().st_size + 16384  # the WAL cannot grow past this

        def small_files() -> None:
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        second = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            preexec_fn=small_files,
        )
    assert second.returncode == 1
    errors = [line for line in second.stderr.splitlines() if '"level":"error"' in line]
    assert "Traceback" not in second.stderr
    assert errors == [], errors  # the one line is the command's own
    (last,) = second.stderr.strip().splitlines()[-1:]
    assert last.startswith(f"alerting run: error: {state}: an I/O error (disk I/O error)")

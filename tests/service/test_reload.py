"""Reload without a restart: SIGHUP rereads config, rules, templates and silences.

In-process, ``Service.reload()`` on a ManualClock shows the swap keeps the windows of
unchanged rules and keeps the running set when the new one is invalid. A real
``alerting run`` subprocess then gets SIGHUP (valid, then invalid), SIGUSR1 and SIGTERM:
each is logged, nothing is a traceback, and the process lives until told to stop. The
subprocess test waits for log lines and webhook arrivals with deadlines, never sleeps.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import time
from pathlib import Path

import pytest

from alerting.clock import ManualClock, SystemClock
from alerting.simulator.di_api import DIApiServer
from alerting.store import Store
from tests.support.service import (
    API_KEY,
    FAILED_LOGIN_RULE,
    START,
    Lines,
    Receiver,
    login,
    open_service,
    run_alerting,
    write_config,
)

BURST = "test-failed-burst"
BROKEN_RULE = """\
id: test-failed-login
title: Failed login
severity: urgent
detection:
  failed: {event_type: user_login_attempt, success: false}
  condition: failed
"""


def _edit_failed_login(rules: Path, title: str) -> None:
    (rules / "failed-login.yml").write_text(
        FAILED_LOGIN_RULE.replace("title: Failed login", f"title: {title}")
    )


def test_reload_keeps_windows_of_unchanged_rules_and_the_old_set_on_error(
    tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    two = [login(START - 600, "alice"), login(START - 590, "alice")]
    with DIApiServer(two, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        rules = tmp_path / "rules"
        service = open_service(config, clock)
        try:
            service.poll_once()
            service.deliver_until_idle()
            assert [a["rule"] for a in hook.alerts()] == ["test-failed-login"] * 2

            # Another rule changes: the burst rule's half-full window (2 of 3) survives.
            _edit_failed_login(rules, "Failed login (edited)")
            with caplog.at_level(logging.INFO, logger="alerting.service"):
                assert service.reload() is True
            reloaded = next(r for r in caplog.records if r.getMessage() == "reloaded")
            assert reloaded.windows_kept == 1  # type: ignore[attr-defined]
            assert reloaded.rules_new_or_changed == ["test-failed-login"]  # type: ignore[attr-defined]

            clock.advance(60)
            api.add_events([login(START - 300, "alice")])
            service.poll_once()
            service.deliver_until_idle()
            bursts = [a for a in hook.alerts() if a["rule"] == BURST]
            assert len(bursts) == 1, "the window of the unchanged rule was lost"
            assert bursts[0]["count"] == 3
            titles = {a["title"] for a in hook.alerts()[2:] if a["rule"] != BURST}
            assert titles == {"Failed login (edited)"}

            # An invalid rule: each problem is logged as file:line:col, the old set runs on.
            (rules / "failed-login.yml").write_text(BROKEN_RULE)
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="alerting.service"):
                assert service.reload() is False
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert any(
                re.match(rf"reload: {re.escape(str(rules / 'failed-login.yml'))}:3:\d+: ", m)
                and "urgent" in m
                for m in errors
            ), errors
            assert "still running the previous" in errors[-1]
            assert not any(r.exc_info for r in caplog.records)

            clock.advance(60)
            api.add_events([login(START - 100, "dave")])
            service.poll_once()
            service.deliver_until_idle()
            last = hook.alerts()[-1]
            assert (last["group"], last["title"]) == (
                {"initiated_by.username": "dave"},
                "Failed login (edited)",
            )

            # A config change naming a template that does not exist is refused too.
            _edit_failed_login(rules, "Failed login (edited)")
            config.write_text(config.read_text().replace("secret: ", "template: siem_v2, secret: "))
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="alerting.service"):
                assert service.reload() is False
            assert any(
                "channels.siem.template: no template 'siem_v2'" in r.getMessage()
                for r in caplog.records
            )
        finally:
            service.close()


def _records(lines: Lines) -> list[dict[str, object]]:
    out = []
    for line in list(lines.lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _wait_record(lines: Lines, message: str, after: int, timeout: float = 20) -> dict[str, object]:
    """The first JSON log record with ``message`` among those after index ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in _records(lines)[after:]:
            if str(record.get("message", "")).startswith(message):
                return record
        time.sleep(0.05)
    raise AssertionError(f"no log line {message!r} within {timeout}s:\n{''.join(lines.lines)}")


def _wait_until(predicate: object, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sighup_reloads_and_a_bad_reload_keeps_the_process_and_its_rules(
    tmp_path: Path,
) -> None:
    t0 = time.time()
    # Recent, so the burst's 10m window still holds them when the third arrives.
    two = [login(t0 - 60, "alice"), login(t0 - 50, "alice")]
    with DIApiServer(two, api_key=API_KEY, clock=SystemClock()) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url, poll_interval="1s")
        rules = tmp_path / "rules"
        proc = run_alerting(config, env={"JUMPCLOUD_API_KEY": API_KEY})
        err = Lines(proc.stderr)
        try:
            _wait_record(err, "poll ok", 0)
            assert _wait_until(lambda: len(hook.alerts()) == 2)

            # A valid change, then SIGHUP (what `systemctl reload` sends).
            _edit_failed_login(rules, "Failed login (edited)")
            mark = len(_records(err))
            proc.send_signal(signal.SIGHUP)
            assert _wait_record(err, "received SIGHUP", mark)["signal"] == "SIGHUP"
            reloaded = _wait_record(err, "reloaded", mark)
            assert reloaded["windows_kept"] == 1
            # The third failure completes the burst whose first two only the kept window holds.
            api.add_events([login(time.time() - 2, "alice")])
            assert _wait_until(lambda: any(a["rule"] == BURST for a in hook.alerts()))

            # An invalid change: logged as file:line:col, the process and old rules live on.
            (rules / "failed-login.yml").write_text(BROKEN_RULE)
            mark = len(_records(err))
            proc.send_signal(signal.SIGHUP)
            rejected = _wait_record(err, "reload rejected", mark)
            assert rejected["level"] == "error"
            problems = [
                str(r["message"])
                for r in _records(err)[mark:]
                if str(r["message"]).startswith("reload: ")
            ]
            assert any(f"{rules / 'failed-login.yml'}:3:" in p for p in problems), problems
            assert proc.poll() is None
            api.add_events([login(time.time() - 2, "dave")])
            assert _wait_until(
                lambda: any(
                    a["group"] == {"initiated_by.username": "dave"}
                    and a["title"] == "Failed login (edited)"
                    for a in hook.alerts()
                )
            )

            # A stray signal is logged and does not end detection.
            mark = len(_records(err))
            proc.send_signal(signal.SIGUSR1)
            _wait_record(err, "received SIGUSR1", mark)
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
        text = err.text()
        assert code == 0, text
        assert "received SIGTERM: stopping" in text
        assert "Traceback" not in text
        assert API_KEY not in text
    store = Store(tmp_path / "state" / "alerting.db")
    try:
        assert store.outbox_counts()["dead"] == 0
    finally:
        store.close()

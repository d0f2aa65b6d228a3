"""The service end to end: DI API (a real local server) -> engine -> outbox -> webhook.

Most tests drive ``Service`` in-process with a ManualClock shared by the fake API, the
client's retries and the health check, so outages and time passing cost no real time.
``run --once`` goes through the real command line. The shared helpers (rules, events,
config, webhook receiver, expected alerts) are in tests/support/service.py.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from alerting import cli
from alerting.alert import Alert
from alerting.clock import ManualClock, SystemClock
from alerting.config import load_config
from alerting.durations import td_ns
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.errors import StoreError
from alerting.health import Health
from alerting.metrics import Metrics
from alerting.notify.pipeline import EnqueueResult, Notifier
from alerting.service import Service, StateLock
from alerting.simulator.di_api import DIApiServer
from alerting.source.open import open_source
from alerting.store import Store
from tests.support.service import (
    API_KEY,
    FAILED_LOGIN_RULE,
    NS,
    START,
    WEBHOOK_SECRET,
    Lines,
    Receiver,
    expected_fingerprints,
    http_get,
    login,
    metric,
    open_service,
    run_alerting,
    write_config,
    write_rules,
)

# --------------------------------------------------------------------------- tests


@pytest.mark.usefixtures("restore_logging")
def test_run_once_delivers_signed_alerts_to_a_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    events = [login(now - 1800 + i * 60, "alice") for i in range(3)]  # a burst of three
    events += [login(now - 900, "bob"), login(now - 600, "carol", success=True)]
    expected = expected_fingerprints(write_rules(tmp_path), events)
    assert len(expected) == 5  # 4 failed logins + 1 burst; carol's success is quiet

    with (
        DIApiServer(events, api_key=API_KEY, clock=SystemClock()) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        alerts = hook.alerts()
        assert {a["fingerprint"] for a in alerts} == expected
        assert len(alerts) == len(expected)
        hook.verify_signatures()
        burst = next(a for a in alerts if a["rule"] == "test-failed-burst")
        assert burst["severity"] == "critical"
        assert burst["count"] == 3
        assert burst["group"] == {"initiated_by.username": "alice"}
        assert burst["event_ids"] == [e["id"] for e in events[:3]]
        # A second run reads the overlap again and raises nothing twice.
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        assert len(hook.alerts()) == len(expected)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert API_KEY not in err
    assert WEBHOOK_SECRET not in err
    polls = [json.loads(line) for line in err.splitlines() if '"poll ok"' in line]
    assert [(p["new"], p["alerts"]) for p in polls] == [(5, 5), (0, 0)]


def test_outage_then_recovery_loses_nothing_and_health_follows(
    tmp_path: Path, clock: ManualClock
) -> None:
    events = [login(START - 3000 + i * 30, "alice") for i in range(3)]
    events += [login(START - 2000 + i * 200, f"user{i}") for i in range(6)]
    expected = expected_fingerprints(write_rules(tmp_path), events)
    with (
        DIApiServer(events, api_key=API_KEY, clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(
            tmp_path, base_url=api.url, webhook_url=hook.url, health_max_age="150s"
        )
        service = open_service(config, clock)
        try:
            health = f"http://127.0.0.1:{service.port}/healthz"
            assert json.loads(http_get(health)[1])["status"] == "starting"
            # Three polls in a row fail: every attempt (1 + 1 retry) gets a 503.
            api.faults.fail_next = [503] * 6
            for _ in range(3):
                outcome = service.poll_once()
                assert not outcome.ok
                assert not outcome.fatal
                assert "503" in (outcome.error or "")
                clock.advance(60)
            code, body = http_get(health)
            assert code == 503
            reason = json.loads(body)["reason"]
            assert "no successful poll" in reason
            assert "503" in reason
            assert service.db.get_cursor("jumpcloud") is None  # nothing moved

            outcome = service.poll_once()  # the API is back
            assert outcome.ok
            assert outcome.new == len(events)
            assert http_get(health)[0] == 200
            service.deliver_until_idle()
            assert set(hook.fingerprints()) == expected
            assert len(hook.fingerprints()) == len(expected)

            code, text = http_get(f"http://127.0.0.1:{service.port}/metrics")
            assert code == 200
            assert metric(text, "jc_alerting_events_read_total") == len(events)
            assert metric(text, 'jc_alerting_poll_errors_total{kind="unavailable"}') == 3
            assert metric(text, "jc_alerting_api_retries_total") == 3  # one per failed poll
            assert metric(text, 'jc_alerting_notifications_sent_total{channel="siem"}') == len(
                expected
            )
            assert metric(text, 'jc_alerting_alerts_raised_total{rule="test-failed-burst"}') == 1
            assert metric(text, 'jc_alerting_rule_matches_total{rule="test-failed-login"}') == 9
            assert metric(text, "jc_alerting_outbox_pending") == 0
            # lag 0s: the cursor is now; the lag grows while no poll runs.
            assert metric(text, "jc_alerting_lag_seconds") == pytest.approx(0, abs=1e-3)
            assert metric(text, "jc_alerting_last_poll_success_timestamp_seconds") == clock.now
            clock.advance(30)
            text = http_get(f"http://127.0.0.1:{service.port}/metrics")[1]
            assert metric(text, "jc_alerting_lag_seconds") == pytest.approx(30, abs=1e-3)
        finally:
            service.close()


def test_late_events_inside_the_overlap_still_alert_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    early = [login(START - 400, "carol"), login(START - 300, "carol")]
    with (
        DIApiServer(early, api_key=API_KEY, clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        try:
            assert service.poll_once().alerts == 2
            clock.advance(60)
            # Indexed late: its timestamp is already behind the cursor, inside the overlap.
            late = login(START - 30, "carol")
            api.add_events([late])
            outcome = service.poll_once()
            # Re-read from cursor - overlap (START - 300): carol's second event comes back as a
            # duplicate and is dropped; the first is outside the overlap.
            assert (outcome.new, outcome.duplicates, outcome.alerts) == (1, 1, 2)
            service.deliver_until_idle()
            rules = sorted(a["rule"] for a in hook.alerts())
            assert rules == ["test-failed-burst"] + ["test-failed-login"] * 3
            burst = next(a for a in hook.alerts() if a["rule"] == "test-failed-burst")
            assert burst["event_ids"][-1] == late["id"]
        finally:
            service.close()


TRAVEL_RULE = """\
id: test-travel
title: Impossible travel (no realert, so every pair is an alert)
severity: high
detection:
  login: {event_type: user_login_attempt, success: true}
  condition: login
travel: {by: initiated_by.username, max_speed_kmh: 1000, min_distance_km: 500, within: 24h}
"""


def located_login(at: float, place: tuple[float, float]) -> dict[str, Any]:
    event = login(at, "dana", success=True)
    event["geoip"] = {"country_code": "XX", "latitude": place[0], "longitude": place[1]}
    return event


@pytest.mark.usefixtures("restore_logging")
def test_configured_overlap_is_the_engines_late_event_tolerance(
    tmp_path: Path, clock: ManualClock
) -> None:
    # Paris, Paris, (Sydney), Paris, Paris: the Sydney login is indexed 12 minutes late.
    paris, sydney = (48.8566, 2.3522), (-33.8688, 151.2093)
    last = START - 60
    on_time = [located_login(last - m * 60, paris) for m in (18, 14, 8, 0)]
    with (
        DIApiServer(on_time, api_key=API_KEY, clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url, overlap="15m")
        (tmp_path / "rules" / "travel.yml").write_text(TRAVEL_RULE)
        service = open_service(config, clock)
        try:
            assert service.engine.tolerance_ns == 15 * 60 * NS
            assert service.poll_once().alerts == 0
            clock.advance(60)
            late = located_login(last - 12 * 60, sydney)
            api.add_events([late])
            # Judged against the Paris login before it and the one after it: two alerts,
            # as in order (with the old fixed 5-minute tolerance, only one).
            assert service.poll_once().alerts == 2
            service.deliver_until_idle()
            travel = [a for a in hook.alerts() if a["rule"] == "test-travel"]
            assert [late["id"] in a["event_ids"] for a in travel] == [True, True]
        finally:
            service.close()


def test_rejected_key_turns_health_red_and_backs_off(tmp_path: Path, clock: ManualClock) -> None:
    with (
        DIApiServer([], api_key="the-right-key-0000000000000000000000000", clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        try:
            service._poll_job()
            code, body = http_get(f"http://127.0.0.1:{service.port}/healthz")
            assert code == 503
            reason = json.loads(body)["reason"]
            assert "rejected the API key (401" in reason
            assert f"(request id {api.requests[0].request_id})" in reason
            assert len(api.requests) == 1  # a 401 is never retried
            for _ in range(9):  # no hot loop: the next nine intervals do not poll
                clock.advance(60)
                service._poll_job()
            assert len(api.requests) == 1
            clock.advance(60)
            service._poll_job()
            assert len(api.requests) == 2
        finally:
            service.close()


class DiskFullOnce(Notifier):
    """A notifier whose first enqueue fails as a full disk would, inside the transaction."""

    failures = 1

    def enqueue(self, alerts: Sequence[Alert]) -> EnqueueResult:
        if self.failures:
            self.failures -= 1
            raise StoreError("state/alerting.db: database or disk is full")
        return super().enqueue(alerts)


def service_with_notifier(
    config_path: Path, clock: ManualClock, notifier_class: type[Notifier]
) -> Service:
    """A ``Service`` assembled from its parts, with ``notifier_class`` as the notifier."""
    config = load_config(config_path)
    store = Store(config.state.path)
    rules = list(load_rules([Path(p) for p in config.rules.paths]))
    notify = config.notify_settings()
    notifier = notifier_class(
        channels=notify.channels,
        routes=notify.routes,
        silences=notify.silences,
        delivery=notify.delivery,
        templates_dir=notify.templates_dir,
        store=store,
        clock=clock,
    )
    opened = open_source(config.source, store, clock)
    return Service(
        config=config,
        source=opened.source,
        engine_factory=lambda: Engine(
            rules, store=store, tolerance_ns=td_ns(config.source.overlap)
        ),
        notifier=notifier,
        store=store,
        health=Health(clock, config.health_max_age.total_seconds()),
        metrics=Metrics(),
        clock=clock,
    )


def test_a_failed_commit_is_forgotten_and_the_next_poll_raises_its_alerts(
    tmp_path: Path, clock: ManualClock
) -> None:
    events = [login(START - 100 + i * 10, "erin") for i in range(3)]
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        rules = tmp_path / "rules"
        (rules / "failed-login.yml").write_text(FAILED_LOGIN_RULE + "realert: 30m\n")
        expected = expected_fingerprints(rules, events)
        assert len(expected) == 2  # one failed login (realert holds the rest) + the burst
        service = service_with_notifier(config, clock, DiskFullOnce)
        service.open()
        try:
            with pytest.raises(StoreError):
                service.poll_once()
            assert service.db.get_cursor("jumpcloud") is None
            # The engine forgot the batch (realert, windows), so the retry raises the same
            # alerts instead of holding them back as already sent.
            outcome = service.poll_once()
            assert outcome.alerts == 2
            service.deliver_until_idle()
            assert sorted(hook.fingerprints()) == sorted(expected)
        finally:
            service.close()


@pytest.mark.usefixtures("restore_logging")
def test_second_instance_on_the_same_state_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path, base_url="http://127.0.0.1:9", webhook_url="http://127.0.0.1:9/"
    )
    first = StateLock(str(tmp_path / "state" / "alerting.db"))
    first.acquire()
    try:
        assert cli.main(["run", "--once", "--config", str(config)]) == 1
    finally:
        first.release()
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "another `alerting run`" in err
    assert "alerting.db" in err
    # The first holder's state was not touched (the database was never opened).
    assert not (tmp_path / "state" / "alerting.db").exists()


def test_closed_service_releases_the_lock_and_keeps_state(
    tmp_path: Path, clock: ManualClock
) -> None:
    events = [login(START - 100, "dave")]
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        service.poll_once()
        service.close()
        service.close()  # twice is harmless
        again = open_service(config, clock)  # the lock was released
        try:
            assert again.db.get_cursor("jumpcloud") == round(START * NS)
            assert again.db.outbox_counts()["pending"] == 1
        finally:
            again.close()
    store = Store(tmp_path / "state" / "alerting.db")
    try:
        assert store.outbox_counts()["pending"] == 1
    finally:
        store.close()


# --------------------------------------------------------------------------- the demo


REPO = Path(__file__).resolve().parents[2]


def _demo_copy(tmp_path: Path, *, log_format: str) -> Path:
    """The shipped config, rules and templates in a temp dir, on a free health port."""
    for name in ("rules", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    text = (REPO / "config.yaml").read_text()
    assert "listen: 127.0.0.1:9108" in text
    text = text.replace("listen: 127.0.0.1:9108", "listen: 127.0.0.1:0")
    text = re.sub(r"(?m)^(\s*format:) \w+", rf"\1 {log_format}", text)
    config = tmp_path / "config.yaml"
    config.write_text(text)
    return config


@pytest.mark.slow
def test_shipped_config_once_prints_alerts_to_the_console(tmp_path: Path) -> None:
    config = _demo_copy(tmp_path, log_format="json")
    proc = run_alerting(config, "--once")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    # The console channel prints one block per alert, each with its fingerprint; the
    # file channel got the same alerts as JSON lines.
    printed = re.findall(r"fingerprint: ([0-9a-f]+)", out)
    assert printed
    stored = [
        json.loads(line)["fingerprint"]
        for line in (tmp_path / "state" / "alerts.jsonl").read_text().splitlines()
    ]
    assert sorted(printed) == sorted(stored)
    assert len(set(printed)) == len(printed)
    assert (tmp_path / "state" / "alerting.db").exists()


@pytest.mark.slow
def test_demo_shows_banner_then_alerts_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = _demo_copy(tmp_path, log_format="text")
    proc = run_alerting(config)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        health = err.wait_for(r"health: (http://127\.0\.0\.1:\d+)/healthz", 20)
        assert health is not None, err.text()
        assert err.wait_for(r"set source\.kind: jumpcloud .* JUMPCLOUD_API_KEY", 1)
        assert out.wait_for(r"fingerprint: [0-9a-f]+", 20), err.text()
        code, body = http_get(health.group(1) + "/healthz")
        assert (code, json.loads(body)["status"]) == (200, "ok")
        code, text = http_get(health.group(1) + "/metrics")
        assert metric(text, "jc_alerting_events_read_total") > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        proc.wait(10)
    assert time.monotonic() - stopped < 5
    assert proc.returncode == 0
    log = err.text()
    assert "Traceback" not in log
    assert "stopped" in log

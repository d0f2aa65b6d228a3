"""/healthz says whether detection works, and why not; /metrics exposes the service's numbers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from alerting.clock import ManualClock
from alerting.errors import AlertingError
from alerting.health import Health, HealthServer
from alerting.metrics import Metrics


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def served(clock: ManualClock) -> Iterator[tuple[Health, Metrics, str]]:
    health = Health(clock, max_age_s=180)
    metrics = Metrics()
    server = HealthServer("127.0.0.1:0", health, metrics)
    server.start()
    try:
        assert server.port > 0
        yield health, metrics, server.url
    finally:
        server.stop()


def test_healthz_goes_starting_ok_stale_ok(
    served: tuple[Health, Metrics, str], clock: ManualClock
) -> None:
    health, _, url = served
    code, ctype, body = _get(url + "/healthz")
    assert (code, json.loads(body)["status"]) == (200, "starting")
    assert ctype == "application/json"

    clock.advance(30)
    health.poll_succeeded()
    clock.advance(60)
    code, _, body = _get(url + "/healthz")
    data = json.loads(body)
    assert code == 200
    assert data["status"] == "ok"
    assert data["age_seconds"] == 60
    assert data["last_poll_success"] == "2027-01-15T08:00:30Z"

    # The API goes away: one failure is not an emergency, a stale cursor is.
    health.poll_failed("JumpCloud API unavailable (503) (request id abc-123)", fatal=False)
    assert _get(url + "/healthz")[0] == 200
    clock.advance(121)  # 181 s since the last success > 180 s
    code, _, body = _get(url + "/healthz")
    data = json.loads(body)
    assert code == 503
    assert data["status"] == "stale"
    assert "181s ago" in data["reason"]
    assert "request id abc-123" in data["reason"]

    health.poll_succeeded()
    code, _, body = _get(url + "/healthz")
    assert (code, json.loads(body)["status"]) == (200, "ok")
    assert "last_error" not in json.loads(body)


def test_rejected_key_is_unhealthy_at_once(served: tuple[Health, Metrics, str]) -> None:
    health, _, url = served
    health.poll_succeeded()
    health.poll_failed("JumpCloud rejected the API key (401)", fatal=True)
    code, _, body = _get(url + "/healthz")
    assert code == 503
    assert json.loads(body)["reason"] == "JumpCloud rejected the API key (401)"


def test_no_first_poll_within_the_grace_period_is_unhealthy(clock: ManualClock) -> None:
    health = Health(clock, max_age_s=90)
    clock.advance(89)
    assert health.report().body["status"] == "starting"
    health.poll_failed("cannot reach https://api.jumpcloud.com (timed out)", fatal=False)
    clock.advance(2)
    report = health.report()
    assert report.status_code == 503
    assert "no successful poll since the start 91s ago" in report.body["reason"]
    assert "timed out" in report.body["reason"]


def test_stopping_is_reported(clock: ManualClock) -> None:
    health = Health(clock, max_age_s=90)
    health.poll_succeeded()
    health.stopping()
    assert health.report().status_code == 503
    assert health.report().body["status"] == "stopping"


def test_metrics_endpoint_has_every_metric(served: tuple[Health, Metrics, str]) -> None:
    _, metrics, url = served
    metrics.record_poll(
        new=10, duplicates=2, skipped=1, retries=3, duration_s=0.4, success_at=1_800_000_000.0
    )
    metrics.record_matches({"failed-login-burst": 7})
    metrics.record_alerts(["failed-login-burst", "failed-login-burst"])
    metrics.record_deliveries({"siem": 2}, {"siem": 1}, dead=1)
    metrics.set_outbox(pending=4, dead=1, held=2)
    metrics.track_lag(lambda: 125.0)
    code, ctype, text = _get(url + "/metrics")
    assert code == 200
    assert ctype.startswith("text/plain")
    expected = {
        "jc_alerting_events_read_total": 12.0,
        "jc_alerting_events_skipped_total": 1.0,
        'jc_alerting_rule_matches_total{rule="failed-login-burst"}': 7.0,
        'jc_alerting_alerts_raised_total{rule="failed-login-burst"}': 2.0,
        'jc_alerting_notifications_sent_total{channel="siem"}': 2.0,
        'jc_alerting_notifications_failed_total{channel="siem"}': 1.0,
        "jc_alerting_notifications_dead_total": 1.0,
        "jc_alerting_poll_duration_seconds_count": 1.0,
        'jc_alerting_poll_duration_seconds_bucket{le="0.5"}': 1.0,
        'jc_alerting_poll_duration_seconds_bucket{le="0.25"}': 0.0,
        "jc_alerting_lag_seconds": 125.0,
        "jc_alerting_outbox_pending": 4.0,
        "jc_alerting_outbox_held": 2.0,
        "jc_alerting_api_retries_total": 3.0,
        "jc_alerting_last_poll_success_timestamp_seconds": 1.8e9,
    }
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    for name, value in expected.items():
        assert samples.get(name) == value, name
    assert any(s.startswith("jc_alerting_build_info{") for s in samples)


def test_each_service_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.record_alerts(["r"])
    assert b'alerts_raised_total{rule="r"}' in a.exposition()
    assert b'alerts_raised_total{rule="r"}' not in b.exposition()


def test_unknown_path_is_404(served: tuple[Health, Metrics, str]) -> None:
    assert _get(served[2] + "/")[0] == 404


def test_port_in_use_is_one_clear_error(clock: ManualClock) -> None:
    first = HealthServer("127.0.0.1:0", Health(clock, 60), Metrics())
    try:
        with pytest.raises(AlertingError, match=r"server\.listen 127\.0\.0\.1:\d+: cannot listen"):
            HealthServer(f"127.0.0.1:{first.port}", Health(clock, 60), Metrics())
    finally:
        first.stop()

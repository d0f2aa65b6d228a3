"""Webhook over httpx to a loopback receiver: signature, body contract, failures."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.errors import AlertingError
from alerting.notify.pipeline import Notifier
from alerting.notify.settings import DeliveryConfig
from alerting.store import Store
from tests.support.notify import (
    HttpReceiver,
    Reply,
    TlsCert,
    closed_port,
    delivery,
    make_alert,
    make_notifier,
    states,
)

SECRET = "whsec-test-0123456789"


def hook(
    store: Store,
    clock: ManualClock,
    url: str,
    *,
    delivery_config: DeliveryConfig | None = None,
    **cfg: Any,
) -> Notifier:
    channel = {"type": "webhook", "url": url, "timeout": "2s", **cfg}
    return make_notifier(store, clock, {"siem": channel}, delivery_config=delivery_config)


def test_body_is_the_alert_json_and_the_signature_verifies(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    alert = make_alert(username='<script>"x"\\</script>')
    notifier = hook(
        store, clock, receiver.url + "/hook", secret=SECRET, headers={"X-Team": "secops"}
    )
    notifier.enqueue([alert])
    assert notifier.deliver_due().sent == 1
    (req,) = receiver.requests
    assert req.path == "/hook"
    assert json.loads(req.body) == alert.to_dict()
    assert req.header("Content-Type") == "application/json"
    assert req.header("X-Team") == "secops"
    assert req.header("X-Alerting-Fingerprint") == alert.fingerprint
    # The receiver's check: HMAC-SHA256 over the exact bytes received.
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert req.header("X-Alerting-Signature") == expected
    assert not hmac.compare_digest(
        expected, "sha256=" + hmac.new(b"other", req.body, hashlib.sha256).hexdigest()
    )


def test_no_secret_no_signature(store: Store, clock: ManualClock, receiver: HttpReceiver) -> None:
    notifier = hook(store, clock, receiver.url + "/hook")
    notifier.enqueue([make_alert()])
    notifier.deliver_due()
    assert receiver.requests[0].header("X-Alerting-Signature") is None


def test_each_alert_is_its_own_post_even_in_a_burst(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = hook(
        store, clock, receiver.url + "/hook", delivery_config=delivery(group_wait="30s")
    )
    alerts = [make_alert(username=f"u{i}") for i in range(3)]
    notifier.enqueue(alerts)
    assert notifier.deliver_due().sent == 3
    assert [json.loads(r.body)["fingerprint"] for r in receiver.requests] == [
        a.fingerprint for a in alerts
    ]


def test_client_errors_dead_letter_at_once(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.default = Reply(403, "forbidden: bad signature")
    notifier = hook(store, clock, receiver.url + "/hook", secret=SECRET)
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert row.last_error == "webhook returned 403: forbidden: bad signature"
    assert len(receiver.requests) == 1


def test_429_postpones_by_retry_after(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.replies = [Reply(429, "slow down", {"Retry-After": "120"})]
    notifier = hook(store, clock, receiver.url + "/hook")
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().postponed == 1
    (row,) = store.list_deliveries(("pending",))
    assert (row.attempts, row.next_attempt_at) == (0, clock.time() + 120)
    clock.advance(120)
    assert notifier.deliver_due().sent == 1


def test_5xx_retried_with_growing_backoff_then_delivered(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.replies = [Reply(500, "a"), Reply(502, "b"), Reply(503, "c")]
    notifier = hook(store, clock, receiver.url + "/hook", delivery_config=delivery(max_attempts=5))
    notifier.enqueue([make_alert()])
    waits = []
    for _ in range(3):
        assert notifier.deliver_due().retried == 1
        (row,) = store.list_deliveries(("pending",))
        waits.append(row.next_attempt_at - clock.time())
        clock.advance(row.next_attempt_at - clock.time())
    # Equal jitter: attempt n waits between half and all of 10s * 2**n.
    for n, wait in enumerate(waits):
        assert 10 * 2**n / 2 <= wait <= 10 * 2**n
    assert notifier.deliver_due().sent == 1
    assert len(receiver.requests) == 4


def test_backoff_is_capped_by_max_backoff(store: Store, clock: ManualClock) -> None:
    notifier = hook(store, clock, "http://127.0.0.1:9/x")
    assert all(30 <= notifier.backoff(n) <= 60 for n in range(3, 40))


def test_timeouts_are_retried_then_dead_lettered_without_losing_the_row(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.default = Reply(hang=True)
    notifier = hook(store, clock, receiver.url + "/hook", timeout="200ms")
    notifier.enqueue([make_alert()])
    results = []
    for _ in range(3):
        r = notifier.deliver_due()
        results.append((r.retried, r.dead))
        clock.advance(60)
    assert results == [(1, 0), (1, 0), (0, 1)]
    assert states(store) == {"pending": 0, "sent": 0, "dead": 1, "held": 0}
    (row,) = store.list_deliveries(("dead",))
    assert row.last_error == "webhook timed out after 0.2s"


def test_receiver_down_then_up(store: Store, clock: ManualClock, receiver: HttpReceiver) -> None:
    down = hook(store, clock, f"http://127.0.0.1:{closed_port()}/hook")
    down.enqueue([make_alert()])
    assert down.deliver_due().retried == 1
    # The operator fixes the URL and restarts: the same row is delivered.
    down.close()
    up = hook(store, clock, receiver.url + "/hook")
    clock.advance(10)
    assert up.deliver_due().sent == 1
    assert states(store) == {"pending": 0, "sent": 1, "dead": 0, "held": 0}


def test_https_with_ca_file_keeps_verification_on(
    store: Store, clock: ManualClock, tls_cert: TlsCert
) -> None:
    server = HttpReceiver(Reply(204, ""), tls=tls_cert)
    try:
        url = server.url + "/hook"
        trusted = hook(store, clock, url, ca_file=str(tls_cert.cert))
        trusted.enqueue([make_alert()])
        assert trusted.deliver_due().sent == 1
        assert len(server.requests) == 1
        untrusted = hook(store, clock, url)
        untrusted.enqueue([make_alert()])
        assert untrusted.deliver_due().dead == 1
        assert len(server.requests) == 1
        (row,) = store.list_deliveries(("dead",))
        assert "CERTIFICATE_VERIFY_FAILED" in (row.last_error or "")
        assert "set ca_file" in (row.last_error or "")
    finally:
        server.close()


def test_unreadable_ca_file_is_a_one_line_startup_error(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    with pytest.raises(AlertingError, match=r"channel 'siem': cannot load ca_file .*missing\.pem"):
        hook(store, clock, "https://127.0.0.1:1/hook", ca_file=str(tmp_path / "missing.pem"))

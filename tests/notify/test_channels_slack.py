"""Slack through slack-sdk against a real loopback receiver (webhook URL and Web API)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.notify.pipeline import Notifier
from alerting.notify.render import MessageBuilder, Renderer
from alerting.store import Store
from tests.support.notify import (
    PROJECT_TEMPLATES,
    HttpReceiver,
    Reply,
    closed_port,
    delivery,
    make_alert,
    make_notifier,
    states,
)

# Fixtures shared by the notify tests (tests/conftest.py is not ours to extend).

HOOK_PATH = "/services/T0001/B0001/sEcReTwEbHoOkPaTh"
TOKEN = "xoxb-test-secret-token"


def webhook_notifier(store: Store, clock: ManualClock, url: str, **kwargs: Any) -> Notifier:
    return make_notifier(store, clock, {"oncall": {"type": "slack", "webhook_url": url}}, **kwargs)


def bot_notifier(store: Store, clock: ManualClock, base_url: str, **kwargs: Any) -> Notifier:
    cfg = {"type": "slack", "token": TOKEN, "channel": "#security", "base_url": base_url}
    return make_notifier(store, clock, {"oncall": cfg}, **kwargs)


def test_webhook_receives_the_block_kit_payload(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    alert = make_alert(username="alice")
    notifier = webhook_notifier(store, clock, receiver.url + HOOK_PATH)
    assert notifier.enqueue([alert]).enqueued == 1
    result = notifier.deliver_due()
    assert (result.sent, result.retried, result.dead) == (1, 0, 0)
    (req,) = receiver.requests
    assert req.path == HOOK_PATH
    assert req.header("Content-Type") == "application/json;charset=utf-8"
    body = req.json()
    expected = MessageBuilder(Renderer(PROJECT_TEMPLATES)).slack([alert])
    assert body == {
        "text": expected.text,
        "blocks": expected.blocks,
        "attachments": expected.attachments,
    }
    assert body["blocks"][0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "emoji": True,
            "text": ":red_circle: [HIGH] Failed login burst",
        },
    }
    assert states(store) == {"pending": 0, "sent": 1, "dead": 0, "held": 0}


def test_bot_token_posts_to_chat_post_message(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.default = Reply(
        200, json.dumps({"ok": True, "ts": "1.2"}), {"Content-Type": "application/json"}
    )
    notifier = bot_notifier(store, clock, receiver.url + "/api/")
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().sent == 1
    (req,) = receiver.requests
    assert req.path == "/api/chat.postMessage"
    assert req.header("Authorization") == f"Bearer {TOKEN}"
    body = req.json()
    assert body["channel"] == "#security"
    assert body["text"].startswith(":red_circle: [HIGH] Failed login burst")
    assert body["blocks"][0]["type"] == "header"


@pytest.mark.parametrize(
    "username", ["<!channel>", "<@U0123>", "<https://evil.example|click>", "@here"]
)
def test_event_text_never_pings_through_slack(
    store: Store, clock: ManualClock, receiver: HttpReceiver, username: str
) -> None:
    notifier = webhook_notifier(store, clock, receiver.url + HOOK_PATH)
    notifier.enqueue([make_alert(username=username, summary=f"failed logins for {username}")])
    notifier.deliver_due()
    raw = receiver.requests[0].body.decode()
    decoded = json.dumps(json.loads(raw), ensure_ascii=False)
    assert username not in decoded
    assert "<" not in decoded
    assert ">" not in decoded


def test_webhook_429_waits_for_retry_after_without_burning_attempts(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.replies = [Reply(429, "rate_limited", {"Retry-After": "30"})]
    notifier = webhook_notifier(store, clock, receiver.url + HOOK_PATH)
    notifier.enqueue([make_alert(), make_alert(rule="other-rule")])
    first = notifier.deliver_due()
    # The second delivery to the same channel is held too instead of hammering Slack.
    assert (first.sent, first.postponed, len(receiver.requests)) == (0, 2, 1)
    rows = store.list_deliveries(("pending",))
    assert [r.attempts for r in rows] == [0, 0]
    assert {r.next_attempt_at for r in rows} == {clock.time() + 30}
    clock.advance(29)
    assert notifier.deliver_due().sent == 0
    assert len(receiver.requests) == 1
    clock.advance(1)
    assert notifier.deliver_due().sent == 2
    assert states(store) == {"pending": 0, "sent": 2, "dead": 0, "held": 0}


def test_web_api_ratelimited_honours_retry_after(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    ok = Reply(200, json.dumps({"ok": True}), {"Content-Type": "application/json"})
    receiver.default = ok
    receiver.replies = [
        Reply(
            429,
            json.dumps({"ok": False, "error": "ratelimited"}),
            {"Retry-After": "7", "Content-Type": "application/json"},
        )
    ]
    notifier = bot_notifier(store, clock, receiver.url + "/api/")
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().postponed == 1
    (row,) = store.list_deliveries(("pending",))
    assert row.next_attempt_at == clock.time() + 7
    assert "retry after 7s" in (row.last_error or "")
    clock.advance(7)
    assert notifier.deliver_due().sent == 1


def test_server_errors_are_retried_with_backoff_then_delivered(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.replies = [Reply(500, "oops"), Reply(503, "busy")]
    notifier = webhook_notifier(store, clock, receiver.url + HOOK_PATH)
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().retried == 1
    (row,) = store.list_deliveries(("pending",))
    # Backoff after the first failure: initial 10s with equal jitter -> 5..10s.
    assert 5 <= row.next_attempt_at - clock.time() <= 10
    assert row.last_error == "Slack webhook returned 500: oops"
    clock.advance(10)
    assert notifier.deliver_due().retried == 1
    clock.advance(20)
    assert notifier.deliver_due().sent == 1
    assert len(receiver.requests) == 3
    assert states(store) == {"pending": 0, "sent": 1, "dead": 0, "held": 0}


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "not_in_channel"])
def test_web_api_configuration_errors_dead_letter_at_once(
    store: Store,
    clock: ManualClock,
    receiver: HttpReceiver,
    error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default = Reply(
        200, json.dumps({"ok": False, "error": error}), {"Content-Type": "application/json"}
    )
    notifier = bot_notifier(store, clock, receiver.url + "/api/")
    notifier.enqueue([make_alert()])
    with caplog.at_level(logging.DEBUG):
        assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert row.attempts == 1
    assert error in (row.last_error or "")
    assert len(receiver.requests) == 1
    assert TOKEN not in caplog.text
    assert f"delivery {row.id}" in caplog.text


def test_webhook_no_service_is_permanent_and_url_never_logged(
    store: Store, clock: ManualClock, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.default = Reply(404, "no_service")
    notifier = webhook_notifier(store, clock, receiver.url + HOOK_PATH)
    notifier.enqueue([make_alert()])
    with caplog.at_level(logging.DEBUG):
        assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert row.last_error is not None
    assert "no_service" in row.last_error
    assert "create a new webhook URL" in row.last_error
    assert "sEcReTwEbHoOkPaTh" not in caplog.text
    assert "sEcReTwEbHoOkPaTh" not in row.last_error


def test_unreachable_slack_is_dead_lettered_after_max_attempts(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}{HOOK_PATH}"
    notifier = webhook_notifier(store, clock, url)
    notifier.enqueue([make_alert()])
    outcomes = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            r = notifier.deliver_due()
            outcomes.append((r.retried, r.dead))
            clock.advance(60)
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    assert states(store) == {"pending": 0, "sent": 0, "dead": 1, "held": 0}
    (row,) = store.list_deliveries(("dead",))
    assert row.attempts == 3
    assert "cannot reach Slack" in (row.last_error or "")
    assert "sEcReTwEbHoOkPaTh" not in caplog.text


def test_a_burst_goes_out_as_one_message(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    notifier = webhook_notifier(
        store, clock, receiver.url + HOOK_PATH, delivery_config=delivery(group_wait="30s")
    )
    burst = [make_alert(username=f"user{i}") for i in range(5)]
    notifier.enqueue(burst[:3])
    clock.advance(10)
    notifier.enqueue([*burst[3:], make_alert(rule="other-rule")])
    early = notifier.deliver_due()
    assert (early.sent, early.waiting, len(receiver.requests)) == (0, 6, 0)
    clock.advance(20)  # the first burst's group_wait is over; other-rule's is not
    result = notifier.deliver_due()
    assert (result.sent, result.grouped, result.messages) == (5, 5, 1)
    (req,) = receiver.requests
    body = req.json()
    assert body["blocks"][0]["text"]["text"] == ":red_circle: 5 alerts: Failed login burst"
    for i in range(5):
        assert f"user{i}" in body["blocks"][1]["text"]["text"]
    clock.advance(10)
    assert notifier.deliver_due().sent == 1
    assert states(store) == {"pending": 0, "sent": 6, "dead": 0, "held": 0}


def test_a_failed_burst_is_retried_as_one_message(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    receiver.replies = [Reply(500, "down")]
    notifier = webhook_notifier(
        store, clock, receiver.url + HOOK_PATH, delivery_config=delivery(group_wait="5s")
    )
    notifier.enqueue([make_alert(username=f"user{i}") for i in range(4)])
    clock.advance(5)
    assert notifier.deliver_due().retried == 4
    assert len({d.next_attempt_at for d in store.list_deliveries(("pending",))}) == 1
    clock.advance(10)
    result = notifier.deliver_due()
    assert (result.sent, result.messages) == (4, 1)
    assert len(receiver.requests) == 2
    assert (
        receiver.requests[1]
        .json()["blocks"][0]["text"]["text"]
        .endswith("4 alerts: Failed login burst")
    )

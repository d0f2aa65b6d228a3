"""A channel's 429 + Retry-After holds that channel, and only it, until the wait is over.

The hold is stored with the outbox: the next delivery pass, the alerts the next poll
raises and a restarted service all wait for it, while the other channels go on.
"""

from __future__ import annotations

from pathlib import Path

from alerting.clock import ManualClock
from alerting.notify.pipeline import Notifier
from alerting.store import Store
from tests.support.notify import HttpReceiver, Reply, make_alert, make_notifier, states

HOOK_PATH = "/services/T0001/B0001/sEcReTwEbHoOkPaTh"


def _notifier(
    store: Store, clock: ManualClock, slack: HttpReceiver, hook: HttpReceiver
) -> Notifier:
    return make_notifier(
        store,
        clock,
        {
            "oncall": {"type": "slack", "webhook_url": slack.url + HOOK_PATH},
            "siem": {"type": "webhook", "url": hook.url + "/hook", "timeout": "2s"},
        },
    )


def test_a_429_holds_its_channel_across_passes_and_new_alerts(
    store: Store, clock: ManualClock, receiver: HttpReceiver
) -> None:
    hook = HttpReceiver()
    try:
        receiver.replies = [Reply(429, "rate_limited", {"Retry-After": "120"})]
        notifier = _notifier(store, clock, receiver, hook)
        notifier.enqueue([make_alert(username="alice")])
        first = notifier.deliver_due()
        assert (first.sent, first.postponed) == (1, 1)  # the webhook went, Slack is held
        assert (len(receiver.requests), len(hook.requests)) == (1, 1)

        # The next poll raises a new alert a second later: Slack still waits, the
        # webhook does not.
        clock.advance(1)
        notifier.enqueue([make_alert(username="bob")])
        second = notifier.deliver_due()
        assert (second.sent, second.postponed) == (1, 1)
        assert (len(receiver.requests), len(hook.requests)) == (1, 2)
        held = [d for d in store.list_deliveries(("pending",)) if d.channel == "oncall"]
        assert [(d.attempts, d.next_attempt_at) for d in held] == [
            (0, clock.time() - 1 + 120),
            (0, clock.time() - 1 + 120),
        ]
        assert all(d.last_error and "rate limited" in d.last_error for d in held)

        clock.advance(118)  # one second before the Retry-After ends
        assert notifier.deliver_due().sent == 0
        assert len(receiver.requests) == 1
        clock.advance(1)
        assert notifier.deliver_due().sent == 2
        assert states(store) == {"pending": 0, "sent": 4, "dead": 0, "held": 0}
    finally:
        hook.close()


def test_the_hold_survives_a_restart(
    tmp_path: Path, clock: ManualClock, receiver: HttpReceiver
) -> None:
    hook = HttpReceiver()
    path = tmp_path / "restart.db"
    try:
        receiver.replies = [Reply(429, "rate_limited", {"Retry-After": "300"})]
        store = Store(path)
        notifier = _notifier(store, clock, receiver, hook)
        notifier.enqueue([make_alert(username="alice")])
        assert notifier.deliver_due().postponed == 1
        notifier.close()
        store.close()

        clock.advance(60)  # the service restarts within the wait
        store = Store(path)
        notifier = _notifier(store, clock, receiver, hook)
        notifier.enqueue([make_alert(username="carol")])
        result = notifier.deliver_due()
        assert (result.sent, result.postponed) == (1, 1)  # only the webhook's new one
        assert len(receiver.requests) == 1
        clock.advance(240)
        assert notifier.deliver_due().sent == 2
        assert len(receiver.requests) == 3
        assert store.channel_holds(clock.time()) == {}  # the ended hold is gone
        notifier.close()
        store.close()
    finally:
        hook.close()

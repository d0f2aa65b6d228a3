"""Delivery: one pass over what is due in the outbox, and ``--once``'s drain until idle."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from alerting.clock import Clock
from alerting.metrics import Metrics
from alerting.notify.pipeline import Notifier
from alerting.store import Store

__all__ = ["ONCE_DELIVERY_ROUNDS", "DeliveryCycle", "DeliveryOutcome", "update_outbox_gauges"]

log = logging.getLogger("alerting.service")

# ``--once`` delivers until nothing is due; this bounds it against a misbehaving notifier.
ONCE_DELIVERY_ROUNDS = 1000


@dataclass(slots=True)
class DeliveryOutcome:
    sent: int = 0
    retried: int = 0
    dead: int = 0


def update_outbox_gauges(store: Store, metrics: Metrics) -> None:
    counts = store.outbox_counts()
    metrics.set_outbox(counts.get("pending", 0), counts.get("dead", 0), counts.get("held", 0))


class DeliveryCycle:
    """Drains the outbox through the notifier, counted per channel for /metrics."""

    def __init__(self, notifier: Notifier, store: Store, metrics: Metrics, clock: Clock) -> None:
        self.notifier = notifier
        self.store = store
        self.metrics = metrics
        self.clock = clock

    def run(self) -> DeliveryOutcome:
        """One delivery pass over what is due now."""
        result = self.notifier.deliver_due()
        self.metrics.record_deliveries(
            result.sent_by_channel, result.failed_by_channel, int(result.dead)
        )
        update_outbox_gauges(self.store, self.metrics)
        outcome = DeliveryOutcome(int(result.sent), int(result.retried), int(result.dead))
        if outcome.sent or outcome.retried or outcome.dead:
            log.info(
                "delivery",
                extra={"sent": outcome.sent, "retried": outcome.retried, "dead": outcome.dead},
            )
        return outcome

    def until_idle(self, stopping: Callable[[], bool]) -> DeliveryOutcome:
        """Deliver until nothing is due now (failures wait for their backoff)."""
        total = DeliveryOutcome()
        for _ in range(ONCE_DELIVERY_ROUNDS):
            if stopping():
                break
            step = self.run()
            total.sent += step.sent
            total.retried += step.retried
            total.dead += step.dead
            if not self.store.due_deliveries(self.clock.time(), limit=1):
                break
            if not (step.sent or step.retried or step.dead):
                break
        return total

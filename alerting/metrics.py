"""Prometheus metrics of one service instance.

Each ``Metrics`` owns its own ``CollectorRegistry`` (never the process-global one), so two
services in one test process do not share counters and nothing a library registers
globally leaks into ``/metrics``. The service calls the ``record_*`` methods; the health
server renders ``exposition()``. docs/operations.md says what each metric means.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from alerting import __version__

PREFIX = "jc_alerting"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Poll durations: a quiet org polls in tens of ms, a busy one pages for seconds.
_POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """The service's counters and gauges, registered in a private registry."""

    def __init__(self, version: str = __version__) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_read = Counter(
            f"{PREFIX}_events_read",
            "Events received from the source (new and overlap duplicates).",
            registry=r,
        )
        self.events_duplicate = Counter(
            f"{PREFIX}_events_duplicate",
            "Events dropped because their id was already processed (poll overlap).",
            registry=r,
        )
        self.events_skipped = Counter(
            f"{PREFIX}_events_skipped", "Malformed events skipped with a warning.", registry=r
        )
        self.rule_matches = Counter(
            f"{PREFIX}_rule_matches",
            "Events that matched a rule's detection.",
            ["rule"],
            registry=r,
        )
        self.alerts_raised = Counter(
            f"{PREFIX}_alerts_raised",
            "Alerts raised and enqueued for delivery.",
            ["rule"],
            registry=r,
        )
        self.notifications_sent = Counter(
            f"{PREFIX}_notifications_sent", "Notifications delivered.", ["channel"], registry=r
        )
        self.notifications_failed = Counter(
            f"{PREFIX}_notifications_failed",
            "Delivery attempts that failed (each is retried or dead-lettered).",
            ["channel"],
            registry=r,
        )
        self.notifications_dead = Counter(
            f"{PREFIX}_notifications_dead",
            "Deliveries moved to the dead-letter state (see `alerting outbox list`).",
            registry=r,
        )
        self.poll_errors = Counter(
            f"{PREFIX}_poll_errors",
            "Polls that failed: kind=unavailable (retried next poll) or rejected (needs a fix).",
            ["kind"],
            registry=r,
        )
        self.api_retries = Counter(
            f"{PREFIX}_api_retries", "DI API requests retried (429, 5xx, network).", registry=r
        )
        self.store_errors = Counter(
            f"{PREFIX}_store_errors",
            "State database faults, by cause: disk_full, read_only, io_error, locked, "
            "corrupt, newer_schema, cannot_open, other.",
            ["cause"],
            registry=r,
        )
        self.incomplete_windows = Counter(
            f"{PREFIX}_incomplete_windows",
            "Poll windows that still read fewer events than /events/count after re-reads.",
            registry=r,
        )
        self.events_missing = Counter(
            f"{PREFIX}_events_missing",
            "Events /events/count reported that no read of their window returned.",
            registry=r,
        )
        self.skipped_runs = Counter(
            f"{PREFIX}_skipped_runs",
            "Scheduled runs of a job skipped because its previous run was still going.",
            ["job"],
            registry=r,
        )
        self.poll_duration = Histogram(
            f"{PREFIX}_poll_duration_seconds",
            "Wall time of one poll: fetch, evaluate, commit.",
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            f"{PREFIX}_lag_seconds",
            "Now minus the source cursor: how far behind real time detection is.",
            registry=r,
        )
        self.lag.set(math.nan)
        self.outbox_pending = Gauge(
            f"{PREFIX}_outbox_pending", "Deliveries waiting in the outbox.", registry=r
        )
        self.outbox_held = Gauge(
            f"{PREFIX}_outbox_held",
            "Deliveries held: an incident's higher-severity message covered them.",
            registry=r,
        )
        self.outbox_dead = Gauge(
            f"{PREFIX}_outbox_dead", "Deliveries in the dead-letter state.", registry=r
        )
        self.last_poll_success = Gauge(
            f"{PREFIX}_last_poll_success_timestamp_seconds",
            "Unix time of the last successful poll (0 before the first).",
            registry=r,
        )
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the labels say which version runs.",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(version=version, python=platform.python_version()).set(1)

    # ------------------------------------------------------------------ recording

    def record_poll(
        self,
        *,
        new: int,
        duplicates: int,
        skipped: int,
        retries: int,
        duration_s: float,
        success_at: float,
    ) -> None:
        """A successful poll: counts from the batch, its duration and when it ended."""
        self.events_read.inc(new + duplicates)
        self.events_duplicate.inc(duplicates)
        self.events_skipped.inc(skipped)
        self.api_retries.inc(retries)
        self.poll_duration.observe(duration_s)
        self.last_poll_success.set(success_at)

    def record_poll_error(self, kind: str, duration_s: float, retries: int = 0) -> None:
        self.poll_errors.labels(kind=kind).inc()
        self.poll_duration.observe(duration_s)
        self.api_retries.inc(retries)

    def record_incomplete(self, read: int, counted: int) -> None:
        """A window that stayed short of its /events/count after the re-reads."""
        self.incomplete_windows.inc()
        self.events_missing.inc(max(0, counted - read))

    def record_store_error(self, cause: str) -> None:
        self.store_errors.labels(cause=cause).inc()

    def record_matches(self, matches: Mapping[str, int]) -> None:
        for rule, n in matches.items():
            if n > 0:
                self.rule_matches.labels(rule=rule).inc(n)

    def record_alerts(self, rules: list[str]) -> None:
        for rule in rules:
            self.alerts_raised.labels(rule=rule).inc()

    def record_deliveries(
        self,
        sent: Mapping[str, int],
        failed: Mapping[str, int],
        dead: int,
    ) -> None:
        for channel, n in sent.items():
            if n > 0:
                self.notifications_sent.labels(channel=channel).inc(n)
        for channel, n in failed.items():
            if n > 0:
                self.notifications_failed.labels(channel=channel).inc(n)
        if dead > 0:
            self.notifications_dead.inc(dead)

    def set_outbox(self, pending: int, dead: int, held: int = 0) -> None:
        self.outbox_pending.set(pending)
        self.outbox_dead.set(dead)
        self.outbox_held.set(held)

    def track_lag(self, lag_seconds: Callable[[], float]) -> None:
        """Compute the lag at scrape time, so it keeps growing while polls fail."""
        self.lag.set_function(lag_seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

"""One poll cycle: read the next batch, evaluate it, then commit in ONE transaction.

The transaction holds the alerts (enqueued), the engine state and the source's cursor:
a crash at any point keeps all of it or none, so a restart re-reads the same window and
raises the same alerts exactly once.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from alerting.clock import Clock
from alerting.durations import NS
from alerting.engine.engine import Engine, RuleStats
from alerting.errors import SourceError
from alerting.health import Health
from alerting.metrics import Metrics
from alerting.notify.pipeline import Notifier
from alerting.service.deliver import update_outbox_gauges
from alerting.service.failpoints import Failpoints
from alerting.service.recovery import forgetting_on_failure, iso_seconds, warm_up
from alerting.source.base import Source
from alerting.source.jumpcloud import SourceUnavailable
from alerting.store import Store

__all__ = ["FATAL_BACKOFF_INTERVALS", "PollCycle", "PollOutcome"]

log = logging.getLogger("alerting.service")

# A rejected key or plan will not fix itself: poll again only after this many intervals.
FATAL_BACKOFF_INTERVALS = 10
_REQUEST_ID = re.compile(r" \(request id [^)]*\)")


@dataclass(slots=True)
class PollOutcome:
    """What one poll did; ``error`` is set when it failed."""

    ok: bool
    events: int = 0
    new: int = 0
    duplicates: int = 0
    skipped: int = 0
    alerts: int = 0
    lag_s: float = math.nan
    duration_s: float = 0.0
    error: str | None = None
    fatal: bool = False
    skipped_cycle: bool = False


class PollCycle:
    """The poll job's state (the engine, warm-up done, the cursor) and one ``run()``."""

    def __init__(
        self,
        *,
        source: Source,
        engine_factory: Callable[[], Engine],
        notifier: Notifier,
        store: Store,
        health: Health,
        metrics: Metrics,
        clock: Clock,
        failpoints: Failpoints,
        late_ns: int,
        poll_interval_s: float,
    ) -> None:
        self.source = source
        self.engine_factory = engine_factory
        self.notifier = notifier
        self.store = store
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.failpoints = failpoints
        self.late_ns = late_ns
        self.poll_interval_s = poll_interval_s
        self.engine = engine_factory()  # restores realert + baselines from the store
        self.warmed = False
        self.paused_until = 0.0
        self.cursor_ns: int | None = store.get_cursor(source.name)
        self._match_counts: dict[str, int] = {}
        self._rejected: str | None = None  # the rejection already logged, if any

    def replace(
        self, *, engine: Engine, engine_factory: Callable[[], Engine], notifier: Notifier
    ) -> None:
        """A reload's swap (under the service's job lock): new rules, same cursor."""
        self.engine = engine
        self.engine_factory = engine_factory
        self.notifier = notifier
        self._match_counts = _match_counts(engine.stats)

    def lag_seconds(self) -> float:
        cursor = self.cursor_ns
        if cursor is None:
            return math.nan
        return max(0.0, self.clock.time() - cursor / NS)

    def forget(self) -> None:
        """Back to the stored state: a fresh engine, windows rebuilt by the next warm-up."""
        self.engine = self.engine_factory()
        self._match_counts = {}
        self.warmed = False

    def warm_up(self) -> int:
        with forgetting_on_failure(self.forget):
            count = warm_up(self.engine, self.source, self.store)
        self.warmed = True
        self._match_counts = _match_counts(self.engine.stats)  # warm-up matches are not new
        return count

    def run(self) -> PollOutcome:
        """One poll: fetch, evaluate, then commit alerts + engine state + cursor atomically."""
        started = time.monotonic()
        retries_before = self.source.retries
        try:
            if not self.warmed:
                self.warm_up()
            batch = self.source.poll()
            if batch is None:
                self.health.poll_succeeded()
                self._accepted()
                self.metrics.last_poll_success.set(self.clock.time())
                log.info("poll skipped: %s", self.source.skip_reason or "nothing new")
                return PollOutcome(ok=True, skipped_cycle=True, lag_s=self.lag_seconds())
            # Nothing is committed on failure, so the next poll reads these events again.
            with forgetting_on_failure(self.forget):
                alerts = list(self.engine.process_many(batch.events))
                # Late events reach back at most one overlap: older window entries can go,
                # and a digest whose period is over goes out with this batch.
                self.engine.advance(batch.end_ns - self.late_ns)
                alerts += self.engine.due(batch.end_ns - self.late_ns)
                self.failpoints.hit("before_commit")
                with self.store.transaction():
                    self.notifier.enqueue(alerts)
                    self.engine.flush(self.store)
                    self.source.commit(batch)
            self.failpoints.hit("after_commit")
        except SourceError as exc:
            retries = self.source.retries - retries_before
            return self._failed(exc, time.monotonic() - started, retries)
        self.cursor_ns = batch.cursor_ns
        duration = time.monotonic() - started
        self.health.poll_succeeded()
        self._accepted()
        new = len(batch.events)
        outcome = PollOutcome(
            ok=True,
            events=new + batch.duplicates,
            new=new,
            duplicates=batch.duplicates,
            skipped=len(batch.skipped),
            alerts=len(alerts),
            lag_s=self.lag_seconds(),
            duration_s=duration,
        )
        self.metrics.record_poll(
            new=new,
            duplicates=outcome.duplicates,
            skipped=outcome.skipped,
            retries=batch.retries,
            duration_s=duration,
            success_at=self.clock.time(),
        )
        if batch.incomplete is not None:
            self.metrics.record_incomplete(*batch.incomplete)
        self.metrics.record_alerts([a.rule for a in alerts])
        self._record_matches()
        update_outbox_gauges(self.store, self.metrics)
        log.info(
            "poll ok",
            extra={
                "events": outcome.events,
                "new": outcome.new,
                "duplicates": outcome.duplicates,
                "skipped": outcome.skipped,
                "alerts": outcome.alerts,
                "lag_s": round(outcome.lag_s, 1),
                "duration_s": round(duration, 3),
                "window_start": iso_seconds(batch.start_ns),
                "window_end": iso_seconds(batch.end_ns),
                "requests": batch.requests,
                "retries": batch.retries,
                **_missing(batch.incomplete),
            },
        )
        return outcome

    def _failed(self, exc: SourceError, duration: float, retries: int) -> PollOutcome:
        fatal = not isinstance(exc, SourceUnavailable)
        message = str(exc)
        self.metrics.record_poll_error("rejected" if fatal else "unavailable", duration, retries)
        # A rejection is the answer to the last request; its id is what support asks for.
        # (Outage messages already name the id of the response that failed, if any.)
        request_id = self.source.last_request_id if fatal else None
        if request_id and request_id not in message:
            message += f" (request id {request_id})"
        self.health.poll_failed(message, fatal=fatal)
        extra = {"request_id": request_id, "fatal": fatal}
        if fatal:
            wait = FATAL_BACKOFF_INTERVALS * self.poll_interval_s
            self.paused_until = self.clock.time() + wait
            # One line per rejection, not one per retry: /healthz keeps saying it.
            same = _REQUEST_ID.sub("", message) == self._rejected
            self._rejected = _REQUEST_ID.sub("", message)
            log.log(
                logging.DEBUG if same else logging.ERROR,
                "poll failed: %s (next attempt in %.0fs; until it changes, this is not "
                "logged again)",
                message,
                wait,
                extra=extra,
            )
        else:
            log.warning("poll failed, retrying next poll: %s", message, extra=extra)
        return PollOutcome(ok=False, error=message, fatal=fatal, duration_s=duration)

    def _accepted(self) -> None:
        if self._rejected is not None:
            log.info("the source accepts the service again; polling as usual")
            self._rejected = None

    def _record_matches(self) -> None:
        """Turn the engine's cumulative per-rule match counts into counter increments."""
        matches = _match_counts(self.engine.stats)
        deltas = {rule: n - self._match_counts.get(rule, 0) for rule, n in matches.items()}
        self._match_counts = matches
        self.metrics.record_matches(deltas)


def _missing(incomplete: tuple[int, int] | None) -> dict[str, int]:
    """The "poll ok" fields of a window that stayed short (the source logged why)."""
    if incomplete is None:
        return {}
    read, counted = incomplete
    return {"events_counted": counted, "events_missing": max(0, counted - read)}


def _match_counts(stats: Mapping[str, RuleStats]) -> dict[str, int]:
    """Per-rule cumulative match counts from ``engine.stats`` (rule id -> RuleStats)."""
    return {str(rule): int(st.matched) for rule, st in stats.items()}

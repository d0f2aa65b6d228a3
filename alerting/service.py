"""``alerting run``: the always-on detection service.

One poll job and one delivery job on an APScheduler 3.x ``BackgroundScheduler`` while the
main thread waits for SIGTERM/SIGINT. A poll reads the next window from the source, runs
the engine over it and then, in ONE store transaction, enqueues the alerts, saves the
engine state and advances the cursor: a crash at any point keeps all of it or none, so a
restart re-reads the same window and raises the same alerts exactly once. Delivery drains
the outbox (at-least-once; the fingerprint lets a receiver drop the rare resend after a
crash between a send and its mark).

On start the engine's windows are rebuilt by re-reading the longest rule window before
the cursor under ``engine.warmup()``; those alerts were enqueued before the restart and
are dropped. ``--once`` does one poll and delivers whatever is due, then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from alerting import __version__
from alerting.clock import Clock, SystemClock
from alerting.config import Config, load_config
from alerting.durations import format_duration_ns, td_ns
from alerting.errors import AlertingError, SourceError
from alerting.events import format_timestamp
from alerting.health import Health, HealthServer
from alerting.logs import choose_format, setup_logging
from alerting.metrics import Metrics
from alerting.store import Store

if TYPE_CHECKING:
    from alerting.source.jumpcloud import DIClient

log = logging.getLogger("alerting.service")

NS = 1_000_000_000
# A rejected key or plan will not fix itself: poll again only after this many intervals.
FATAL_BACKOFF_INTERVALS = 10
WARMUP_CHUNK = 5000
# ``--once`` delivers until nothing is due; this bounds it against a misbehaving notifier.
ONCE_DELIVERY_ROUNDS = 1000

# Test hook (documented in docs/operations.md): ALERTING_FAILPOINT=<name>[:<n>] makes the
# process SIGKILL itself the n-th time (default 1st) it reaches that point, to prove
# crash safety deterministically. Points: before_commit (alerts computed, nothing
# committed), after_commit (alerts enqueued and cursor advanced, nothing delivered).
FAILPOINT_ENV = "ALERTING_FAILPOINT"


class _Failpoints:
    def __init__(self, spec: str | None) -> None:
        self.name: str | None = None
        self.remaining = 0
        if spec:
            name, _, count = spec.partition(":")
            self.name = name.strip()
            self.remaining = int(count) if count.strip().isdigit() else 1

    def hit(self, name: str) -> None:
        if name != self.name:
            return
        self.remaining -= 1
        if self.remaining == 0:
            log.warning("failpoint %s: killing the process (test hook %s)", name, FAILPOINT_ENV)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def _iso(ns: int) -> str:
    """Whole-second UTC time for log records."""
    return format_timestamp(ns - ns % NS)


def collect_secrets(model: Any) -> list[str]:
    """Every ``SecretStr`` value anywhere in the config, for the log redaction filter."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(model)
    return [s for s in found if s]


class StateLock:
    """An exclusive ``flock`` on ``<state.path>.lock``: one service per state database.

    Two services on one database would each advance the cursor and deliver the same
    alerts. The kernel releases the lock when the process dies, even by SIGKILL.
    """

    def __init__(self, state_path: str) -> None:
        self.path = f"{state_path}.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as exc:
            raise AlertingError(
                f"{self.path}: cannot open the lock file ({exc.strerror}): "
                "set state.path to a writable location"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                handle.close()
                raise AlertingError(f"{self.path}: cannot lock ({exc.strerror})") from None
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlertingError(
                f"another `alerting run` (pid {holder}) is already using the state in "
                f"{self.path.removesuffix('.lock')}: stop it first, or give this one its own "
                "state.path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


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


@dataclass(slots=True)
class DeliveryOutcome:
    sent: int = 0
    retried: int = 0
    dead: int = 0


class Service:
    """The service's parts and its two jobs; ``open()`` then ``run()``/``run_once()``."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: str = "config.yaml",
        clock: Clock | None = None,
        banner: IO[str] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._banner_out = banner
        self.poll_interval_s = config.source.poll_interval.total_seconds()
        self.delivery_interval_s = config.delivery.interval.total_seconds()
        self.health = Health(self.clock, config.health_max_age.total_seconds())
        self.metrics = Metrics()
        self.metrics.track_lag(self._lag_seconds)
        self.lock = StateLock(str(config.state.path))
        self._failpoints = _Failpoints(os.environ.get(FAILPOINT_ENV))
        self._stop = threading.Event()
        self._delivering = threading.Event()
        self._scheduler: Any = None
        self._closed = False
        self._warmed = False
        self._paused_until = 0.0
        self._cursor_ns: int | None = None
        self._match_counts: dict[str, int] = {}
        self.store: Store | None = None
        self.server: HealthServer | None = None
        self.simulator: Any = None
        self.client: DIClient | None = None  # None for source.kind file
        self.poller: Any = None
        self.engine: Any = None
        self.notifier: Any = None
        self.rules: list[Any] = []
        self.source_name = str(config.source.kind)
        self.source_desc = ""

    # ------------------------------------------------------------------ lifecycle

    @property
    def db(self) -> Store:
        """The open state store (only after ``open()``)."""
        if self.store is None:
            raise AlertingError("the service is not open")
        return self.store

    @property
    def port(self) -> int | None:
        """The bound health/metrics port (useful when server.listen asks for port 0)."""
        return None if self.server is None else self.server.port

    def open(self, *, serve: bool = True) -> None:
        """Lock the state, load rules, build source, engine and notifier, start /healthz.

        ``serve=False`` (``--once``) skips the health server: a one-shot run from cron has
        no one to answer and must not fight the service for its port.
        """
        self.lock.acquire()
        self.store = Store(self.config.state.path)
        self._cursor_ns = self._cursor()
        self._build_engine()
        self._build_notifier()
        if serve:
            self.server = HealthServer(self.config.server.listen, self.health, self.metrics)
            self.server.start()  # its URL is in the banner and the "started" log record
        self._build_source()
        self._update_outbox_gauges()

    def _build_engine(self) -> None:
        from alerting.engine.engine import Engine
        from alerting.engine.loader import load_rules

        assert self.store is not None
        self.rules = list(
            load_rules(
                [Path(p) for p in self.config.rules.paths],
                placeholders=self.config.placeholders,
            )
        )
        self.engine = Engine(self.rules, store=self.store)  # restores realert + baselines

    def _reset_engine(self) -> None:
        from alerting.engine.engine import Engine

        self.engine = Engine(self.rules, store=self.db)
        self._match_counts = {}

    def _build_notifier(self) -> None:
        from alerting.notify.pipeline import Notifier

        self.notifier = Notifier(
            channels=self.config.channels,
            routes=self.config.routes,
            silences=self.config.silences,
            delivery=self.config.delivery,
            templates_dir=self.config.templates.path,
            store=self.db,
            clock=self.clock,
            time_intervals=self.config.intervals,
        )

    def _build_source(self) -> None:
        src = self.config.source
        kind = str(src.kind)
        if kind == "file":
            from alerting.source.jumpcloud import FileSource

            if src.path is None:  # the config model requires it; keep mypy and users honest
                raise AlertingError("source.kind file needs source.path: the events file")
            self.source_name = "file"
            self.poller = FileSource(
                src.path, store=self.db, source_name=self.source_name, clock=self.clock
            )
            self.source_desc = f"the event file {src.path}"
            return
        from alerting.source.jumpcloud import DIClient, Poller

        common: dict[str, Any] = {
            "services": list(src.services),
            "rate_limit": src.rate_limit,
            "timeout": src.timeout.total_seconds(),
            "max_retries": src.max_retries,
            "clock": self.clock,
        }
        if kind == "simulator":
            from alerting.source.simulator import EmbeddedSimulator

            sim = src.simulator
            self.simulator = EmbeddedSimulator(
                clock=self.clock,
                seed=sim.seed,
                history_ns=td_ns(sim.history),
                scenarios=sim.scenarios,
                faults=sim.faults,
                users=sim.users,
            )
            self.simulator.start()
            self.client = DIClient(self.simulator.url, api_key=self.simulator.api_key, **common)
            self.source_name = "simulator"
            self.source_desc = f"the embedded DI simulator at {self.simulator.url}"
        else:
            org_ids = list(src.org_id)
            self.client = DIClient(
                src.base_url,
                api_key=_secret(src.api_key),
                bearer_token=_secret(src.bearer_token),
                org_ids=org_ids,
                **common,
            )
            self.source_name = "jumpcloud"
            self.source_desc = f"JumpCloud Directory Insights at {src.base_url}"
        self.poller = Poller(
            self.client,
            self.db,
            source_name=self.source_name,
            lag_ns=td_ns(src.lag),
            overlap_ns=td_ns(src.overlap),
            start_from_ns=td_ns(src.start_from),
            clock=self.clock,
        )

    def _cursor(self) -> int | None:
        assert self.store is not None
        return self.store.get_cursor(self.source_name)

    def close(self) -> None:
        """Release everything ``open()`` took, in reverse order; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.health.stopping()
        steps: list[tuple[str, Any]] = [
            ("notifier", self.notifier and self.notifier.close),
            ("client", self.client and self.client.close),
            ("simulator", self.simulator and self.simulator.stop),
            ("health server", self.server and self.server.stop),
            ("store", self.store and self.store.close),
        ]
        for name, action in steps:
            if not action:
                continue
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - close the rest whatever one does
                log.warning("closing the %s failed: %s", name, exc)
        self.lock.release()

    def request_stop(self) -> None:
        """Ask ``run()`` to stop; safe from a signal handler."""
        self._stop.set()
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ banner

    def banner(self) -> None:
        """Say where it polls, where health and metrics are, and how to use a real org."""
        assert self.server is not None
        src = self.config.source
        channels = ", ".join(sorted(self.config.channels)) or "none"
        lines = [
            f"jc-alerting {__version__}: watching {self.source_desc}",
            f"  polling every {format_duration_ns(td_ns(src.poll_interval))} "
            f"(lag {format_duration_ns(td_ns(src.lag))}, overlap {format_duration_ns(td_ns(src.overlap))}, "
            f"first run reads the last {format_duration_ns(td_ns(src.start_from))})",
            f"  rules: {len(self.rules)} loaded from {', '.join(str(p) for p in self.config.rules.paths)}",
            f"  channels: {channels}",
            f"  health: {self.server.url}/healthz   metrics: {self.server.url}/metrics",
            f"  state: {self.config.state.path}",
        ]
        if str(src.kind) == "simulator":
            lines.append(
                "  To watch a real JumpCloud org: set source.kind: jumpcloud in "
                f"{self.config_path} and export JUMPCLOUD_API_KEY=<an admin API key>."
            )
        lines.append("  Stop with Ctrl-C (or SIGTERM).")
        out = self._banner_out
        if out is not None:
            out.write("\n".join(lines) + "\n")
            out.flush()
        log.info(
            "started",
            extra={
                "version": __version__,
                "source": self.source_name,
                "rules": len(self.rules),
                "health_url": f"{self.server.url}/healthz",
                "metrics_url": f"{self.server.url}/metrics",
                "state": str(self.config.state.path),
            },
        )

    # ------------------------------------------------------------------ poll

    def _lag_seconds(self) -> float:
        cursor = self._cursor_ns
        if cursor is None:
            return math.nan
        return max(0.0, self.clock.time() - cursor / NS)

    def warmup(self) -> int:
        """Rebuild the engine's windows from history before the cursor; returns events fed.

        Runs before the first poll (and again on the next poll if the source was down).
        Inside the overlap, only events the store remembers as processed are fed: a late
        event that arrived after the last poll has not raised its alerts yet, so the next
        poll must see it as new, not the warm-up.
        """
        cursor = self._cursor()
        longest = int(self.engine.longest_window_ns)
        if cursor is None or longest <= 0:
            self._warmed = True
            return 0
        start = cursor - longest
        overlap_ns = int(getattr(self.poller, "overlap_ns", 0))
        unseen_from = cursor - overlap_ns
        seen = self.db.load_seen(self.source_name, unseen_from - unseen_from % 1_000_000)
        count = held_back = 0
        chunk: list[Any] = []
        with self.engine.warmup():
            for event in self.poller.history(start, cursor):
                if overlap_ns and event.time_ns >= unseen_from and event.id not in seen:
                    held_back += 1
                    continue
                chunk.append(event)
                if len(chunk) >= WARMUP_CHUNK:
                    self.engine.process_many(chunk)
                    count += len(chunk)
                    chunk = []
            if chunk:
                self.engine.process_many(chunk)
                count += len(chunk)
        self._warmed = True
        self._match_counts = _match_counts(self.engine.stats)  # warm-up matches are not new
        log.info(
            "rebuilt rule windows from %d events between %s and %s",
            count,
            _iso(start),
            _iso(cursor),
            extra={"warmup_events": count, "late_events_left_for_the_poll": held_back},
        )
        return count

    def poll_once(self) -> PollOutcome:
        """One poll: fetch, evaluate, then commit alerts + engine state + cursor atomically."""
        assert self.store is not None
        started = time.monotonic()
        retries_before = self._client_retries()
        try:
            if not self._warmed:
                try:
                    self.warmup()
                except BaseException:
                    # Half-fed windows would count those events twice on the next try.
                    self._reset_engine()
                    raise
            batch = self.poller.poll()
            if batch is None:
                self.health.poll_succeeded()
                self.metrics.last_poll_success.set(self.clock.time())
                reason = getattr(self.poller, "last_skip_reason", None) or "nothing new"
                log.info("poll skipped: %s", reason)
                return PollOutcome(ok=True, skipped_cycle=True, lag_s=self._lag_seconds())
            try:
                alerts = list(self.engine.process_many(batch.events))
                # Late events reach back at most one overlap: older window entries can go.
                self.engine.advance(batch.end_ns - td_ns(self.config.source.overlap))
                self._failpoints.hit("before_commit")
                with self.store.transaction():
                    self.notifier.enqueue(alerts)
                    self.engine.flush(self.store)
                    self.poller.commit(batch)
            except BaseException:
                # Nothing was committed, so the next poll reads these events again. The
                # engine has seen them (windows, realert) and must forget them, exactly as
                # after a crash: back to the stored state, windows rebuilt by the warm-up.
                self._reset_engine()
                self._warmed = False
                raise
            self._failpoints.hit("after_commit")
        except SourceError as exc:
            retries = self._client_retries() - retries_before
            return self._poll_failed(exc, time.monotonic() - started, retries)
        self._cursor_ns = batch.cursor_ns
        duration = time.monotonic() - started
        self.health.poll_succeeded()
        new = len(batch.events)
        outcome = PollOutcome(
            ok=True,
            events=new + batch.duplicates,
            new=new,
            duplicates=batch.duplicates,
            skipped=len(batch.skipped),
            alerts=len(alerts),
            lag_s=self._lag_seconds(),
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
        self.metrics.record_alerts([a.rule for a in alerts])
        self._record_matches()
        self._update_outbox_gauges()
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
                "window_start": _iso(batch.start_ns),
                "window_end": _iso(batch.end_ns),
                "requests": batch.requests,
                "retries": batch.retries,
            },
        )
        return outcome

    def _client_retries(self) -> int:
        """The DI client's cumulative retry count (0 for the file source, which has none)."""
        return 0 if self.client is None else self.client.retries

    def _poll_failed(self, exc: SourceError, duration: float, retries: int) -> PollOutcome:
        from alerting.source.jumpcloud import SourceUnavailable

        fatal = not isinstance(exc, SourceUnavailable)
        message = str(exc)
        self.metrics.record_poll_error("rejected" if fatal else "unavailable", duration, retries)
        # A rejection is the answer to the last request; its id is what support asks for.
        # (Outage messages already name the id of the response that failed, if any.)
        request_id = self.client.last_request_id if fatal and self.client else None
        if request_id and request_id not in message:
            message += f" (request id {request_id})"
        self.health.poll_failed(message, fatal=fatal)
        extra = {"request_id": request_id, "fatal": fatal}
        if fatal:
            wait = FATAL_BACKOFF_INTERVALS * self.poll_interval_s
            self._paused_until = self.clock.time() + wait
            log.error("poll failed: %s (next attempt in %.0fs)", message, wait, extra=extra)
        else:
            log.warning("poll failed, retrying next poll: %s", message, extra=extra)
        return PollOutcome(ok=False, error=message, fatal=fatal, duration_s=duration)

    def _record_matches(self) -> None:
        """Turn the engine's cumulative per-rule match counts into counter increments."""
        matches = _match_counts(self.engine.stats)
        deltas = {rule: n - self._match_counts.get(rule, 0) for rule, n in matches.items()}
        self._match_counts = matches
        self.metrics.record_matches(deltas)

    def _update_outbox_gauges(self) -> None:
        if self.store is None:
            return
        counts = self.store.outbox_counts()
        self.metrics.set_outbox(counts.get("pending", 0), counts.get("dead", 0))

    # ------------------------------------------------------------------ delivery

    def deliver_once(self) -> DeliveryOutcome:
        """One delivery pass over what is due now, counted per channel for /metrics."""
        assert self.store is not None
        result = self.notifier.deliver_due()
        self.metrics.record_deliveries(
            result.sent_by_channel, result.failed_by_channel, int(result.dead)
        )
        self._update_outbox_gauges()
        outcome = DeliveryOutcome(int(result.sent), int(result.retried), int(result.dead))
        if outcome.sent or outcome.retried or outcome.dead:
            log.info(
                "delivery",
                extra={"sent": outcome.sent, "retried": outcome.retried, "dead": outcome.dead},
            )
        return outcome

    def deliver_until_idle(self) -> DeliveryOutcome:
        """Deliver until nothing is due now (failures wait for their backoff)."""
        assert self.store is not None
        total = DeliveryOutcome()
        for _ in range(ONCE_DELIVERY_ROUNDS):
            if self.stopping:
                break
            step = self.deliver_once()
            total.sent += step.sent
            total.retried += step.retried
            total.dead += step.dead
            if not self.store.due_deliveries(self.clock.time(), limit=1):
                break
            if not (step.sent or step.retried or step.dead):
                break
        return total

    # ------------------------------------------------------------------ jobs

    def _poll_job(self) -> None:
        if self.stopping:
            return
        if self.clock.time() < self._paused_until:
            return
        try:
            outcome = self.poll_once()
        except AlertingError as exc:
            self.health.poll_failed(str(exc), fatal=False)
            log.error("poll failed: %s", exc)
            return
        except Exception as exc:
            self.health.poll_failed(f"internal error: {type(exc).__name__}: {exc}", fatal=False)
            log.exception("poll failed with an internal error (please report it)")
            return
        if outcome.alerts and not self._delivering.is_set():
            self._deliver_soon()

    def _deliver_soon(self) -> None:
        """New alerts: run the delivery job now instead of at its next interval."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        try:
            scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - a missed nudge only delays to the interval
            log.debug("could not bring the delivery forward: %s", exc)

    def _delivery_job(self) -> None:
        if self.stopping:
            return
        self._delivering.set()
        try:
            self.deliver_once()
        except AlertingError as exc:
            log.error("delivery failed: %s", exc)
        except Exception:
            log.exception("delivery failed with an internal error (please report it)")
        finally:
            self._delivering.clear()

    def run_once(self) -> int:
        """``--once``: one poll, deliver what is due, exit 0 (1 when the poll failed)."""
        outcome = self.poll_once()
        self.deliver_until_idle()
        self.flush()
        if not outcome.ok:
            raise AlertingError(outcome.error or "the poll failed")
        return 0

    def run(self) -> int:
        """Run the jobs until ``request_stop()``; then finish the current step and return 0."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        grace = max(1, math.ceil(max(self.poll_interval_s, self.delivery_interval_s)))
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        scheduler.add_job(
            self._poll_job,
            "interval",
            seconds=self.poll_interval_s,
            id="poll",
            next_run_time=now,
            misfire_grace_time=max(1, math.ceil(self.poll_interval_s)),
        )
        scheduler.add_job(
            self._delivery_job,
            "interval",
            seconds=self.delivery_interval_s,
            id="deliver",
            next_run_time=now + timedelta(seconds=min(1.0, self.delivery_interval_s)),
            misfire_grace_time=max(1, math.ceil(self.delivery_interval_s)),
        )
        self._scheduler = scheduler
        scheduler.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            log.info("stopping: finishing the current step")
            self.health.stopping()
            scheduler.shutdown(wait=True)
            self._scheduler = None
            self.flush()
        log.info("stopped")
        return 0

    def flush(self) -> None:
        """Persist engine state (the per-poll transaction already did; this is belt and braces)."""
        if self.store is None or self.engine is None:
            return
        try:
            with self.store.transaction():
                self.engine.flush(self.store)
        except AlertingError as exc:
            log.warning("could not save the engine state at shutdown: %s", exc)


def _match_counts(stats: Mapping[str, Any]) -> dict[str, int]:
    """Per-rule cumulative match counts from ``engine.stats`` (rule id -> RuleStats)."""
    return {str(rule): int(st.matched) for rule, st in stats.items()}


@contextlib.contextmanager
def _signals(service: Service) -> Iterator[None]:
    """SIGTERM/SIGINT ask the service to stop; a second one forces an immediate exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count > 1:
            sys.stderr.write("alerting run: stopping now (second signal)\n")
            os._exit(130)
        log.info("received %s", signal.Signals(signum).name)
        service.request_stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(args: argparse.Namespace) -> int:
    """``alerting run [--config F] [--once]``."""
    config = load_config(args.config)
    setup_logging(
        level=config.logging.level, fmt=config.logging.format, secrets=collect_secrets(config)
    )
    if config.logging.level != "debug":
        # The poll line carries the poller's counts; its own INFO line would repeat them.
        logging.getLogger("alerting.source.jumpcloud").setLevel(logging.WARNING)
    # The banner is for a person at a terminal; JSON logs get the "started" record instead.
    readable = choose_format(config.logging.format, sys.stderr) == "text"
    banner = sys.stderr if readable and not args.once else None
    service = Service(config, config_path=args.config, banner=banner)
    with _signals(service):
        try:
            service.open(serve=not args.once)
            if args.once:
                return service.run_once()
            service.banner()
            if service.stopping:
                return 0
            return service.run()
        finally:
            service.close()


__all__ = ["FAILPOINT_ENV", "PollOutcome", "Service", "StateLock", "collect_secrets", "main"]

"""``Service``: the always-on detection service, put together from its parts.

One poll job (``poll.PollCycle``) and one delivery job (``deliver.DeliveryCycle``) on an
APScheduler 3.x ``BackgroundScheduler`` while the main thread waits for SIGTERM/SIGINT.
A poll reads the next window from the source, runs the engine over it and then, in ONE
store transaction, enqueues the alerts, saves the engine state and advances the cursor:
a crash at any point keeps all of it or none, so a restart re-reads the same window and
raises the same alerts exactly once. Delivery drains the outbox (at-least-once; the
fingerprint lets a receiver drop the rare resend after a crash between a send and its
mark).

On start the engine's windows are rebuilt by re-reading the longest rule window before
the cursor (``recovery.warm_up``); those alerts were enqueued before the restart and are
dropped. ``--once`` does one poll and delivers whatever is due, then exits.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from alerting.clock import Clock, SystemClock
from alerting.config import Config
from alerting.durations import td_ns
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.errors import AlertingError, StoreError, ValidationFailed
from alerting.health import Health, HealthServer
from alerting.metrics import Metrics
from alerting.notify.pipeline import Notifier, build_notifier
from alerting.replay_shape import TruncatedExportError
from alerting.service.banner import announce
from alerting.service.deliver import DeliveryCycle, DeliveryOutcome, update_outbox_gauges
from alerting.service.failpoints import NO_FAILPOINTS, Failpoints
from alerting.service.lock import StateLock
from alerting.service.poll import PollCycle, PollOutcome
from alerting.service.reload import file_source_problem, load_all, needs_restart
from alerting.service.schedule import SkipNotices
from alerting.source.base import Source
from alerting.source.open import open_source
from alerting.store import Store

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

__all__ = ["Service"]

log = logging.getLogger("alerting.service")

# ``run --once`` exit code when a delivery of that run was dead-lettered (README, --help).
EXIT_DEAD_LETTERED = 3


class Service:
    """The service's parts and its two jobs: ``from_config()``, ``open()``, then
    ``run()`` or ``run_once()``, and ``close()``."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        config_path: str | None = None,
        clock: Clock | None = None,
        banner: IO[str] | None = None,
    ) -> Service:
        """Lock the state, open the store, load the rules, build notifier and source.

        ``config_path`` (what a reload rereads) defaults to the file ``config`` came from.
        """
        config_path = config_path if config_path is not None else str(config.path)
        clock = clock if clock is not None else SystemClock()
        lock = StateLock(str(config.state.path))
        lock.acquire()
        with ExitStack() as undo:
            undo.callback(lock.release)
            store = Store(config.state.path)
            undo.callback(store.close)
            rules = list(
                load_rules([Path(p) for p in config.rules.paths], placeholders=config.placeholders)
            )
            problem = file_source_problem(config, rules)
            if problem is not None:  # a PowerShell export cut below what a rule reads
                raise TruncatedExportError(str(problem))
            tolerance_ns = td_ns(config.source.overlap)
            # MSP mode (several org ids): every rule groups by organization too.
            by_org, org_names = config.source.multi_org, dict(config.source.org_names)
            notifier = build_notifier(config.notify_settings(), store, clock)
            undo.callback(notifier.close)
            opened = open_source(config.source, store, clock)
            service = cls(
                config=config,
                source=opened.source,
                source_description=opened.description,
                # restores realert + baselines; late events up to the overlap are judged in order
                engine_factory=lambda: Engine(
                    rules,
                    store=store,
                    tolerance_ns=tolerance_ns,
                    group_by_organization=by_org,
                    org_names=org_names,
                ),
                notifier=notifier,
                store=store,
                health=Health(clock, config.health_max_age.total_seconds()),
                metrics=Metrics(),
                clock=clock,
                lock=lock,
                failpoints=Failpoints.from_env(),
                config_path=config_path,
                banner=banner,
                rules_loaded=len(rules),
            )
            undo.pop_all()
        return service

    def __init__(
        self,
        *,
        config: Config,
        source: Source,
        engine_factory: Callable[[], Engine],
        notifier: Notifier,
        store: Store,
        health: Health,
        metrics: Metrics,
        clock: Clock,
        lock: StateLock | None = None,
        failpoints: Failpoints = NO_FAILPOINTS,
        source_description: str = "",
        config_path: str = "config.yaml",
        banner: IO[str] | None = None,
        rules_loaded: int | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.source_desc = source_description or source.name
        self.notifier = notifier
        self.store = store
        self.health = health
        self.metrics = metrics
        self.clock = clock
        self.lock = lock
        self.config_path = config_path
        self._banner_out = banner
        self.poll_interval_s = config.source.poll_interval.total_seconds()
        self.delivery_interval_s = config.delivery.interval.total_seconds()
        self.polling = PollCycle(
            source=source,
            engine_factory=engine_factory,
            notifier=notifier,
            store=store,
            health=health,
            metrics=metrics,
            clock=clock,
            failpoints=failpoints,
            late_ns=td_ns(config.source.overlap),
            poll_interval_s=self.poll_interval_s,
        )
        self.delivery = DeliveryCycle(notifier, store, metrics, clock)
        self.metrics.track_lag(self.polling.lag_seconds)
        self.health.track_storage(store.fault_message)
        self._notices = SkipNotices(metrics)
        self._store_fault: str | None = None  # the state database fault already logged
        self.server: HealthServer | None = None
        self._boot_config = config  # what restart-only sections are compared against
        # Held by the poll and delivery jobs and by a reload's swap: a job never sees
        # half of an old set and half of a new one.
        self._jobs_lock = threading.RLock()
        self._reload = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()  # the main loop's: a stop, a reload or a delivery nudge
        self._nudge = threading.Event()
        self._delivering = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._closed = False
        self._rules_loaded = rules_loaded

    # ------------------------------------------------------------------ lifecycle

    @property
    def db(self) -> Store:
        """The state store."""
        return self.store

    @property
    def engine(self) -> Engine:
        """The current engine (a failed batch replaces it with a fresh one)."""
        return self.polling.engine

    @property
    def port(self) -> int | None:
        """The bound health/metrics port (useful when server.listen asks for port 0)."""
        return None if self.server is None else self.server.port

    def open(self, *, serve: bool = True) -> None:
        """Start /healthz and /metrics; ``serve=False`` (``--once``) skips them: a
        one-shot run from cron has no one to answer and must not fight the service for
        its port."""
        if serve:
            self.server = HealthServer(self.config.server.listen, self.health, self.metrics)
            self.server.start()  # its URL is in the banner and the "started" log record
        update_outbox_gauges(self.store, self.metrics)

    def close(self) -> None:
        """Release everything, in reverse order; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.health.stopping()
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("notifier", self.notifier.close),
            ("source", self.source.close),
            ("health server", self.server.stop if self.server else None),
            ("store", self.store.close),
        ]
        for name, action in steps:
            if action is None:
                continue
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - close the rest whatever one does
                log.warning("closing the %s failed: %s", name, exc)
        if self.lock is not None:
            self.lock.release()

    def request_stop(self) -> None:
        """Ask ``run()`` to stop; safe from a signal handler."""
        self._stop.set()
        self._wake.set()
        self.clock.wake()

    def request_reload(self) -> None:
        """Ask ``run()`` to reload (SIGHUP); safe from a signal handler."""
        self._reload.set()
        self._wake.set()

    def reload(self) -> bool:
        """Reread config, rules, templates and silences; swap them in if all are valid.

        On any problem the running set stays and each problem is logged as
        ``file:line:col: message``; returns whether the new set is running.
        """
        started = time.monotonic()
        try:
            loaded = load_all(self.config_path)
            notifier = build_notifier(loaded.config.notify_settings(), self.store, self.clock)
        except ValidationFailed as exc:
            for problem in exc.problems:
                log.error("reload: %s", problem)
            self._reload_rejected(len(exc.problems))
            return False
        except AlertingError as exc:
            log.error("reload: %s", exc)
            self._reload_rejected(1)
            return False
        rules, store = loaded.rules, self.store
        tolerance_ns = td_ns(self._boot_config.source.overlap)

        def factory() -> Engine:
            return Engine(rules, store=store, tolerance_ns=tolerance_ns)

        with self._jobs_lock:
            engine = factory()  # realert + baselines from the store, committed by each poll
            kept = engine.carry_over(self.polling.engine)
            previous = self.notifier
            self.polling.replace(engine=engine, engine_factory=factory, notifier=notifier)
            self.delivery.notifier = notifier
            self.notifier = notifier
            self.config = loaded.config
            self._rules_loaded = len(rules)
        try:
            previous.close()
        except Exception as exc:  # noqa: BLE001 - the new set runs whatever the old one does
            log.warning("closing the previous notifier failed: %s", exc)
        enabled = [r.id for r in engine.rules]
        for section in needs_restart(self._boot_config, loaded.config):
            log.warning(
                "reload: %s changed in %s; it applies at the next restart",
                section,
                loaded.config.path,
            )
        log.info(
            "reloaded",
            extra={
                "rules": len(rules),
                "enabled": len(enabled),
                "windows_kept": len(kept),
                "rules_new_or_changed": sorted(set(enabled) - set(kept)),
                "silences_in_config": len(loaded.config.silences),
                "duration_s": round(time.monotonic() - started, 3),
            },
        )
        return True

    def _reload_rejected(self, problems: int) -> None:
        log.error(
            "reload rejected (%d problem%s): still running the previous config, rules and "
            "templates; fix and send SIGHUP again",
            problems,
            "" if problems == 1 else "s",
        )

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def banner(self) -> None:
        """Say where it polls, where health and metrics are, and how to use a real org."""
        assert self.server is not None
        announce(
            self.config,
            config_path=self.config_path,
            source_name=self.source.name,
            source_description=self.source_desc,
            rules=len(self.engine.rules) if self._rules_loaded is None else self._rules_loaded,
            server_url=self.server.url,
            out=self._banner_out,
        )

    # ------------------------------------------------------------------ one step each

    def warmup(self) -> int:
        """Rebuild the engine's windows from history before the cursor; returns events fed."""
        return self.polling.warm_up()

    def poll_once(self) -> PollOutcome:
        """One poll: fetch, evaluate, then commit alerts + engine state + cursor atomically."""
        return self.polling.run()

    def deliver_once(self) -> DeliveryOutcome:
        """One delivery pass over what is due now, counted per channel for /metrics."""
        return self.delivery.run()

    def deliver_until_idle(self) -> DeliveryOutcome:
        """Deliver until nothing is due now (failures wait for their backoff)."""
        return self.delivery.until_idle(lambda: self.stopping)

    # ------------------------------------------------------------------ jobs

    def _poll_job(self) -> None:
        if self.stopping:
            return
        if self.clock.time() < self.polling.paused_until:
            return
        try:
            with self._notices.running("poll"), self._jobs_lock:
                outcome = self.poll_once()
        except StoreError as exc:
            self.health.poll_failed(str(exc), fatal=False)
            self._store_failed("poll", exc)
            return
        except AlertingError as exc:
            self.health.poll_failed(str(exc), fatal=False)
            log.error("poll failed: %s", exc)
            return
        except Exception as exc:
            self.health.poll_failed(f"internal error: {type(exc).__name__}: {exc}", fatal=False)
            log.exception("poll failed with an internal error (please report it)")
            return
        self._store_works()
        if outcome.alerts and not self._delivering.is_set():
            self._deliver_soon()

    def _deliver_soon(self) -> None:
        """New alerts: have the main loop run the delivery job now, not at its interval.

        Not from this job's thread: APScheduler's ``shutdown(wait=True)`` holds the job
        store lock while it waits for running jobs, so a job calling ``modify_job``
        during a stop would wait for it forever.
        """
        self._nudge.set()
        self._wake.set()

    def _bring_delivery_forward(self, scheduler: BackgroundScheduler) -> None:
        self._nudge.clear()
        try:
            scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - a missed nudge only delays to the interval
            log.debug("could not bring the delivery forward: %s", exc)

    def _delivery_job(self) -> None:
        if self.stopping:
            return
        self._delivering.set()
        try:
            with self._notices.running("deliver"), self._jobs_lock:
                self.deliver_once()
        except StoreError as exc:
            self._store_failed("delivery", exc)
        except AlertingError as exc:
            log.error("delivery failed: %s", exc)
        except Exception:
            log.exception("delivery failed with an internal error (please report it)")
        finally:
            self._delivering.clear()

    def _store_failed(self, job: str, exc: StoreError) -> None:
        """One line per state database fault (both jobs hit it; /healthz keeps saying it)."""
        self.metrics.record_store_error(exc.cause)
        message = str(exc)
        if message == self._store_fault:
            log.debug("%s failed: %s", job, message)
            return
        self._store_fault = message
        log.error(
            "%s failed: %s",
            job,
            message,
            extra={"store_error": exc.cause, "state_path": self.store.path},
        )

    def _store_works(self) -> None:
        if self._store_fault is not None and self.store.fault is None:
            log.info("the state database %s works again", self.store.path)
            self._store_fault = None

    def run_once(self) -> int:
        """``--once``: one poll, deliver what is due; exit 0, 1 when the poll failed, 3
        when a delivery of this run was dead-lettered (cron watches the exit code)."""
        outcome = self.poll_once()
        delivered = self.deliver_until_idle()
        self.flush()
        if not outcome.ok:
            raise AlertingError(outcome.error or "the poll failed")
        if delivered.dead:
            log.error(
                "%d deliver%s dead-lettered in this run: `alerting outbox list` shows why, "
                "`alerting outbox retry` re-queues once fixed",
                delivered.dead,
                "y was" if delivered.dead == 1 else "ies were",
                extra={"dead": delivered.dead, "exit_code": EXIT_DEAD_LETTERED},
            )
            return EXIT_DEAD_LETTERED
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
        self._notices.install()
        scheduler.start()
        try:
            while not self._stop.is_set():
                self._wake.wait(0.5)
                self._wake.clear()
                if self._nudge.is_set() and not self._stop.is_set():
                    self._bring_delivery_forward(scheduler)
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    try:
                        self.reload()
                    except Exception as exc:  # noqa: BLE001 - a reload never ends detection
                        log.error(
                            "reload failed with an internal error (please report it): %s: %s; "
                            "still running the previous set",
                            type(exc).__name__,
                            exc,
                        )
        finally:
            log.info("stopping: finishing the current step")
            self.health.stopping()
            scheduler.shutdown(wait=True)
            self._scheduler = None
            self._notices.remove()
            self.flush()
        log.info("stopped")
        return 0

    def flush(self) -> None:
        """Persist engine state (the per-poll transaction already did; this is belt and braces)."""
        try:
            with self.store.transaction():
                self.engine.flush(self.store)
        except AlertingError as exc:
            log.warning("could not save the engine state at shutdown: %s", exc)

"""The Notifier: silences -> routes -> durable outbox -> channels, with retries.

``enqueue`` only writes to the store (so it can share the caller's transaction with the
cursor advance); ``deliver_due`` makes one pass over due deliveries. Delivery is
at-least-once: a row is marked sent only after the channel accepted it, so a crash
between the two re-sends it, and the fingerprint lets receivers deduplicate.

Alerts about one entity share an incident (``incidents.py``): on channels that group by
incident, its alerts wait in the outbox (``next_attempt_at``) and go out as one message,
and alerts a higher-severity message already covered are held (state ``held``).

Retry policy: a temporary failure waits ``initial_backoff * 2**attempts`` (capped at
``max_backoff``, with "equal jitter": between half and all of that) and is dead-lettered
after ``max_attempts``. A rate limit (429 + Retry-After) holds the channel until the
Retry-After time: the hold is stored, so it outlasts the pass, the next poll's new alerts
and a restart, and every due delivery of that channel waits for it *without* counting an
attempt (the receiver is healthy and asked us to wait, so it must not push the alert
towards the dead letter). Other channels go on. A permanent error dead-letters at once.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO

from alerting import jsonutil
from alerting.alert import Alert
from alerting.clock import Clock
from alerting.durations import td_ns
from alerting.notify import silences as silencing
from alerting.notify.channels import build_channel
from alerting.notify.channels.base import Channel
from alerting.notify.channels.errors import DeliveryError, PermanentError, RateLimited
from alerting.notify.details import DEFAULT_CONSOLE_URL
from alerting.notify.incidents import (
    Incidents,
    IncidentView,
    groups_by_default,
    message_order,
)
from alerting.notify.render import MessageBuilder, Renderer, check_templates
from alerting.notify.routing import Router
from alerting.notify.settings import (
    ChannelConfig,
    DeliveryConfig,
    NotifySettings,
    RouteConfig,
    SilenceConfig,
)
from alerting.notify.silences import Silence, active_silence, describe
from alerting.store import Delivery, Store
from alerting.timeintervals import TimeInterval

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    enqueued: int = 0
    silenced: int = 0
    duplicates: int = 0
    unrouted: int = 0


@dataclass(slots=True)
class DeliveryResult:
    """One delivery pass. Counts are deliveries (alert x channel), not messages.

    ``grouped`` counts deliveries that went out inside a multi-alert message;
    ``postponed`` those held back by a rate limit; ``waiting`` those inside group_wait;
    ``held`` those an incident's higher-severity message already covered.
    """

    sent: int = 0
    retried: int = 0
    dead: int = 0
    grouped: int = 0
    postponed: int = 0
    waiting: int = 0
    held: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)
    sent_by_channel: dict[str, int] = field(default_factory=dict)
    failed_by_channel: dict[str, int] = field(default_factory=dict)

    def count_sent(self, channel: str, n: int = 1) -> None:
        self.sent += n
        self.sent_by_channel[channel] = self.sent_by_channel.get(channel, 0) + n

    def count_failed(self, channel: str, *, dead: bool) -> None:
        if dead:
            self.dead += 1
        else:
            self.retried += 1
        self.failed_by_channel[channel] = self.failed_by_channel.get(channel, 0) + 1


@dataclass(slots=True)
class _Item:
    delivery: Delivery
    alert: Alert


def _alert_fields(alert: Alert, **more: object) -> dict[str, object]:
    """The structured fields of an alert's log line (JSON logs carry them as keys)."""
    fields: dict[str, object] = {
        "rule": alert.rule,
        "group": alert.group,
        "fingerprint": alert.fingerprint,
        "severity": alert.severity,
    }
    incident = getattr(alert, "incident", None)
    if incident:
        fields["incident"] = incident
    fields.update(more)
    return fields


@dataclass(slots=True)
class _Batch:
    """One message: its deliveries and, for an incident message, what it says about it."""

    items: list[_Item]
    incident: IncidentView | None = None


def _seconds(value: timedelta) -> float:
    return td_ns(value) / 1e9


class Notifier:
    """Routes alerts into the outbox and delivers them through the configured channels."""

    def __init__(
        self,
        *,
        channels: Mapping[str, ChannelConfig],
        routes: Sequence[RouteConfig],
        silences: Sequence[SilenceConfig],
        delivery: DeliveryConfig,
        templates_dir: Path,
        store: Store,
        clock: Clock,
        rng: random.Random | None = None,
        stdout: IO[str] | None = None,
        time_intervals: Mapping[str, Sequence[TimeInterval]] | None = None,
        console_url: str = DEFAULT_CONSOLE_URL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.delivery = delivery
        self.silences: list[Silence] = silencing.from_config(silences)
        self.intervals = dict(time_intervals or {})
        self.router = Router(routes, self.intervals)
        self.incidents = Incidents(delivery.incidents, store)
        self._types = {name: cfg.type for name, cfg in channels.items()}
        self.messages = MessageBuilder(Renderer(Path(templates_dir), console_url))
        self._rng = rng or random.Random()
        self.channels: dict[str, Channel] = {
            name: build_channel(name, cfg, self.messages, clock, stdout)
            for name, cfg in channels.items()
        }
        for route in routes:
            for name in route.channels:
                if name not in self.channels:
                    log.error(
                        "route names channel %r, which is not configured; its deliveries "
                        "will be dead-lettered",
                        name,
                    )

    # ------------------------------------------------------------------ enqueue

    def enqueue(self, alerts: Sequence[Alert]) -> EnqueueResult:
        """Silence, route and store ``alerts``; joins the caller's transaction if any."""
        enqueued = silenced = duplicates = unrouted = 0
        now = self.clock.time()
        with self.store.transaction():
            # Read in the poll's transaction: a silence added meanwhile applies from here.
            active = self.silences + silencing.from_store(self.store.silences(since=now))
            for alert in alerts:
                silence = active_silence(active, alert, now, self.intervals)
                if silence is not None:
                    silenced += 1
                    self.store.count_held(silence.key, now)
                    log.info(
                        "alert %s (rule %s, %s) silenced %s",
                        alert.fingerprint,
                        alert.rule,
                        alert.group_text,
                        describe(silence),
                        extra=_alert_fields(alert, silenced_by=silence.key),
                    )
                    continue
                targets = self.router.targets_for(alert, now)
                if not targets:
                    unrouted += 1
                    log.warning(
                        "alert %s (rule %s, severity %s) matched no route and was not sent: "
                        "add a catch-all route (a route without match)",
                        alert.fingerprint,
                        alert.rule,
                        alert.severity,
                    )
                    continue
                if self.store.has_alert(alert.fingerprint):
                    duplicates += 1
                    log.info(
                        "alert %s (rule %s) already queued; not sent again",
                        alert.fingerprint,
                        alert.rule,
                    )
                    continue
                alert.incident, joinable = self.incidents.assign(alert, now)
                grouped = {
                    name: self.incidents.due_at(alert.incident, name, now)
                    for name, setting in targets.items()
                    if joinable and self._groups(name, setting)
                }
                self.store.enqueue_alert(
                    alert.fingerprint,
                    alert.rule,
                    alert.to_json(),
                    list(targets),
                    now,
                    incident=alert.incident,
                    grouped=grouped,
                )
                enqueued += 1
                log.info("alert raised", extra=_alert_fields(alert, channels=list(targets)))
        return EnqueueResult(enqueued, silenced, duplicates, unrouted)

    def _groups(self, channel: str, setting: bool | None) -> bool:
        """Whether ``channel`` sends incidents as one message (route setting, else type)."""
        if setting is not None:
            return setting
        kind = self._types.get(channel)
        return kind is not None and groups_by_default(kind)

    # ------------------------------------------------------------------ deliver

    def deliver_due(self, limit: int = 500) -> DeliveryResult:
        """One pass over due deliveries; never raises for a channel failure."""
        result = DeliveryResult()
        now = self.clock.time()
        items: list[_Item] = []
        for d in self.store.due_deliveries(now, limit=limit):
            alert = self._load(d)
            if alert is None:
                self.store.mark_failed(
                    d.id, "the stored alert cannot be read (corrupt payload)", now, dead=True
                )
                result.count_failed(d.channel, dead=True)
                continue
            items.append(_Item(d, alert))
        blocked = self.store.channel_holds(now)
        for batch in self._batches(items, now, result):
            channel_name = batch.items[0].delivery.channel
            if channel_name in blocked:
                until, reason = blocked[channel_name]
                for item in batch.items:
                    self.store.postpone(item.delivery.id, until, reason)
                result.postponed += len(batch.items)
                continue
            self._send(batch, result, blocked)
        return result

    def _load(self, d: Delivery) -> Alert | None:
        try:
            return Alert.from_dict(jsonutil.loads(d.payload))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("delivery %d: stored alert %s is unreadable: %s", d.id, d.fingerprint, exc)
            return None

    def _batches(self, items: list[_Item], now: float, result: DeliveryResult) -> list[_Batch]:
        """Split due deliveries into messages: one per incident, or bursts of one rule."""
        plain: list[_Item] = []
        by_incident: dict[tuple[str, str], list[_Item]] = defaultdict(list)
        for item in items:
            if item.delivery.incident:
                by_incident[(item.delivery.channel, item.delivery.incident)].append(item)
            else:
                plain.append(item)
        batches = [_Batch(chunk) for chunk in self._bursts(plain, now, result)]
        for (channel, incident), group in by_incident.items():
            split = self.incidents.split(incident, channel, group)
            if split.held:
                self._hold(split.held, split.view, now)
                result.held += len(split.held)
            if split.send:
                split.send.sort(key=lambda i: message_order(i.alert))
                batches.append(_Batch(split.send, split.view))
        batches.sort(key=lambda b: (b.items[0].delivery.next_attempt_at, b.items[0].delivery.id))
        return batches

    def _hold(self, items: list[_Item], view: IncidentView, now: float) -> None:
        with self.store.transaction():
            for item in items:
                reason = (
                    f"held: incident {view.id} already sent a higher-severity alert "
                    f"({view.severity}) on this channel"
                )
                self.store.mark_held(item.delivery.id, now, reason)
                log.info(
                    "channel %s: alert %s (rule %s, %s) %s",
                    item.delivery.channel,
                    item.alert.fingerprint,
                    item.alert.rule,
                    item.alert.severity,
                    reason,
                )

    def _bursts(self, items: list[_Item], now: float, result: DeliveryResult) -> list[list[_Item]]:
        """Deliveries outside incidents: bursts of one rule+channel go together."""
        wait = _seconds(self.delivery.group_wait)
        batches: list[list[_Item]] = []
        by_key: dict[tuple[str, str], list[_Item]] = defaultdict(list)
        for item in items:
            channel = self.channels.get(item.delivery.channel)
            if wait <= 0 or channel is None or not channel.groups_bursts:
                batches.append([item])
            else:
                by_key[(item.delivery.channel, item.alert.rule)].append(item)
        for group in by_key.values():
            group.sort(key=lambda i: (i.delivery.created_at, i.delivery.id))
            while group:
                oldest = group[0].delivery
                chunk = [i for i in group if i.delivery.created_at - oldest.created_at <= wait]
                group = group[len(chunk) :]
                if oldest.attempts == 0 and now < oldest.created_at + wait:
                    result.waiting += len(chunk)  # the burst may still grow; stays pending
                    continue
                batches.append(chunk)
        return batches

    def _send(
        self,
        message: _Batch,
        result: DeliveryResult,
        blocked: dict[str, tuple[float, str]],
    ) -> None:
        batch = message.items
        name = batch[0].delivery.channel
        ids = ", ".join(str(i.delivery.id) for i in batch)
        channel = self.channels.get(name)
        if channel is None:
            self._fail(batch, PermanentError(f"channel {name!r} is not configured"), result)
            return
        try:
            channel.send([i.alert for i in batch], message.incident)
        except RateLimited as exc:
            until = self.clock.time() + exc.retry_after
            reason = f"rate limited: {exc}"
            log.warning(
                "channel %s: delivery %s postponed %.0fs: %s", name, ids, exc.retry_after, exc
            )
            with self.store.transaction():
                for item in batch:
                    self.store.postpone(item.delivery.id, until, reason)
                self.store.hold_channel(name, until, reason)
            blocked[name] = (until, reason)
            result.postponed += len(batch)
            return
        except DeliveryError as exc:
            self._fail(batch, exc, result)
            return
        except Exception as exc:
            log.exception("channel %s: delivery %s failed unexpectedly", name, ids)
            self._fail(batch, DeliveryError(f"unexpected {type(exc).__name__}: {exc}"), result)
            return
        now = self.clock.time()
        with self.store.transaction():
            for item in batch:
                self.store.mark_sent(item.delivery.id, now)
        result.count_sent(name, len(batch))
        result.messages += 1
        if len(batch) > 1:
            result.grouped += len(batch)
        log.info(
            "delivery sent",
            extra={
                "outcome": "sent",
                "channel": name,
                "deliveries": [i.delivery.id for i in batch],
                "rule": batch[0].alert.rule,
                "fingerprints": [i.alert.fingerprint for i in batch],
                **({"incident": message.incident.id} if message.incident else {}),
            },
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed tries (with jitter)."""
        initial = _seconds(self.delivery.initial_backoff)
        ceiling = _seconds(self.delivery.max_backoff)
        delay = min(ceiling, initial * (2 ** min(attempts, 60)))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _fail(self, batch: list[_Item], exc: DeliveryError, result: DeliveryResult) -> None:
        now = self.clock.time()
        permanent = isinstance(exc, PermanentError)
        # One wait for the whole batch, so a failed burst is retried (and grouped) together.
        delay = self.backoff(max(i.delivery.attempts for i in batch))
        with self.store.transaction():
            for item in batch:
                d = item.delivery
                attempt = d.attempts + 1
                dead = permanent or attempt >= self.delivery.max_attempts
                next_at = now if dead else now + delay
                self.store.mark_failed(d.id, str(exc), next_at, dead=dead)
                result.count_failed(d.channel, dead=dead)
                if dead:
                    why = "permanent error" if permanent else f"gave up after {attempt} attempts"
                    log.error(
                        "channel %s: delivery %d (rule %s, alert %s) dead-lettered (%s): %s; "
                        "`alerting outbox retry %d` re-queues it",
                        d.channel,
                        d.id,
                        item.alert.rule,
                        d.fingerprint,
                        why,
                        exc,
                        d.id,
                    )
                else:
                    log.warning(
                        "channel %s: delivery %d (rule %s) failed, attempt %d of %d: %s; "
                        "retrying in %.0fs",
                        d.channel,
                        d.id,
                        item.alert.rule,
                        attempt,
                        self.delivery.max_attempts,
                        exc,
                        next_at - now,
                    )
        result.errors.append(f"{batch[0].delivery.channel}: {exc}")

    def close(self) -> None:
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask shutdown
                log.warning("channel %s: close failed: %s", channel.name, exc)


def build_notifier(
    settings: NotifySettings, store: Store, clock: Clock, *, stdout: IO[str] | None = None
) -> Notifier:
    """The one way to build a Notifier from configured settings (service and replay)."""
    return Notifier(
        channels=settings.channels,
        routes=settings.routes,
        silences=settings.silences,
        delivery=settings.delivery,
        templates_dir=settings.templates_dir,
        store=store,
        clock=clock,
        stdout=stdout,
        time_intervals=settings.time_intervals,
        console_url=settings.console_url,
    )


__all__ = ["DeliveryResult", "EnqueueResult", "Notifier", "build_notifier", "check_templates"]

"""``alerting replay``: backtest rules over exported events (files -> engine -> JSONL).

Events stream through a bounded reorder buffer, so a file that is only roughly in time
order (several exports concatenated, services interleaved) is evaluated in event-time
order while memory stays flat: the buffer holds at most ``lateness`` of event time (and a
hard item cap). An event older than what was already released is still evaluated, at
once, and counted as late. The per-rule table says how noisy each rule would have been.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.engine.testing import select_rules
from alerting.errors import AlertingError
from alerting.events import Event

DEFAULT_LATENESS_NS = 10 * 60 * 1_000_000_000
MAX_BUFFERED = 1_000_000
ADVANCE_EVERY = 10_000
MAX_SKIP_WARNINGS = 20
NS_PER_DAY = 86_400 * 1_000_000_000


class ReorderBuffer:
    """Releases events in ``(time, id)`` order once they are ``lateness`` behind the newest.

    An event older than the last released one cannot be put back in order; it is released
    at once and counted in ``late``.
    """

    def __init__(self, lateness_ns: int = DEFAULT_LATENESS_NS, max_items: int = MAX_BUFFERED):
        self.lateness_ns = lateness_ns
        self.max_items = max_items
        self.late = 0
        self.released_ns: int | None = None
        self._heap: list[tuple[int, str, int, Event]] = []
        self._newest: int | None = None
        self._seq = 0

    def push(self, event: Event) -> list[Event]:
        """Add one event; return the events that are now ready, in order."""
        t = event.time_ns
        if self.released_ns is not None and t < self.released_ns:
            self.late += 1
            return [event]
        self._seq += 1
        heapq.heappush(self._heap, (t, event.id, self._seq, event))
        if self._newest is None or t > self._newest:
            self._newest = t
        horizon = self._newest - self.lateness_ns
        heap = self._heap
        if heap[0][0] > horizon and len(heap) <= self.max_items:
            return []
        ready = []
        while heap and (heap[0][0] <= horizon or len(heap) > self.max_items):
            ready.append(heapq.heappop(heap)[3])
        self.released_ns = ready[-1].time_ns
        return ready

    def drain(self) -> list[Event]:
        """Everything still held, in order (at the end of the input)."""
        ready = [heapq.heappop(self._heap)[3] for _ in range(len(self._heap))]
        if ready:
            self.released_ns = ready[-1].time_ns
        return ready

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(slots=True)
class RuleSummary:
    alerts: int = 0
    suppressed: int = 0
    groups: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ReplayResult:
    """Totals of one replay run."""

    events: int = 0
    skipped: int = 0
    late: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    alerts: int = 0
    per_rule: dict[str, RuleSummary] = field(default_factory=dict)

    @property
    def span_ns(self) -> int:
        if self.first_ns is None or self.last_ns is None:
            return 0
        return self.last_ns - self.first_ns


def replay(
    events: Iterable[Event],
    engine: Engine,
    *,
    on_alert: Callable[[Alert], None],
    lateness_ns: int = DEFAULT_LATENESS_NS,
    progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Run ``events`` through ``engine`` in event-time order; report each alert."""
    result = ReplayResult(per_rule={r.id: RuleSummary() for r in engine.rules})
    buffer = ReorderBuffer(lateness_ns)
    processed = 0

    def run(ready: list[Event]) -> None:
        nonlocal processed
        for event in ready:
            for alert in engine.process(event):
                result.alerts += 1
                summary = result.per_rule[alert.rule]
                summary.alerts += 1
                summary.groups.add(jsonutil.dumps(alert.group, sort_keys=True))
                on_alert(alert)
            processed += 1
            if processed % ADVANCE_EVERY == 0 and buffer.released_ns is not None:
                engine.advance(buffer.released_ns)

    for event in events:
        result.events += 1
        t = event.time_ns
        if result.first_ns is None or t < result.first_ns:
            result.first_ns = t
        if result.last_ns is None or t > result.last_ns:
            result.last_ns = t
        ready = buffer.push(event)
        if ready:
            run(ready)
        if progress is not None and result.events % 4096 == 0:
            progress(result)
    run(buffer.drain())
    result.late = buffer.late
    for rule_id, stats in engine.stats.items():
        result.per_rule[rule_id].suppressed = stats.suppressed
    return result


def format_summary(result: ReplayResult) -> str:
    """The per-rule table and the totals lines printed at the end of a replay."""
    days = max(result.span_ns / NS_PER_DAY, 1 / 24)
    rule_w = max([len("RULE"), *(len(r) for r in result.per_rule)])
    lines = [
        f"{'RULE':<{rule_w}}  {'ALERTS':>7}  {'ALERTS/DAY':>10}  {'GROUPS':>7}  {'SUPPRESSED':>10}"
    ]
    for rule_id, s in sorted(result.per_rule.items(), key=lambda kv: (-kv[1].alerts, kv[0])):
        lines.append(
            f"{rule_id:<{rule_w}}  {s.alerts:>7}  {s.alerts / days:>10.1f}  "
            f"{len(s.groups):>7}  {s.suppressed:>10}"
        )
    hours = result.span_ns / 3_600_000_000_000
    span = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    noun = "alert" if result.alerts == 1 else "alerts"
    lines.append(f"{result.alerts} {noun} over {span} of events")
    lines.append(
        f"{result.events} events read, {result.skipped} skipped (malformed), {result.late} late"
    )
    return "\n".join(lines)


def _rules_for(rules: list[CompiledRule], only: Sequence[str] | None) -> list[CompiledRule]:
    """The rules to replay: ``--rule`` picks ids (a disabled one is enabled to backtest it)."""
    if only:
        return [dataclasses.replace(r, enabled=True) for r in select_rules(rules, only)]
    return [r for r in rules if r.enabled]


class _Progress:
    """A one-line progress report on a terminal, at most twice a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, result: ReplayResult) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        self.shown = True
        self.stream.write(f"\r{result.events:,} events, {result.alerts:,} alerts ")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def main(args: argparse.Namespace) -> int:
    """``alerting replay --events F [--rules DIR] [--output F] [--rule ID] [--notify]``."""
    from alerting.source.files import read_events

    dirs = [Path(d) for d in (args.rules or ["rules"])]
    rules = _rules_for(load_rules(dirs), getattr(args, "only_rules", None))
    if not rules:
        raise AlertingError("no enabled rules to replay: enable a rule or name it with --rule")
    notifier = _Notify(args) if getattr(args, "notify", False) else None
    engine = Engine(rules)
    table_stream = sys.stderr if args.output == "-" else sys.stdout
    skip_count = [0]

    def on_skip(message: str) -> None:
        skip_count[0] += 1
        if skip_count[0] <= MAX_SKIP_WARNINGS:
            sys.stderr.write(f"warning: skipped {message}\n")

    progress = _Progress(sys.stderr)
    created: Path | None = None
    try:
        with ExitStack() as stack:
            out: TextIO | None = None
            if args.output == "-":
                out = sys.stdout
            elif args.output:
                try:
                    out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
                except OSError as exc:
                    raise AlertingError(
                        f"cannot write alerts to {args.output}: {exc.strerror}"
                    ) from None
                created = Path(args.output)
            writer = out

            def on_alert(alert: Alert) -> None:
                if writer is not None:
                    writer.write(alert.to_json() + "\n")
                if notifier is not None:
                    notifier.add(alert)

            events = read_events(args.events, on_skip=on_skip)
            try:
                result = replay(events, engine, on_alert=on_alert, progress=progress)
            finally:
                progress.clear()
    except BaseException:
        # No partial result presented as whole: an aborted run leaves no alerts file.
        if created is not None:
            created.unlink(missing_ok=True)
        if notifier is not None:
            notifier.close()
        raise
    result.skipped = skip_count[0]
    if skip_count[0] > MAX_SKIP_WARNINGS:
        sys.stderr.write(
            f"warning: {skip_count[0] - MAX_SKIP_WARNINGS} more malformed records skipped\n"
        )
    if result.events == 0:
        raise AlertingError(
            f"no events in {args.events}"
            + (f" ({result.skipped} malformed records skipped)" if result.skipped else "")
            + ": check the file (a JSON array or one JSON event per line)"
        )
    table_stream.write(format_summary(result) + "\n")
    if notifier is not None:
        table_stream.write(notifier.finish() + "\n")
    return 0


class _Notify:
    """``--notify``: deliver replayed alerts through the configuration's routes.

    Alerts go through a throwaway outbox (a temporary store), so a backtest never touches
    the service's state; deliveries that fail are retried only within this run.
    """

    BATCH = 500

    def __init__(self, args: argparse.Namespace) -> None:
        from alerting.clock import SystemClock
        from alerting.config import load_config
        from alerting.notify.pipeline import Notifier
        from alerting.store import Store

        config = load_config(args.config or "config.yaml")
        self._tmp = tempfile.TemporaryDirectory(prefix="alerting-replay-")
        self.clock = SystemClock()
        self.store = Store(Path(self._tmp.name) / "replay.db")
        self.notifier = Notifier(
            channels=config.channels,
            routes=config.routes,
            silences=config.silences,
            delivery=config.delivery,
            templates_dir=config.templates.path,
            store=self.store,
            clock=self.clock,
        )
        self.group_wait_s = config.delivery.group_wait.total_seconds()
        self.pending: list[Alert] = []
        self.silenced = self.unrouted = self.duplicates = 0

    def add(self, alert: Alert) -> None:
        self.pending.append(alert)
        if len(self.pending) >= self.BATCH:
            self._enqueue()

    def _enqueue(self) -> None:
        if self.pending:
            result = self.notifier.enqueue(self.pending)
            self.silenced += result.silenced
            self.unrouted += result.unrouted
            self.duplicates += result.duplicates
            self.pending = []
        self._deliver()

    def _deliver(self) -> None:
        waited = 0.0
        while True:
            result = self.notifier.deliver_due()
            handled = result.sent + result.dead + result.retried + result.postponed
            if handled:
                continue
            if result.waiting and waited <= self.group_wait_s + 1:
                self.clock.sleep(0.25)  # let a group_wait window close
                waited += 0.25
                continue
            return

    def close(self) -> None:
        self.notifier.close()
        self.store.close()
        self._tmp.cleanup()

    def finish(self) -> str:
        """Deliver what is left; say what happened."""
        try:
            self._enqueue()
            counts = self.store.outbox_counts()
        finally:
            self.close()
        return (
            f"notify: {counts.get('sent', 0)} deliveries sent, "
            f"{counts.get('pending', 0)} still failing (not retried after replay), "
            f"{counts.get('dead', 0)} dead; {self.silenced} silenced, "
            f"{self.unrouted} matched no route"
        )

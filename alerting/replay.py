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
import gc
import heapq
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.engine.testing import select_rules
from alerting.errors import AlertingError
from alerting.events import Event, LazyEvent
from alerting.source.files import HeadFilter, read_events

DEFAULT_LATENESS_NS = 10 * 60 * 1_000_000_000
MAX_BUFFERED = 1_000_000
ADVANCE_EVERY = 10_000
MAX_SKIP_WARNINGS = 20
NS_PER_DAY = 86_400 * 1_000_000_000

# (time, id, arrival number, event)
_Item = tuple[int, str, int, Event]


class ReorderBuffer:
    """Puts events in ``(time, id)`` order, releasing each once it is ``lateness`` behind
    the newest arrival (or when more than ``max_items`` are held).

    An event older than the last released one cannot be put back in order; it is released
    at once and counted in ``late``. Exports are mostly in order, so an event that sorts
    after everything held is appended to a queue (O(1)); only the others go into a heap,
    and the two are merged on release. ``ordered()`` is one generator with its state in
    locals: this runs once per event of a replay.
    """

    def __init__(self, lateness_ns: int = DEFAULT_LATENESS_NS, max_items: int = MAX_BUFFERED):
        self.lateness_ns = lateness_ns
        self.max_items = max_items
        self.late = 0
        self._run: deque[Event] = deque()
        self._heap: list[_Item] = []

    def ordered(self, events: Iterable[Event]) -> Iterator[Event]:
        """``events`` in ``(time, id)`` order as far as the lateness allows."""
        lateness = self.lateness_ns
        limit = self.max_items
        run = self._run  # events, in order: an arrival that sorts last is appended
        heap = self._heap  # (time, id, arrival number, event) for the other arrivals
        append = run.append
        popleft = run.popleft
        newest = last_t = released = -(1 << 62)  # before any event time
        last_id = released_id = ""
        seq = 0
        for event in events:
            t = event.time_ns
            if t < released or (t == released and event.id < released_id):
                # It sorts before what already went out: it cannot be put back in order.
                self.late += 1
                yield event
                continue
            if t > last_t or (t == last_t and event.id >= last_id) or not run:
                append(event)
                last_t, last_id = t, event.id
            else:
                seq += 1
                heapq.heappush(heap, (t, event.id, seq, event))
            if t > newest:
                newest = t
            horizon = newest - lateness
            if heap:  # the general case: merge the queue and the heap while ready
                total = len(run) + len(heap)
                while total:
                    if run and (not heap or (run[0].time_ns, run[0].id) <= heap[0][:2]):
                        if run[0].time_ns > horizon and total <= limit:
                            break
                        ready = popleft()
                    else:
                        if heap[0][0] > horizon and total <= limit:
                            break
                        ready = heapq.heappop(heap)[3]
                    total -= 1
                    released, released_id = ready.time_ns, ready.id
                    yield ready
                continue
            while run and (run[0].time_ns <= horizon or len(run) > limit):
                ready = popleft()
                released, released_id = ready.time_ns, ready.id
                yield ready
        heap.sort()
        rest = [(e.time_ns, e.id, 0, e) for e in run]
        for item in heapq.merge(rest, heap):
            yield item[3]
        run.clear()
        heap.clear()

    def __len__(self) -> int:
        return len(self._run) + len(self._heap)


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


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Run the garbage collector's young-generation pass less often while replaying.

    Events are acyclic JSON, freed by reference counting; with the default threshold
    the collector still walks the young objects every 700 container allocations, a
    few percent of replay time for nothing. Cycles are still collected, less often.
    """
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def replay(
    events: Iterable[Event],
    engine: Engine,
    *,
    on_alert: Callable[[Alert], None],
    lateness_ns: int = DEFAULT_LATENESS_NS,
    progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Run ``events`` through ``engine`` in event-time order; report each alert.

    ``events`` from ``read_for_replay(path, engine)`` (``RoutedEvents``) leave out, and
    count, the events no rule can match (told from their head): those are never held or
    decoded. The others are ``LazyEvent``s, decoded when the buffer releases them, only
    in the fields the rules read (``Engine.fields_read``), and they go through the rules
    ``engine`` routed their head to. One whose body turns out malformed is reported by
    its reader and not counted as read.
    """
    routed = type(events) is RoutedEvents
    if routed and events.engine is not engine:  # type: ignore[attr-defined]
        # Its reader left out what that engine's rules cannot match, maybe not these.
        raise ValueError("events read for another engine: use read_for_replay(path, engine)")
    # (other events: nothing was left out, an empty tally)
    unmatched = events.unmatched if type(events) is RoutedEvents else HeadFilter(bool)
    result = ReplayResult(per_rule={r.id: RuleSummary() for r in engine.rules})
    buffer = ReorderBuffer(lateness_ns)
    process = engine.process
    fields = engine.fields_read()
    project = jsonutil.projection_decoder(fields) if fields is not None else None
    per_rule = result.per_rule

    # The per-event loop keeps its counters in locals and hands them to ``result`` when
    # progress is reported and at the end; the figures are the same, the loop faster.
    count = 0
    malformed = 0
    first_ns: int | None = None
    last_ns: int | None = None
    with _fewer_gc_passes():
        for event in buffer.ordered(events):
            count += 1
            t = event.time_ns
            if first_ns is None:
                first_ns = last_ns = t
            elif t > last_ns:  # type: ignore[operator]
                last_ns = t
            elif t < first_ns:
                first_ns = t
            if count % ADVANCE_EVERY == 0:
                engine.advance(last_ns)  # type: ignore[arg-type]  # the newest time evaluated
            if progress is not None and count % 4096 == 0:
                result.events = count + unmatched.dropped - malformed
                result.first_ns, result.last_ns = first_ns, last_ns
                progress(result)
            if type(event) is LazyEvent:
                parsed = event.parsed(project)
                if parsed is None:
                    malformed += 1
                    continue
                alerts = process(parsed, event.verdict if routed else None)
            else:
                alerts = process(event)
            if alerts:
                for alert in alerts:
                    result.alerts += 1
                    summary = per_rule[alert.rule]
                    summary.alerts += 1
                    summary.groups.add(jsonutil.dumps(alert.group, sort_keys=True))
                    on_alert(alert)
    spans = (first_ns, last_ns, unmatched.first_ns, unmatched.last_ns)
    times = [t for t in spans if t is not None]
    result.events = count - malformed + unmatched.dropped
    result.first_ns, result.last_ns = (min(times), max(times)) if times else (None, None)
    result.late = buffer.late
    for rule_id, stats in engine.stats.items():
        result.per_rule[rule_id].suppressed = stats.suppressed
    return result


@dataclass(frozen=True, slots=True)
class RoutedEvents:
    """Events read for ``engine``: a ``LazyEvent``'s ``verdict`` is ``engine.route()`` of
    its head, which ``replay`` hands back to ``engine`` with the event (no second
    lookup). The events no rule can match are left out and counted in ``unmatched``."""

    events: Iterator[Event]
    engine: Engine
    unmatched: HeadFilter

    def __iter__(self) -> Iterator[Event]:
        return self.events


def read_for_replay(
    path: str | Path, engine: Engine, *, on_skip: Callable[[str], None]
) -> RoutedEvents:
    """The events of a file as ``replay(events, engine)`` reads them fastest: decoded
    only in the fields ``engine``'s conditions read, the rest when needed."""
    keep = HeadFilter(engine.route)
    head = engine.condition_fields()
    events = read_events(path, on_skip=on_skip, head=head, keep=keep)
    return RoutedEvents(events, engine, keep)


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

            events = read_for_replay(args.events, engine, on_skip=on_skip)
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
        # A backtest has no one to wait for: incident messages go out as each batch ends.
        incidents = config.delivery.incidents.model_copy(
            update={"group_wait": timedelta(0), "group_interval": timedelta(0)}
        )
        self.notifier = Notifier(
            channels=config.channels,
            routes=config.routes,
            silences=config.silences,
            delivery=config.delivery.model_copy(update={"incidents": incidents}),
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

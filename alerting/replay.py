"""Backtesting rules over exported events (files -> engine -> alerts), as a library.

Events stream through a bounded reorder buffer, so a file that is only roughly in time
order (several exports concatenated, services interleaved) is evaluated in event-time
order while memory stays flat: the buffer holds at most ``lateness`` of event time (and a
hard item cap). An event older than what was already released is still evaluated, at
once, and counted as late. The command (table, progress, --notify) is
``alerting.commands.replay``.
"""

from __future__ import annotations

import gc
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alerting import jsonutil
from alerting.alert import Alert
from alerting.durations import MINUTE_NS
from alerting.engine.engine import Engine
from alerting.events import Event, LazyEvent
from alerting.source.files import HeadFilter, read_events

DEFAULT_LATENESS_NS = 10 * MINUTE_NS
MAX_BUFFERED = 1_000_000
ADVANCE_EVERY = 10_000

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

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
import shutil
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alerting import jsonutil, replay_sort
from alerting.alert import Alert
from alerting.durations import DAY_NS, MINUTE_NS, td_ns
from alerting.engine.engine import Engine
from alerting.engine.rule import CompiledRule
from alerting.engine.types import NewValueSpec
from alerting.events import (
    Event,
    JsonEvent,
    LazyEvent,
    RecentIds,
    parse_timestamp,
)
from alerting.replay_shape import FIRST_EVENTS, check_export
from alerting.replay_sort import sort_events
from alerting.source.files import HeadFilter, first_events, read_events, read_lines

DEFAULT_LATENESS_NS = 10 * MINUTE_NS
MAX_BUFFERED = 1_000_000
ADVANCE_EVERY = 10_000
ALERT_WRITE_BUFFER = 1 << 20
"""Bytes buffered per write of alert lines (the spool, ``replay --output``): a line is
~3 KB, and the default 8 KiB made a write(2) every few alerts, a fifth of an alert's
cost on an alert-heavy replay."""

# (time, id, arrival number, event)
_Item = tuple[int, str, int, Event]


class OutOfOrder(Exception):
    """A strict ``ReorderBuffer`` met an event it cannot put back in order."""


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

    def ordered(self, events: Iterable[Event], *, strict: bool = False) -> Iterator[Event]:
        """``events`` in ``(time, id)`` order as far as the lateness allows; ``strict``:
        raise ``OutOfOrder`` at the first event that cannot be put back in order."""
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
                if strict:
                    raise OutOfOrder
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
    # UTC day number (days since the epoch) of each alert's last event -> alerts that day
    per_day: dict[int, int] = field(default_factory=dict)
    # A baseline rule (new_value) only learns for this long from its first event: its
    # first days read 0 by design, not because nothing happened.
    learn_ns: int = 0


@dataclass(slots=True)
class ReplayResult:
    """Totals of one replay run."""

    events: int = 0
    skipped: int = 0
    late: int = 0
    duplicates: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    alerts: int = 0
    per_rule: dict[str, RuleSummary] = field(default_factory=dict)
    # What was done to put the input in order ("input was newest-first: sorted ...").
    ordering: str | None = None

    @property
    def span_ns(self) -> int:
        if self.first_ns is None or self.last_ns is None:
            return 0
        return self.last_ns - self.first_ns

    @property
    def days(self) -> list[int]:
        """Every UTC day number the input spans, first to last."""
        if self.first_ns is None or self.last_ns is None:
            return []
        return list(range(self.first_ns // DAY_NS, self.last_ns // DAY_NS + 1))

    def learning_days(self, rule_id: str) -> set[int]:
        """The days (wholly or partly) inside ``rule_id``'s learning period."""
        learn = self.per_rule[rule_id].learn_ns
        if not learn or self.first_ns is None:
            return set()
        return set(range(self.first_ns // DAY_NS, (self.first_ns + learn - 1) // DAY_NS + 1))


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
    strict: bool = False,
    dedupe_ns: int | None = None,
) -> ReplayResult:
    """Run ``events`` through ``engine`` in event-time order; report each alert.

    ``strict``: raise ``OutOfOrder`` at the first event too late to put back in order
    (``replay_file`` then sorts the input); otherwise it is evaluated at once and counted
    as late. ``dedupe_ns``: drop an event whose id was seen that much event time before
    (``drop_duplicates``, as the service drops them), counted in ``duplicates``; so are
    the repeats among the events a ``RoutedEvents`` reader leaves out (its ``repeats``).

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
    if routed and dedupe_ns is not None:  # the reader drops the others: it tells their repeats
        unmatched.repeats = RecentIds(dedupe_ns)
    result = ReplayResult(per_rule={r.id: RuleSummary(learn_ns=_learn_ns(r)) for r in engine.rules})
    buffer = ReorderBuffer(lateness_ns)
    ordered = buffer.ordered(events, strict=strict)
    if strict:  # a late event raises before the engine meets it
        engine.assume_in_order()
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
    # Duplicates dropped in this loop, as ``drop_duplicates`` drops them (no generator
    # layer: benchmarks/README.md, "The buffer and the loop").
    repeated = RecentIds(dedupe_ns).repeated if dedupe_ns is not None else None
    duplicates = 0
    with _fewer_gc_passes():
        for event in ordered:
            t = event.time_ns
            if repeated is not None and repeated(event.id, t):
                duplicates += 1
                continue
            count += 1
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
            elif routed and type(event) is JsonEvent:  # decoded at once, with its route
                alerts = process(event, event.verdict)
            else:
                alerts = process(event)
            if alerts:
                for alert in alerts:
                    _count(result, per_rule, alert)
                    on_alert(alert)
    spans = (first_ns, last_ns, unmatched.first_ns, unmatched.last_ns)
    times = [t for t in spans if t is not None]
    if last_ns is not None:
        # The digests of every period over by the input's last event, after all the
        # events' alerts and in rule order: one place, however the events were read or the
        # rules split. The last of all the events, those no rule matched too: time went on
        # for the service as well, so a rule backtested alone sends what it sends in the
        # pack (and each --jobs worker, which reads every line, sees the same end).
        for alert in engine.due(max(times)):
            _count(result, per_rule, alert)
            on_alert(alert)
    result.events = count - malformed + unmatched.dropped + duplicates
    result.first_ns, result.last_ns = (min(times), max(times)) if times else (None, None)
    result.late = buffer.late
    result.duplicates = duplicates + unmatched.duplicates  # in dropped too: read once
    for rule_id, stats in engine.stats.items():
        result.per_rule[rule_id].suppressed = stats.suppressed
    return result


def _count(result: ReplayResult, per_rule: dict[str, RuleSummary], alert: Alert) -> None:
    result.alerts += 1
    summary = per_rule[alert.rule]
    summary.alerts += 1
    summary.groups.add(jsonutil.dumps(alert.group, sort_keys=True))
    day = parse_timestamp(alert.last_event_time) // DAY_NS
    summary.per_day[day] = summary.per_day.get(day, 0) + 1


def _learn_ns(rule: CompiledRule) -> int:
    """How long a baseline rule only learns (0 for rules that alert from the start)."""
    spec = rule.aggregation
    return td_ns(spec.learn) if isinstance(spec, NewValueSpec) else 0


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
    path: str | Path,
    engine: Engine,
    *,
    on_skip: Callable[[str], None],
    name: str | None = None,
    lines: Iterator[bytes] | None = None,
) -> RoutedEvents:
    """The events of a file as ``replay(events, engine)`` reads them fastest: decoded
    only in the fields ``engine``'s conditions read, the rest when needed.

    ``lines``: JSON lines to read instead of the file (a sorted input's merged runs);
    ``name`` is what messages call the input (default: ``path``). The reader decodes a
    line once in every field read while most lines pass (``files._once_pays``)."""
    keep = HeadFilter(engine.route)
    head = engine.condition_fields()
    body = engine.fields_read()
    if lines is not None:
        events = read_lines(
            lines, name or str(path), on_skip=on_skip, head=head, keep=keep, body=body
        )
    else:
        events = read_events(path, on_skip=on_skip, head=head, keep=keep, name=name, body=body)
    return RoutedEvents(events, engine, keep)


def replay_file(
    path: str | Path,
    make_engine: Callable[[], Engine],
    *,
    on_skip: Callable[[str], None],
    on_alert: Callable[[Alert], None] | None,
    on_alert_json: Callable[[str], None] | None = None,
    lateness_ns: int = DEFAULT_LATENESS_NS,
    dedupe_ns: int | None = None,
    progress: Callable[[ReplayResult], None] | None = None,
    sort_progress: Callable[[int], None] | None = None,
    tmp_dir: str | Path | None = None,
    run_bytes: int | None = None,
) -> ReplayResult:
    """Replay a file (``-`` = stdin) with the same alerts whatever its order.

    The input streams through the reorder buffer while it is in order within
    ``lateness_ns``; at the first event too late for that, the attempt is dropped and the
    file sorted on disk (``replay_sort.sort_events``) and replayed from the sorted runs
    through a fresh ``make_engine()``. Alerts are held in a spool file until the replay
    is over, so ``on_alert`` sees only the answer, never the dropped attempt's;
    ``on_alert_json`` gets each alert's JSON line (``Alert.to_json``, no newline) as
    spooled, before ``on_alert`` (None: not wanted) gets the alert. Each
    malformed record is reported once. Duplicates are dropped within ``dedupe_ns``
    (default: ``lateness_ns``, the service's overlap). Stdin is copied to the temporary
    directory first, so that it can be read twice.
    """
    window = lateness_ns if dedupe_ns is None else dedupe_ns
    name = "<stdin>" if str(path) == "-" else str(path)
    skips = _ReportOnce(on_skip)
    with tempfile.TemporaryDirectory(prefix="alerting-replay-", dir=tmp_dir) as tmp:
        work = Path(tmp)
        source = spool_stdin(work / "stdin") if str(path) == "-" else Path(path)
        with _AlertSpool(work / "alerts.jsonl") as spool:
            engine = make_engine()
            check_export(first_events(source, FIRST_EVENTS), engine.rules, name)
            try:
                events = read_for_replay(source, engine, on_skip=skips, name=name)
                result = replay(
                    events,
                    engine,
                    on_alert=spool.add,
                    lateness_ns=lateness_ns,
                    progress=progress,
                    strict=True,
                    dedupe_ns=window,
                )
            except OutOfOrder:
                spool.clear()
                del events
                engine = make_engine()
                runs = sort_events(
                    read_events(source, on_skip=skips, name=name),
                    work,
                    run_bytes=replay_sort.RUN_BYTES if run_bytes is None else run_bytes,
                    progress=sort_progress,
                )
                lines = runs.lines(dedupe_ns=window)
                sorted_events = read_for_replay(
                    source, engine, on_skip=skips, name=name, lines=lines
                )
                # In (time, id) order now, so strict never raises here: it promises the
                # engine that order, as for an in-order file (Engine.assume_in_order).
                result = replay(
                    sorted_events,
                    engine,
                    on_alert=spool.add,
                    lateness_ns=lateness_ns,
                    progress=progress,
                    strict=True,
                    dedupe_ns=window,
                )
                result.ordering = runs.describe()
                result.duplicates += runs.duplicates.dropped
                result.events += runs.duplicates.dropped
            spool.emit(on_alert, on_alert_json)
    return result


class _ReportOnce:
    """An ``on_skip`` that passes each message on once: a sorted second read of the
    input meets the malformed records the first attempt already reported."""

    def __init__(self, on_skip: Callable[[str], None]) -> None:
        self._on_skip = on_skip
        self._seen: set[str] = set()

    def __call__(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            self._on_skip(message)


def spool_stdin(path: Path) -> Path:
    with open(path, "wb") as fh:
        shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
    return path


class _AlertSpool:
    """Alerts as JSON lines in a file until the replay is over (``emit``), so an attempt
    given up for sorting can be dropped (``clear``) without holding alerts in memory.
    The lines are bytes as orjson writes them: no round trip through ``str``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fh = open(path, "w+b", buffering=ALERT_WRITE_BUFFER)  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> _AlertSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def add(self, alert: Alert) -> None:
        self._fh.write(jsonutil.dumpb(alert.to_dict()) + b"\n")

    def clear(self) -> None:
        self._fh.seek(0)
        self._fh.truncate()

    def emit(
        self,
        on_alert: Callable[[Alert], None] | None,
        on_alert_json: Callable[[str], None] | None = None,
    ) -> None:
        """Each spooled alert: its JSON text as spooled (``Alert.to_json``), then the alert
        rebuilt from it (only for a caller that wants it: ``replay --output`` writes the
        text)."""
        self._fh.flush()
        self._fh.seek(0)
        for line in self._fh:
            if on_alert_json is not None:
                on_alert_json(line[:-1].decode())
            if on_alert is not None:
                on_alert(Alert(**jsonutil.loads(line)))

"""Per-group event-time series: the storage under every windowed aggregation.

A ``Series`` keeps one group's held events sorted by ``(event time, event id)`` as
parallel columns (times, ids, full JSON, projection, one payload each), so the common
case (events arriving in order) is an ``append`` per column and only a late event pays
for ``bisect`` + ``insert``. The group dict is per series. Held events are slim
(``alerting.engine.held``): only the newest ``MAX_SAMPLE_EVENTS`` of a series keep their
full JSON, for alert samples. ``Windows`` maps group keys to series, counts the entries
of the whole rule and enforces the per-rule memory cap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, MutableSequence, Sequence
from enum import Enum
from typing import Any, Final, Generic, Protocol, TypeVar

from alerting import jsonutil
from alerting.engine.held import MAX_SAMPLE_EVENTS, HeldEvent, Holder, event_json
from alerting.events import Event, JsonEvent

# The cap warning is reported under the aggregations' logger, where users configure it.
logger = logging.getLogger("alerting.engine.aggregations")

SHRINK_TO = 0.9
"""On hitting the cap, drop the oldest entries down to this fraction of it (amortised)."""

KEEP_FULL = MAX_SAMPLE_EVENTS
"""Entries per series that keep their full JSON: the newest, the alert's sample pool."""


class _Deferred(Enum):
    PART = "deferred"


DEFERRED: Final = _Deferred.PART
"""``Series.parts[i]`` of an entry whose projection waits until it is slimmed."""


class Series:
    """One group's held events in ``(time, id)`` order, with one payload (aux) each.

    Entry ``i`` is ``times[i]``, ``ids[i]``, ``fulls[i]`` (its full JSON, None once
    slim), ``parts[i]`` (its projection, None when the rule projects nothing) and
    ``aux[i]``: columns, not an object per entry (``entries_as_columns``). Only the
    newest ``KEEP_FULL`` entries may hold their full JSON: an insert that pushes an entry
    out of them slims it, and it stays slim (deleting newer entries leaves fewer full
    ones). ``event(i)`` is entry ``i`` as a ``HeldEvent``, made when a firing needs it.

    An entry inserted with ``defer=True`` takes its projection only when it is slimmed
    (``parts[i]`` is ``DEFERRED`` until then), and not at all when ``_settle`` finds
    that it can no longer be part of a firing (``deferred_projection``).
    """

    __slots__ = ("_holder", "_project", "_slims", "aux", "fulls", "group", "ids", "parts", "times")

    def __init__(self, holder: Holder) -> None:
        self.times: MutableSequence[int] = array("q")
        self.ids: list[str] = []
        self.fulls: list[bytes | None] = []
        self.parts: list[bytes | _Deferred | None] = []
        self.aux: list[Any] = []
        self.group: dict[str, Any] = {}  # the group's {path: value}, set by Windows.get
        self._holder = holder
        self._project = holder.project
        self._slims = not holder.hold_full

    def insert(self, event: Event, aux: Any, defer: bool = False) -> int:
        """Hold ``event`` (being processed: its ``raw`` is hot) in ``(time, id)`` order;
        returns the index. Appends when in order. ``defer``: take the projection only
        if the entry is slimmed while it may still be needed (class docstring)."""
        times = self.times
        ids = self.ids
        time_ns = event.time_ns
        event_id = event.id
        full = event.blob if type(event) is JsonEvent else event_json(event)
        project = self._project
        part: bytes | _Deferred | None = (
            None if project is None else DEFERRED if defer else project(event.raw)
        )
        if not times or time_ns > times[-1] or (time_ns == times[-1] and event_id >= ids[-1]):
            try:
                times.append(time_ns)
            except OverflowError:
                times = self._boxed_times()
                times.append(time_ns)
            ids.append(event_id)
            fulls = self.fulls
            fulls.append(full)
            parts = self.parts
            parts.append(part)
            self.aux.append(aux)
            n = len(times)
            if n > KEEP_FULL and self._slims:
                k = n - 1 - KEEP_FULL
                if parts[k] is DEFERRED:
                    self._settle(k)
                fulls[k] = None
            return n - 1
        if part is DEFERRED:  # a late entry is projected at once, while raw is hot
            part = project(event.raw)  # type: ignore[misc]  # not None: DEFERRED
        i = bisect_left(times, time_ns)
        end = bisect_right(times, time_ns, i)
        while i < end and ids[i] <= event_id:
            i += 1
        try:
            times.insert(i, time_ns)
        except OverflowError:
            times = self._boxed_times()
            times.insert(i, time_ns)
        ids.insert(i, event_id)
        fulls = self.fulls
        fulls.insert(i, full)
        parts = self.parts
        parts.insert(i, part)
        self.aux.insert(i, aux)
        n = len(times)
        if self._slims:
            if i < n - KEEP_FULL:
                fulls[i] = None  # late, behind KEEP_FULL newer entries: never a sample
            elif n > KEEP_FULL:
                k = n - 1 - KEEP_FULL
                if parts[k] is DEFERRED:
                    self._settle(k)
                fulls[k] = None
        return i

    def _settle(self, k: int) -> None:
        """Entry ``k``, deferred and about to be slimmed, gets its projection from its
        full JSON (``needed`` says whether it may still be part of a firing)."""
        project, full = self._project, self.fulls[k]
        # DEFERRED is only set where the rule projects, and slimming comes after it
        assert project is not None
        assert full is not None
        part = None
        if self.needed(k):
            try:
                whole = jsonutil.loads(full)
            except ValueError:  # e.g. 1e999 in a field no rule reads
                whole = jsonutil.loads_whole(full)
            # nothing parses it whole: its time and id are what an alert shows
            part = None if whole is None else project(whole)
        self.parts[k] = part

    def needed(self, k: int) -> bool:
        """Whether deferred entry ``k`` may still be part of a firing (overridden where
        the aggregation can tell; by default it may)."""
        return True

    def _boxed_times(self) -> MutableSequence[int]:
        """The times as a list of ints: for a time beyond 64 bits (past the year 2262)."""
        self.times = list(self.times)
        return self.times

    def event(self, i: int) -> HeldEvent:
        """Entry ``i`` as a held event (full while it may be a sample, else slim)."""
        part = self.parts[i]
        # A deferred entry is still full, and a full event's raw is its JSON, not part.
        return self._holder.event(
            self.times[i], self.ids[i], self.fulls[i], None if part is DEFERRED else part
        )

    def events(self, indexes: Iterable[int]) -> list[HeldEvent]:
        """The entries at ``indexes`` as held events."""
        return [self.event(i) for i in indexes]

    def delete(self, start: int, stop: int) -> None:
        """Remove entries ``[start, stop)`` (consumed or evicted)."""
        del self.times[start:stop]
        del self.ids[start:stop]
        del self.fulls[start:stop]
        del self.parts[start:stop]
        del self.aux[start:stop]

    def remove(self, indexes: Iterable[int]) -> int:
        """Remove scattered entries (a consumed sequence); returns how many."""
        drop = sorted(set(indexes))
        if not drop:
            return 0
        first = drop[0]
        dropped = set(drop)
        keep = [j for j in range(first, len(self.times)) if j not in dropped]
        columns: tuple[MutableSequence[Any], ...] = (
            self.times,
            self.ids,
            self.fulls,
            self.parts,
            self.aux,
        )
        for column in columns:
            tail = [column[j] for j in keep]
            del column[first:]
            column.extend(tail)
        return len(drop)

    def drop_before(self, cutoff_ns: int) -> int:
        """Drop entries older than ``cutoff_ns``; returns how many."""
        k = bisect_left(self.times, cutoff_ns)
        if k:
            self.delete(0, k)
        return k


class GroupSeries(Protocol):
    """What ``Windows`` needs of a group's series (``Series``, or travel's own columns)."""

    group: dict[str, Any]

    @property
    def times(self) -> Sequence[int]:
        """The entries' event times, in order."""
        ...

    def drop_before(self, cutoff_ns: int) -> int:
        """Drop entries older than ``cutoff_ns``; returns how many."""
        ...


S = TypeVar("S", bound=GroupSeries)


class Windows(Generic[S]):
    """All groups' series of one rule, with the entry count and the memory cap."""

    __slots__ = ("_factory", "_warned", "groups", "kind", "max_entries", "rule_id", "size")

    def __init__(
        self, factory: Callable[[], S], *, rule_id: str, kind: str, max_entries: int
    ) -> None:
        self._factory = factory
        self.groups: dict[str, S] = {}
        self.size = 0
        self.rule_id = rule_id
        self.kind = kind
        self.max_entries = max(1, max_entries)
        self._warned = False

    def get(self, group_key: str, group: dict[str, Any]) -> S:
        """The group's series, made on first use (holding ``group``, the group dict)."""
        series = self.groups.get(group_key)
        if series is None:
            series = self.groups[group_key] = self._factory()
            series.group = group
        return series

    def forget_if_empty(self, group_key: str, series: S) -> None:
        if not series.times:
            self.groups.pop(group_key, None)

    def evict_before(self, cutoff_ns: int) -> None:
        """Drop every entry older than ``cutoff_ns`` and the groups left empty."""
        empty = []
        for key, series in self.groups.items():
            if series.times and series.times[0] < cutoff_ns:
                self.size -= series.drop_before(cutoff_ns)
                if not series.times:
                    empty.append(key)
        for key in empty:
            del self.groups[key]

    def enforce_cap(self) -> None:
        """Past ``max_entries``, drop the oldest entries across groups (warn once)."""
        if self.size <= self.max_entries:
            return
        target = int(self.max_entries * SHRINK_TO)
        excess = self.size - target
        merged = heapq.merge(*(s.times for s in self.groups.values()))
        newest_dropped = next(itertools.islice(merged, excess - 1, None))
        before = self.size
        self.evict_before(newest_dropped + 1)
        if not self._warned:
            self._warned = True
            logger.warning(
                "rule %s: %s state reached max_entries=%d held events; dropped the %d "
                "oldest (firings that needed them are missed). Narrow the rule's condition "
                "or group, shorten its window, or raise the cap. Warned once per rule.",
                self.rule_id,
                self.kind,
                self.max_entries,
                before - self.size,
            )

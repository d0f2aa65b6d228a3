"""digest {every, field}: a period's hits of a group as one alert, not one each.

Some matches matter only as a list: the accounts that signed in without MFA in an org
still rolling MFA out are worth one message a day, not an alert per login. Periods are
aligned on the Unix epoch (``every: 1d`` = UTC days). The engine is driven by events,
a period's digest fires when event time (``due``, from the engine's watermark) passes
its end by the late-event tolerance, or earlier when the group's first hit of a later
period arrives, with every hit of the period (``count`` exact; ``details.values``: the
distinct values of ``field``). Like the windowed aggregations it keeps nothing in the state database: a
restart loses the open period's hits unless they are read again.
"""

from __future__ import annotations

from bisect import insort
from typing import TYPE_CHECKING, Any

from alerting.durations import td_ns
from alerting.engine.fields import Getter, compile_path
from alerting.engine.held import HeldEvent, Holder
from alerting.engine.types import DigestSpec, Firing, Hit
from alerting.events import Event, format_timestamp

if TYPE_CHECKING:
    from alerting.store import Store

MAX_DIGEST_VALUES = 200
MAX_DIGEST_EVENTS = 100
_KEEP_WHOLE = 5


class _Period:
    __slots__ = ("events", "group", "index", "values")

    def __init__(self, index: int, group: dict[str, Any]) -> None:
        self.index = index
        self.group = group
        self.events: list[HeldEvent] = []
        self.values: dict[str, None] = {}


class DigestAggregation:
    """Hits per group and period, fired as one alert when the period is over."""

    kind = "digest"

    def __init__(
        self,
        spec: DigestSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        self._tolerance = tolerance_ns
        self.spec = spec
        self.rule_id = rule_id
        self._every = td_ns(spec.every)
        self._get: Getter | None = compile_path(spec.field) if spec.field else None
        self._hold = holder.hold
        self._max_entries = max(1, max_entries)
        self._periods: dict[str, _Period] = {}
        self._counts: dict[str, int] = {}
        self._size = 0

    def add(self, hit: Hit) -> list[Firing]:
        t = hit.event.time_ns
        index = t // self._every
        key = hit.group_key
        period = self._periods.get(key)
        firings: list[Firing] = []
        if period is not None and index > period.index:
            firings.append(self._fire(key, hit.group, period))
            period = None
        if period is None:
            period = self._periods[key] = _Period(index, hit.group)
            self._counts[key] = 0
        self._counts[key] += 1
        if self._get is not None and len(period.values) < MAX_DIGEST_VALUES:
            value = self._get(hit.event.raw)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                period.values[str(value)] = None
        if len(period.events) < MAX_DIGEST_EVENTS:
            held = self._hold(hit.event)
            insort(period.events, held, key=lambda e: (e.time_ns, e.id))
            self._size += 1
            if len(period.events) > _KEEP_WHOLE:
                period.events[-_KEEP_WHOLE - 1].slim()
        return firings

    def due(self, watermark_ns: int) -> list[Firing]:
        """The digests of periods over at ``watermark_ns`` (late events allowed for)."""
        closed = (watermark_ns - self._tolerance) // self._every
        over = [k for k, p in self._periods.items() if p.index < closed]
        firings = [self._fire(k, self._periods[k].group, self._periods[k]) for k in over]
        for key in over:
            del self._periods[key]
        return firings

    def first_open_end_ns(self) -> int | None:
        """The end of the earliest period still open (None: none is): no digest to come
        is judged by realert at an earlier time (``Engine.advance``)."""
        if not self._periods:
            return None
        return (min(p.index for p in self._periods.values()) + 1) * self._every

    def _fire(self, key: str, group: dict[str, Any], period: _Period) -> Firing:
        events: list[Event] = list(period.events)
        self._size -= len(period.events)
        start = period.index * self._every
        return Firing(
            key,
            group,
            events[-1],
            events,
            self._counts.pop(key, len(events)),
            {
                "values": sorted(period.values),
                "period_start": format_timestamp(start),
                "period_end": format_timestamp(start + self._every),
            },
            start + self._every,
        )

    def evict(self, watermark_ns: int) -> None:
        """Nothing to evict: a period's hits are held until its digest fires."""

    def entries(self) -> int:
        return self._size

    def assume_in_order(self) -> None:
        """Nothing kept for late hits: a period holds its hits until it is due."""

    def restore(self, store: Store) -> None:
        """Nothing persisted (see the module docstring)."""

    def flush(self, store: Store) -> None:
        """Nothing persisted (see the module docstring)."""

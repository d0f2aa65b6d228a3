"""Event-time aggregations: threshold, distinct, new_value, travel, sequence.

The rule core hands every matching event to its rule's aggregation as a ``Hit``; the
aggregation keeps per-group state and returns the ``Firing``s that become alerts. These
are the exact semantics (the property tests' brute-force oracles are written from them).

Common terms
    *Order*: hits of a group are ordered by ``(event time, event id)``; "before/after"
    below mean this order and "later" means a later event time.
    *Held hits* ``U``: a group's hits that were added, not consumed by a firing and not
    evicted. Hits with no usable value (distinct/new_value field missing or null, travel
    without valid coordinates, sequence hits matching no step) are ignored entirely.
    *Window ending at e*, ``W(e)``: the held hits ``u`` with ``u <= e`` in order and
    ``e.time - within < u.time``, i.e. the half-open interval ``(e.time - within,
    e.time]``. Hits exactly ``within`` apart are never in one window (as ElastAlert).
    *Trigger*: the chronologically last event of what fired. For in-order input that is
    the hit just added; for a late hit it is the event that closes the window, which is
    what an in-order re-read (e.g. after a restart) picks too, so fingerprints are stable.
    *Events* of a firing are in order; past 100 only the first 50 and last 50 are kept
    (``count`` stays exact, and the first/last event times stay right). They are held
    events (``alerting.engine.held``): only the newest few of a series keep their full
    JSON (alert samples); the rest keep the fields the rule's summary reads.

threshold {count, within}
    After adding hit ``h``, take the held hits ``e >= h`` in order with ``e.time <
    h.time + within``; the first whose ``W(e)`` holds ``>= count`` hits fires with
    ``W(e)`` and consumes it. In order this is "the ``count``-th hit inside ``(t -
    within, t]``", so 25 hits within the window with ``count: 10`` fire twice (at hits 10
    and 20). Invariant: after every ``add`` no window holds ``count`` hits, so a firing
    holds exactly ``count`` hits and one ``add`` fires at most once.

distinct {field, count, within}
    Same, counting the distinct values of ``field`` over ``W(e)``; the firing consumes
    every hit of ``W(e)`` (``count`` = those hits). Values are compared exactly (strings
    as is, other JSON values as compact JSON text); a list (JSONPath) contributes each
    element; missing/null values are ignored.

new_value {field, learn, forget, known, dormant}
    Per rule, ``start`` = event time of the first hit the rule ever saw (persisted). A
    hit at ``t`` with ``t < start + learn`` only learns. A value ``v`` is *known* for the
    group at ``t`` when it was seen before (in arrival order) and ``forget == 0`` or
    ``t - last_seen(v) < forget``. A group with no known value (brand new, or every value
    forgotten) learns its first value silently: a new user's first login is not unusual.
    Otherwise a hit carrying a value that is not known fires once, with the first such
    value; all its values are then added (``first_seen``/``last_seen`` = min/max time).
    Baselines persist: ``flush`` writes rows changed since the last flush (and the learn
    start as store meta), ``restore`` loads them; replaying history bootstraps them.
    Forgotten values leave memory on ``evict`` and the store on the next ``flush``.
    With ``dormant > 0`` a hit of a group whose newest hit is at least ``dormant`` older
    (after ``learn``) fires instead, whatever its value (details: ``last_seen``,
    ``idle_days``): an account used again after a long idle time. With ``alert_on`` (a
    selection) only hits matching it may fire; every hit is learned.

travel {max_speed_kmh, min_distance_km, within, latitude, longitude}
    Held hits are the group's located hits. A new hit is compared with its neighbours in
    order: predecessor and successor (the latter only exists for a late hit). A pair ``a
    < b`` fires when ``b.time - a.time < within``, the great-circle distance ``d >=
    min_distance_km`` and ``d / max(b.time - a.time, 1 minute) > max_speed_kmh``; the
    trigger is ``b``. Nothing is consumed: each adjacent pair is judged once, when its
    second hit arrives. ``evict(w)`` also drops all but the latest hit older than ``w -
    tolerance`` per group: under the watermark contract no later hit can have an older
    one as a neighbour.

sequence {within, steps[{selection, count}]}
    A *chain* is ``count_1`` hits matching step 1, then ``count_2`` matching step 2 each
    strictly later than every step-1 hit, and so on (hits at the same instant cannot be
    in different steps), each hit used once, and ``last.time - first.time < within``.
    ``Hit.steps`` holds the 0-based indexes of the steps it matches. After adding ``h``,
    the chain with the earliest end (its last hit in order) fires; among chains with that
    end, the one using the latest hits (greedy backwards from the end, step by step) is
    chosen, and its hits are consumed. The invariant (no chain among held hits between
    ``add`` calls) means every chain found includes ``h`` and at most one fires per add.

Late events, eviction, memory
    Hits may arrive out of order by up to ``tolerance_ns`` (the poll overlap); results
    then follow the definitions above with the hits in arrival order. ``evict(w)`` drops
    held hits older than ``w - within - tolerance`` (new_value: values last seen before
    ``w - forget - tolerance``); when every later hit is at least ``w - tolerance`` (the
    engine's watermark contract) eviction never changes a result, nor does a sequence's
    deferred projection (a hit that can only end a chain keeps the fields its summary
    reads only while a hit still to come could precede it). Later hits are still
    accepted and judged against what is held. Past ``max_entries`` held entries per rule
    the oldest are dropped (down to 90% of the cap) with one warning per rule.
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from operator import lt
from typing import TYPE_CHECKING, Any

from alerting import jsonutil
from alerting.durations import DAY_NS, HOUR_NS, MINUTE_NS, td_ns
from alerting.engine.fields import MISSING, Getter, compile_path
from alerting.engine.geo import coordinate, haversine_km
from alerting.engine.held import HeldEvent, Holder, event_json
from alerting.engine.types import (
    Aggregation,
    AggregationSpec,
    DigestSpec,
    DistinctSpec,
    Firing,
    Hit,
    NewValueSpec,
    SequenceSpec,
    SumSpec,
    TemporalSpec,
    ThresholdSpec,
    TravelSpec,
)
from alerting.engine.windows import GroupSeries, Series, Windows
from alerting.events import Event, JsonEvent, format_timestamp

if TYPE_CHECKING:
    from alerting.store import Store

logger = logging.getLogger(__name__)

MAX_FIRING_EVENTS = 100
MAX_DISTINCT_VALUES = 50
MAX_KNOWN_VALUES = 20
DEFAULT_MAX_ENTRIES = 200_000
DEFAULT_TOLERANCE_NS = 5 * MINUTE_NS

__all__ = [
    "DistinctAggregation",
    "NewValueAggregation",
    "SequenceAggregation",
    "SumAggregation",
    "TemporalAggregation",
    "ThresholdAggregation",
    "TravelAggregation",
    "build_aggregation",
    "field_values",
]


def build_aggregation(
    spec: AggregationSpec,
    *,
    rule_id: str,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    holder: Holder | None = None,
) -> Aggregation:
    """The aggregation for a rule's spec.

    Field paths (``field``, ``latitude``, ``longitude``) are compiled here; a bad one
    raises ``alerting.engine.fields.FieldPathError`` for the rule loader to locate.
    ``holder`` makes the held events (what the rule's summary reads of them); without
    one every held event keeps its full JSON.
    """
    kwargs: dict[str, Any] = {
        "rule_id": rule_id,
        "max_entries": max_entries,
        "tolerance_ns": tolerance_ns,
        "holder": holder or Holder.full(),
    }
    if isinstance(spec, ThresholdSpec):
        return ThresholdAggregation(spec, **kwargs)
    if isinstance(spec, DistinctSpec):
        return DistinctAggregation(spec, **kwargs)
    if isinstance(spec, NewValueSpec):
        return NewValueAggregation(spec, **kwargs)
    if isinstance(spec, TravelSpec):
        return TravelAggregation(spec, **kwargs)
    if isinstance(spec, SequenceSpec):
        return SequenceAggregation(spec, **kwargs)
    if isinstance(spec, TemporalSpec):
        return TemporalAggregation(spec, **kwargs)
    if isinstance(spec, SumSpec):
        return SumAggregation(spec, **kwargs)
    if isinstance(spec, DigestSpec):
        from alerting.engine.digest import DigestAggregation  # imports this module's types

        return DigestAggregation(spec, **kwargs)
    raise TypeError(f"unknown aggregation spec {type(spec).__name__}")


def _travel_country_path(spec: TravelSpec) -> str:
    """The country code next to the latitude (``geoip.country_code`` by default)."""
    parent = spec.latitude.rpartition(".")[0]
    if parent and not parent.startswith("$"):
        return f"{parent}.country_code"
    return "geoip.country_code"


# ---------------------------------------------------------------------- helpers


def _capped(indexes: list[int]) -> list[int]:
    """A firing's entries in order, keeping the first and last halves past the cap."""
    if len(indexes) <= MAX_FIRING_EVENTS:
        return indexes
    half = MAX_FIRING_EVENTS // 2
    return [*indexes[:half], *indexes[-half:]]


def _value_key(value: Any) -> str | None:
    """A field value as the string the windows and baselines compare (None: no value)."""
    if type(value) is str:
        return value
    if value is None or value is MISSING:
        return None
    return jsonutil.dumps(value, sort_keys=True)


def field_values(value: Any) -> tuple[str, ...]:
    """The comparable values a field yields: one, or each element of a list."""
    if type(value) is str:
        return (value,)
    if type(value) is list:
        keys = (_value_key(v) for v in value)
        return tuple(dict.fromkeys(k for k in keys if k is not None))
    key = _value_key(value)
    return () if key is None else (key,)


class _Windowed:
    """Shared plumbing of the aggregations rebuilt from events (no persisted state)."""

    kind = ""

    def __init__(
        self,
        within_ns: int,
        series: Callable[[], GroupSeries],
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        self._within = within_ns
        self._tolerance = tolerance_ns
        self._windows: Windows[Any] = Windows(
            series, rule_id=rule_id, kind=self.kind, max_entries=max_entries
        )

    def evict(self, watermark_ns: int) -> None:
        self._windows.evict_before(watermark_ns - self._within - self._tolerance)

    def entries(self) -> int:
        return self._windows.size

    def restore(self, store: Store) -> None:
        """Nothing persisted: windows are rebuilt by re-reading recent events."""

    def flush(self, store: Store) -> None:
        """Nothing persisted: windows are rebuilt by re-reading recent events."""

    def assume_in_order(self) -> None:
        """Nothing kept for late hits but the window itself, which order does not change."""

    def _consume(self, group_key: str, series: Series, start: int, stop: int) -> list[Event]:
        """Entries ``[start, stop)`` as a firing's events (capped), removed from the series."""
        events: list[Event] = [*series.events(_capped(list(range(start, stop))))]
        series.delete(start, stop)
        self._windows.size -= stop - start
        self._windows.forget_if_empty(group_key, series)
        return events


# ---------------------------------------------------------------------- threshold


class ThresholdAggregation(_Windowed):
    """``count`` hits of a group within ``within`` (module docstring: threshold)."""

    kind = "threshold"

    def __init__(
        self,
        spec: ThresholdSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        super().__init__(
            td_ns(spec.within),
            lambda: Series(holder),
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.spec = spec
        self._count = spec.count

    def add(self, hit: Hit) -> list[Firing]:
        t = hit.event.time_ns
        windows = self._windows
        series = windows.groups.get(hit.group_key) or windows.get(hit.group_key, hit.group)
        i = series.insert(hit.event, None)
        windows.size += 1
        times = series.times
        n = len(times)
        count = self._count
        within = self._within
        firings: list[Firing] = []
        if i == n - 1:
            # In order: W(h) is the tail; by the invariant it has at most `count` hits.
            if n >= count and times[n - count] > t - within:
                firings.append(self._fire(hit.group_key, series, n - count, n))
        else:
            j = i
            end = t + within
            while j < n and times[j] < end:
                lo = bisect_right(times, times[j] - within)
                if j - lo + 1 >= count:
                    firings.append(self._fire(hit.group_key, series, lo, j + 1))
                    break
                j += 1
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return firings

    def _fire(self, group_key: str, series: Series, start: int, stop: int) -> Firing:
        events = self._consume(group_key, series, start, stop)
        return Firing(group_key, series.group, events[-1], events, stop - start)


# ---------------------------------------------------------------------- sum


def _number(value: Any) -> float | None:
    """A field value as a number to add up (numbers and numeric text; else None)."""
    t = type(value)
    if t is int or t is float:
        return float(value)
    if t is str:
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


class SumAggregation(_Windowed):
    """The group's ``field`` summed over a window reaches ``total`` (Sigma's value_sum).

    As threshold, with the window's sum for its count: after adding ``h``, the first
    held hit ``e >= h`` (``e.time < h.time + within``) whose ``W(e)`` sums to ``total``
    (more, when ``strict``) fires with ``W(e)`` and consumes it. Hits without a numeric
    value are ignored. A sum grows with every hit (values are usually sizes), so firing
    when it is reached is what a SIEM's "sum over the timespan" finds too.
    """

    kind = "sum"

    def __init__(
        self,
        spec: SumSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        super().__init__(
            td_ns(spec.within),
            lambda: Series(holder),
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.spec = spec
        self._get: Getter = compile_path(spec.field)

    def _enough(self, total: float) -> bool:
        return total > self.spec.total if self.spec.strict else total >= self.spec.total

    def add(self, hit: Hit) -> list[Firing]:
        value = _number(self._get(hit.event.raw))
        if value is None:
            return []
        t = hit.event.time_ns
        windows = self._windows
        series = windows.groups.get(hit.group_key) or windows.get(hit.group_key, hit.group)
        i = series.insert(hit.event, value)
        windows.size += 1
        times = series.times
        aux = series.aux
        n = len(times)
        within = self._within
        firings: list[Firing] = []
        j = i
        end = t + within
        while j < n and times[j] < end:
            lo = bisect_right(times, times[j] - within)
            total = sum(aux[lo : j + 1])
            if self._enough(total):
                events = self._consume(hit.group_key, series, lo, j + 1)
                details = {"field": self.spec.field, "sum": total}
                firings.append(
                    Firing(hit.group_key, series.group, events[-1], events, j + 1 - lo, details)
                )
                break
            j += 1
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return firings


# ---------------------------------------------------------------------- distinct


class _DistinctSeries(Series):
    """A series plus the value counts of the window ending at its last hit.

    ``counts`` covers ``[lo, len)`` and is kept incrementally while hits arrive in order;
    any other change sets it to None and the next in-order hit rebuilds it.
    """

    __slots__ = ("counts", "lo")

    def __init__(self, holder: Holder) -> None:
        super().__init__(holder)
        self.lo = 0
        self.counts: dict[str, int] | None = {}

    def drop_before(self, cutoff_ns: int) -> int:
        k = super().drop_before(cutoff_ns)
        if k:
            if self.counts is not None and k <= self.lo:
                self.lo -= k
            else:
                self.counts = None
        return k


def _count_in(counts: dict[str, int], values: tuple[str, ...]) -> None:
    for v in values:
        counts[v] = counts.get(v, 0) + 1


def _count_out(counts: dict[str, int], values: tuple[str, ...]) -> None:
    for v in values:
        left = counts[v] - 1
        if left:
            counts[v] = left
        else:
            del counts[v]


class DistinctAggregation(_Windowed):
    """``count`` distinct values of ``field`` within ``within`` (docstring: distinct)."""

    kind = "distinct"

    def __init__(
        self,
        spec: DistinctSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        super().__init__(
            td_ns(spec.within),
            lambda: _DistinctSeries(holder),
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.spec = spec
        self._count = spec.count
        self._get: Getter = compile_path(spec.field)

    def _values(self, hit: Hit) -> tuple[str, ...]:
        return field_values(self._get(hit.event.raw))

    def add(self, hit: Hit) -> list[Firing]:
        values = self._values(hit)
        if not values:
            return []
        t = hit.event.time_ns
        windows = self._windows
        series: _DistinctSeries = windows.groups.get(hit.group_key) or windows.get(
            hit.group_key, hit.group
        )
        i = series.insert(hit.event, values)
        windows.size += 1
        times = series.times
        aux = series.aux
        n = len(times)
        within = self._within
        firings: list[Firing] = []
        if i == n - 1:
            counts = series.counts
            limit = t - within
            if counts is None:
                lo = bisect_right(times, limit)
                counts = {}
                for vals in aux[lo:n]:
                    _count_in(counts, vals)
            else:
                _count_in(counts, values)
                lo = series.lo
                while times[lo] <= limit:
                    _count_out(counts, aux[lo])
                    lo += 1
            series.lo = lo
            series.counts = counts
            if len(counts) >= self._count:
                firings.append(self._fire(hit.group_key, series, lo, n, counts))
                # The hits that fired are consumed; what is left may still pair with a
                # late hit inside the tolerance, so the next hit rebuilds the counts.
                series.counts = None
        else:
            series.counts = None
            lo = bisect_right(times, t - within)
            counts = {}
            for vals in aux[lo : i + 1]:
                _count_in(counts, vals)
            j = i
            end = t + within
            while True:
                if len(counts) >= self._count:
                    firings.append(self._fire(hit.group_key, series, lo, j + 1, counts))
                    break
                j += 1
                if j >= n or times[j] >= end:
                    break
                _count_in(counts, aux[j])
                limit = times[j] - within
                while times[lo] <= limit:
                    _count_out(counts, aux[lo])
                    lo += 1
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return firings

    def _details(self, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "field": self.spec.field,
            "values": sorted(counts)[:MAX_DISTINCT_VALUES],
            "distinct": len(counts),
        }

    def _fire(
        self, group_key: str, series: Series, start: int, stop: int, counts: dict[str, int]
    ) -> Firing:
        details = self._details(counts)
        events = self._consume(group_key, series, start, stop)
        return Firing(group_key, series.group, events[-1], events, stop - start, details)


class TemporalAggregation(DistinctAggregation):
    """``count`` of the correlated rules matched within ``within``, any order: distinct
    over which rules an event matched (``Hit.steps``), so the semantics (window, trigger,
    consumption) are distinct's (module docstring)."""

    kind = "temporal"

    def __init__(
        self,
        spec: TemporalSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        _Windowed.__init__(
            self,
            td_ns(spec.within),
            lambda: _DistinctSeries(holder),
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.temporal = spec
        self._count = spec.count
        self._names = tuple(spec.rules)

    def _values(self, hit: Hit) -> tuple[str, ...]:
        return tuple(self._names[i] for i in hit.steps)

    def _details(self, counts: dict[str, int]) -> dict[str, Any]:
        return {"rules": [r for r in self._names if r in counts], "distinct": len(counts)}


# ---------------------------------------------------------------------- travel


class _Logins:
    """One group's located logins in ``(time, id)`` order, as parallel columns.

    Travel holds every login of a group for the out-of-order tolerance (two-thirds of DI
    traffic is logins), and what a login holds is freed long after, cold: a cost per
    object. So a login keeps its time, its id and its line, with the coordinates unboxed
    in arrays; a ``HeldEvent`` is made only for the two logins of a firing.
    """

    __slots__ = ("blobs", "group", "ids", "lats", "lons", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.ids: list[str] = []
        self.blobs: list[bytes] = []
        self.lats = array("d")
        self.lons = array("d")
        self.group: dict[str, Any] = {}  # the group's {path: value}, set by Windows.get

    def insert(self, time_ns: int, event_id: str, blob: bytes, lat: float, lon: float) -> int:
        """Insert a login that does not sort last (late); returns its index."""
        times, ids = self.times, self.ids
        i = bisect_left(times, time_ns)
        end = bisect_right(times, time_ns, i)
        while i < end and ids[i] <= event_id:
            i += 1
        times.insert(i, time_ns)
        ids.insert(i, event_id)
        self.blobs.insert(i, blob)
        self.lats.insert(i, lat)
        self.lons.insert(i, lon)
        return i

    def event(self, i: int) -> HeldEvent:
        """Login ``i`` as an event (whole)."""
        return HeldEvent.whole(self.times[i], self.ids[i], self.blobs[i])

    def delete(self, start: int, stop: int) -> None:
        """Remove logins ``[start, stop)``."""
        del self.times[start:stop]
        del self.ids[start:stop]
        del self.blobs[start:stop]
        del self.lats[start:stop]
        del self.lons[start:stop]

    def drop_before(self, cutoff_ns: int) -> int:
        """Drop logins older than ``cutoff_ns``; returns how many."""
        k = bisect_left(self.times, cutoff_ns)
        if k:
            self.delete(0, k)
        return k


class TravelAggregation(_Windowed):
    """Adjacent located hits too far apart for the time between them (docstring: travel)."""

    kind = "travel"

    def __init__(
        self,
        spec: TravelSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        # Logins are held whole, whatever the summary reads (the rule's holder is not
        # used): eviction keeps a group's logins only for the out-of-order tolerance (see
        # evict), so few per group, and a late login's neighbours and the places in the
        # details are then whole too.
        super().__init__(
            td_ns(spec.within),
            _Logins,
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.spec = spec
        self._lat = compile_path(spec.latitude)
        self._lon = compile_path(spec.longitude)
        self._country = compile_path(_travel_country_path(spec))
        self._client_ip = compile_path("client_ip")
        # (object, latitude key, longitude key) when both paths are "obj.key" of one object
        self._pair: tuple[str, str, str] | None = None
        lat_parts, lon_parts = spec.latitude.split("."), spec.longitude.split(".")
        if (
            len(lat_parts) == 2 == len(lon_parts)
            and lat_parts[0] == lon_parts[0]
            and not spec.latitude.startswith("$")
            and all(lat_parts + lon_parts)
        ):
            self._pair = (lat_parts[0], lat_parts[1], lon_parts[1])

    def add(self, hit: Hit) -> list[Firing]:
        event = hit.event
        raw = event.raw
        pair = self._pair
        lat: Any = None
        lon: Any = None
        if pair is not None:  # both under one object (geoip): read it once
            obj, lat_key, lon_key = pair
            inner = raw.get(obj)
            if type(inner) is dict:
                lat = inner.get(lat_key)
                lon = inner.get(lon_key)
            # the usual case, plain in-range floats, needs no conversion (NaN fails too)
            if type(lat) is not float or not -90.0 <= lat <= 90.0:
                lat = coordinate(self._lat(raw), 90.0)
                if lat is None:
                    return []
            if type(lon) is not float or not -180.0 <= lon <= 180.0:
                lon = coordinate(self._lon(raw), 180.0)
                if lon is None:
                    return []
        else:
            lat = coordinate(self._lat(raw), 90.0)
            if lat is None:
                return []
            lon = coordinate(self._lon(raw), 180.0)
            if lon is None:
                return []
        windows = self._windows
        key = hit.group_key
        logins: _Logins = windows.groups.get(key) or windows.get(key, hit.group)
        t = event.time_ns
        blob = event.blob if type(event) is JsonEvent else event_json(event)
        times = logins.times
        if times and t <= times[-1]:
            return self._add_late(key, logins, t, event.id, blob, lat, lon)
        # In order (the usual): benchmarks/README.md, "Travel's columns and order".
        n = len(times)
        lats = logins.lats
        lons = logins.lons
        # _judge's first checks, inlined: benchmarks/README.md, "Travel's columns and order".
        moved = n and (lats[-1] != lat or lons[-1] != lon) and t - times[-1] < self._within
        times.append(t)
        logins.ids.append(event.id)
        logins.blobs.append(blob)
        lats.append(lat)
        lons.append(lon)
        firing = self._judge(key, logins, n - 1, n) if moved else None
        if n > 1 and times[1] < t - self._tolerance:
            # Trim on add (the newest login bounds later ones): benchmarks/README.md, "Trim on add".
            self._trim(logins, t - self._tolerance)
        windows.size += 1
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return [] if firing is None else [firing]

    def _add_late(
        self, key: str, logins: _Logins, t: int, event_id: str, blob: bytes, lat: float, lon: float
    ) -> list[Firing]:
        """``add`` of a login that does not sort last: judged with both its neighbours."""
        i = logins.insert(t, event_id, blob, lat, lon)
        times, lats, lons = logins.times, logins.lats, logins.lons
        windows = self._windows
        windows.size += 1
        firings: list[Firing] = []
        within = self._within
        if i > 0 and (lats[i - 1] != lat or lons[i - 1] != lon) and t - times[i - 1] < within:
            firing = self._judge(key, logins, i - 1, i)
            if firing is not None:
                firings.append(firing)
        last = len(times) - 1
        if i < last and (lats[i + 1] != lat or lons[i + 1] != lon) and times[i + 1] - t < within:
            firing = self._judge(key, logins, i, i + 1)
            if firing is not None:
                firings.append(firing)
        if i > 1 and i == last and times[1] < t - self._tolerance:
            self._trim(logins, t - self._tolerance)
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return firings

    def evict(self, watermark_ns: int) -> None:
        """Also drop every hit but the latest one before ``watermark - tolerance``.

        Every later hit is at or after that time, so its predecessor is that latest hit
        or a newer one, never an older one: older hits are never judged again. Without
        this, a rule over every login holds a day of logins per user for nothing.
        """
        super().evict(watermark_ns)
        cutoff = watermark_ns - self._tolerance
        for logins in self._windows.groups.values():
            times = logins.times
            if len(times) > 1 and times[1] < cutoff:
                self._trim(logins, cutoff)

    def _trim(self, logins: _Logins, cutoff: int) -> None:
        """Drop the hits before the latest one older than ``cutoff``."""
        keep_from = bisect_left(logins.times, cutoff) - 1
        if keep_from > 0:
            logins.delete(0, keep_from)
            self._windows.size -= keep_from

    def _judge(self, group_key: str, logins: _Logins, a: int, b: int) -> Firing | None:
        dt = logins.times[b] - logins.times[a]
        if dt >= self._within:
            return None
        lat1, lon1, lat2, lon2 = logins.lats[a], logins.lons[a], logins.lats[b], logins.lons[b]
        if lat1 == lat2 and lon1 == lon2:  # the usual case: same place, distance 0
            return None
        distance = haversine_km(lat1, lon1, lat2, lon2)
        spec = self.spec
        if distance < spec.min_distance_km:
            return None
        speed = distance / (max(dt, MINUTE_NS) / HOUR_NS)
        if speed <= spec.max_speed_kmh:
            return None
        first, second = logins.event(a), logins.event(b)
        details = {
            "distance_km": round(distance, 1),
            "speed_kmh": round(speed, 1),
            "minutes": round(dt / MINUTE_NS, 1),
            "from": self._place(first, lat1, lon1),
            "to": self._place(second, lat2, lon2),
        }
        return Firing(group_key, logins.group, second, [first, second], 2, details)

    def _place(self, event: Event, lat: float, lon: float) -> dict[str, Any]:
        raw = event.raw
        country = self._country(raw)
        client_ip = self._client_ip(raw)
        return {
            "lat": lat,
            "lon": lon,
            "country_code": None if country is MISSING else country,
            "client_ip": None if client_ip is MISSING else client_ip,
            "time": format_timestamp(event.time_ns),
        }


# ---------------------------------------------------------------------- sequence


class _Reach:
    """How far back a hit still to come can be, for one rule: not before
    ``earliest_ns``, the last watermark less the tolerance (the watermark contract), or
    not before the newest hit held once ``in_order`` (``Engine.assume_in_order``)."""

    __slots__ = ("earliest_ns", "in_order")

    def __init__(self) -> None:
        self.earliest_ns = -(2**63)
        self.in_order = False


class _SequenceSeries(Series):
    """A series plus how many held hits match each step (skips hopeless searches).

    ``SequenceAggregation.add`` counts an inserted hit in (a call less per hit); the
    series counts removed ones out. Hits that can only end a chain are held with their
    projection deferred (``deferred_projection``).
    """

    __slots__ = ("_reach", "have")

    def __init__(self, holder: Holder, steps: int, reach: _Reach) -> None:
        super().__init__(holder)
        self.have = [0] * steps
        self._reach = reach

    def needed(self, k: int) -> bool:
        # Entry k can only end a chain, and one ending there needs a hit strictly
        # earlier than it that is still to come: none is, once it is out of reach. In
        # order, every hit to come is at least the newest held, which k is not.
        reach = self._reach
        return not reach.in_order and self.times[k] > reach.earliest_ns

    def delete(self, start: int, stop: int) -> None:
        have = self.have
        for steps in self.aux[start:stop]:
            for k in steps:
                have[k] -= 1
        super().delete(start, stop)

    def remove(self, indexes: Iterable[int]) -> int:
        have, aux = self.have, self.aux
        drop = set(indexes)
        for j in drop:
            for k in aux[j]:
                have[k] -= 1
        return super().remove(drop)


class SequenceAggregation(_Windowed):
    """Ordered steps within ``within`` (module docstring: sequence)."""

    kind = "sequence"

    def __init__(
        self,
        spec: SequenceSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        steps = len(spec.steps)
        reach = self._reach = _Reach()
        super().__init__(
            td_ns(spec.within),
            lambda: _SequenceSeries(holder, steps, reach),
            rule_id=rule_id,
            max_entries=max_entries,
            tolerance_ns=tolerance_ns,
            holder=holder,
        )
        self.spec = spec
        self._counts = tuple(step.count for step in spec.steps)
        self._last = len(spec.steps) - 1
        self._step_indexes = frozenset(range(len(spec.steps)))
        # The steps of a hit that can only end a chain: it matches the last step alone,
        # and that step takes one hit (``deferred_projection``).
        self._end_only = (self._last,) if steps > 1 and self._counts[-1] == 1 else None

    def evict(self, watermark_ns: int) -> None:
        super().evict(watermark_ns)
        reach = self._reach
        reach.earliest_ns = max(reach.earliest_ns, watermark_ns - self._tolerance)

    def assume_in_order(self) -> None:
        """Every hit from now on comes in ``(time, id)`` order (``Engine.assume_in_order``)."""
        self._reach.in_order = True

    def add(self, hit: Hit) -> list[Firing]:
        last = self._last
        steps = hit.steps
        if not self._step_indexes.issuperset(steps):
            steps = tuple(s for s in steps if 0 <= s <= last)
        if not steps:
            return []
        t = hit.event.time_ns
        windows = self._windows
        series: _SequenceSeries = windows.groups.get(hit.group_key) or windows.get(
            hit.group_key, hit.group
        )
        have = series.have
        for k in steps:
            have[k] += 1
        i = series.insert(hit.event, steps, steps == self._end_only)
        windows.size += 1
        n = len(series.times)
        firings: list[Firing] = []
        if any(map(lt, have, self._counts)):
            pass  # some step lacks enough held hits: no chain can exist
        elif i == n - 1:
            # In order, a chain must end at h, so h must match the last step.
            if last in steps:
                chain = self._chain(series, i)
                if chain is not None:
                    firings.append(self._fire(hit.group_key, series, chain))
        else:
            times, aux = series.times, series.aux
            end = t + self._within
            j = i
            while j < n and times[j] < end:
                if last in aux[j]:
                    chain = self._chain(series, j)
                    if chain is not None:
                        firings.append(self._fire(hit.group_key, series, chain))
                        break
                j += 1
        if windows.size > windows.max_entries:
            windows.enforce_cap()
        return firings

    def _chain(self, series: _SequenceSeries, e: int) -> list[int] | None:
        """Indexes of the chain ending at ``e`` that uses the latest hits, or None.

        One backward pass: fill the last step with the latest matching hits up to ``e``,
        then each earlier step with the latest matching hits strictly earlier than the
        step after it. Taking the latest hits leaves the most room for earlier steps and
        the window, so this finds a chain whenever one ending at ``e`` exists.
        """
        times, aux, counts = series.times, series.aux, self._counts
        limit = times[e] - self._within
        picked = [e]
        k = self._last
        need = counts[k] - 1
        bound: int | None = None
        if need == 0:
            bound, k = times[e], k - 1
            need = counts[k]
        j = e - 1
        while j >= 0:
            tj = times[j]
            if tj <= limit:
                return None
            if k in aux[j] and (bound is None or tj < bound):
                picked.append(j)
                need -= 1
                if need == 0:
                    if k == 0:
                        return picked
                    bound, k = tj, k - 1
                    need = counts[k]
            j -= 1
        return None

    def _fire(self, group_key: str, series: _SequenceSeries, chain: list[int]) -> Firing:
        order = sorted(chain)
        events: list[Event] = [*series.events(_capped(order))]
        self._windows.size -= series.remove(order)
        self._windows.forget_if_empty(group_key, series)
        details = {"steps": [{"selection": s.selection, "count": s.count} for s in self.spec.steps]}
        return Firing(group_key, series.group, events[-1], events, len(order), details)


# ---------------------------------------------------------------------- new_value


class _Baseline:
    """One group's known values: value -> [first_seen_ns, last_seen_ns, queued].

    ``queued`` is 1 while the value's row waits in the rule's dirty set for the next
    flush (see ``_queue_once``).
    """

    __slots__ = ("newest", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[int]] = {}
        self.newest = -(2**63)


def _scalar_key(value: Any) -> str | None:
    """``field_values`` of one non-list value, with booleans and integers as their JSON
    text without serialising them (``mfa`` is a boolean on every login); None for a
    list (each element counts: ``field_values``), null or missing."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)  # JSON's text of an int, whatever its size
    if type(value) is list:
        return None
    return _value_key(value)


class NewValueAggregation:
    """A value never seen for the group, after a learning period (docstring: new_value)."""

    kind = "new_value"
    SWEEP_EVERY_NS = HOUR_NS
    """Forgotten values are dropped from memory (and the store) at most once an hour."""

    def __init__(
        self,
        spec: NewValueSpec,
        *,
        rule_id: str,
        max_entries: int,
        tolerance_ns: int,
        holder: Holder,
    ) -> None:
        # Holds no events: a firing carries only the event being processed, in full.
        del holder
        self.spec = spec
        self.rule_id = rule_id
        self._get: Getter = compile_path(spec.field)
        self._learn = td_ns(spec.learn)
        self._forget = td_ns(spec.forget)
        self._known = frozenset(spec.known)
        self._dormant = td_ns(spec.dormant)
        # A value seen again within this of its last sighting can make nothing fire (it is
        # neither forgotten nor its group dormant): ``add``'s quiet path.
        self._quiet_ns = min([d for d in (self._forget, self._dormant) if d] or [2**64])
        self._tolerance = tolerance_ns
        self._max_entries = max(1, max_entries)
        self._groups: dict[str, _Baseline] = {}
        self._size = 0
        self._start: int | None = None
        self._start_dirty = False
        self._first_hit: int | None = None
        self._dirty: set[tuple[str, str]] = set()
        self._swept_to: int | None = None
        self._prune_before: int | None = None
        self._warned = False

    @property
    def meta_key(self) -> str:
        """The store meta key holding the learning start (event time, ns)."""
        return f"new_value.learn_start.{self.rule_id}"

    @property
    def learning_start(self) -> int | None:
        """When learning started (event time, ns): the first hit with a value, or what
        ``assume_start`` or the store gave; None before that."""
        return self._start

    @property
    def first_hit_ns(self) -> int | None:
        """The time of the earliest hit with a value this aggregation has met itself."""
        return self._first_hit

    def assume_start(self, start_ns: int) -> None:
        """Learn from ``start_ns`` on, as if the first hit had come then. A ``--jobs``
        worker meets only its share of the groups, and learning starts at the first hit
        of all of them (``replay_parallel`` checks the guess with ``first_hit_ns``)."""
        self._start = start_ns

    def add(self, hit: Hit) -> list[Firing]:
        event = hit.event
        value = self._get(event.raw)
        v = value if type(value) is str else _scalar_key(value)
        if v is None:  # a list, null or missing
            values = field_values(value)
            return self._add(hit, values) if values else []
        # A known value seen again recently: benchmarks/README.md, "Baselines' quiet path".
        baseline = self._groups.get(hit.group_key)
        if baseline is not None:
            seen = baseline.values.get(v)
            t = event.time_ns
            if seen is not None and t - seen[1] < self._quiet_ns and self._start is not None:
                if t > seen[1]:
                    seen[1] = t
                    if t > baseline.newest:
                        baseline.newest = t
                elif t < seen[0]:
                    seen[0] = t
                else:
                    return []
                if not seen[2]:
                    self._queue_once(hit.group_key, v, seen)
                return []
        return self._add(hit, (v,))

    def _queue_once(self, key: str, value: str, seen: list[int]) -> None:
        """Queue a changed row for the next flush, once: a value seen on every login
        then builds no ``(group, value)`` tuple per login (and a replay, which never
        flushes, one per value)."""
        seen[2] = 1
        self._dirty.add((key, value))

    def _add(self, hit: Hit, values: tuple[str, ...]) -> list[Firing]:
        """``add`` for any values: learn, judge, fire (the module docstring's rules)."""
        t = hit.event.time_ns
        if self._first_hit is None or t < self._first_hit:
            self._first_hit = t
        if self._start is None:
            self._start = t
            self._start_dirty = True
        key = hit.group_key
        baseline = self._groups.get(key)
        if baseline is None:
            baseline = self._groups[key] = _Baseline()
        forget = self._forget
        known = baseline.values
        new_value: str | None = None
        judged = t >= self._start + self._learn and (self.spec.alert_on is None or hit.steps)
        # A group idle past ``forget`` is forgotten, evicted yet or not: new, so silent.
        remembered = known and (not forget or t - baseline.newest < forget)
        if self._dormant and remembered and judged and t - baseline.newest >= self._dormant:
            return self._returning(hit, baseline, values)
        if judged and remembered:
            for v in values:
                seen = known.get(v)
                if (seen is None or (forget and t - seen[1] >= forget)) and v not in self._known:
                    new_value = v
                    break
        firings: list[Firing] = []
        if new_value is not None:
            known_now = sorted(v for v, seen in known.items() if not forget or t - seen[1] < forget)
            firings.append(
                Firing(
                    key,
                    hit.group,
                    hit.event,
                    [hit.event],
                    1,
                    {
                        "field": self.spec.field,
                        "value": new_value,
                        "known": known_now[:MAX_KNOWN_VALUES],
                    },
                )
            )
        for v in values:
            seen = known.get(v)
            if seen is None:
                seen = known[v] = [t, t, 0]
                self._size += 1
            elif t > seen[1]:
                seen[1] = t
            elif t < seen[0]:
                seen[0] = t
            else:
                continue
            if not seen[2]:
                self._queue_once(key, v, seen)
        if t > baseline.newest:
            baseline.newest = t
        if self._size > self._max_entries:
            self._shrink()
        return firings

    def _returning(self, hit: Hit, baseline: _Baseline, values: tuple[str, ...]) -> list[Firing]:
        """A group back after ``dormant`` without hits: fire, then learn the hit as usual."""
        t = hit.event.time_ns
        last = baseline.newest
        forget = self._forget
        known = sorted(
            v for v, seen in baseline.values.items() if not forget or t - seen[1] < forget
        )
        details = {
            "field": self.spec.field,
            "value": values[0],
            "known": known[:MAX_KNOWN_VALUES],
            "last_seen": format_timestamp(last),
            "idle_days": (t - last) // DAY_NS,
        }
        for v in values:
            seen = baseline.values.get(v)
            if seen is None:
                seen = baseline.values[v] = [t, t, 0]
                self._size += 1
            else:
                seen[1] = max(seen[1], t)
            if not seen[2]:
                self._queue_once(hit.group_key, v, seen)
        baseline.newest = t
        return [Firing(hit.group_key, hit.group, hit.event, [hit.event], 1, details)]

    def evict(self, watermark_ns: int) -> None:
        """Drop values forgotten for every hit at or after ``watermark - tolerance``."""
        if not self._forget:
            return
        cutoff = watermark_ns - self._forget - self._tolerance
        if self._swept_to is not None and cutoff - self._swept_to < self.SWEEP_EVERY_NS:
            return
        self._swept_to = cutoff
        self._prune_before = cutoff
        self._drop_older(cutoff)

    def _drop_older(self, cutoff: int) -> None:
        empty = []
        for key, baseline in self._groups.items():
            if baseline.newest < cutoff:
                self._size -= len(baseline.values)
                empty.append(key)
                continue
            old = [v for v, seen in baseline.values.items() if seen[1] < cutoff]
            for v in old:
                del baseline.values[v]
            self._size -= len(old)
        for key in empty:
            del self._groups[key]

    def _shrink(self) -> None:
        """Past the cap, forget the least recently seen values (warn once per rule)."""
        lasts = sorted(seen[1] for b in self._groups.values() for seen in b.values.values())
        target = int(self._max_entries * 0.9)
        cutoff = lasts[len(lasts) - target - 1] + 1
        before = self._size
        self._drop_older(cutoff)
        if not self._warned:
            self._warned = True
            logger.warning(
                "rule %s: new_value baseline reached max_entries=%d values; forgot the %d "
                "least recently seen (they will count as new again). Use a less varied "
                "field or group, a shorter forget, or raise the cap. Warned once per rule.",
                self.rule_id,
                self._max_entries,
                before - self._size,
            )

    def entries(self) -> int:
        return self._size

    def assume_in_order(self) -> None:
        """Nothing kept for late hits: a baseline holds values, not events."""

    def restore(self, store: Store) -> None:
        """Load the learning start and every persisted baseline row of this rule."""
        stored = store.get_meta(self.meta_key)
        if stored is not None:
            try:
                start = int(stored)
            except ValueError:
                logger.warning(
                    "rule %s: ignoring unreadable learning start %r in the state database",
                    self.rule_id,
                    stored,
                )
            else:
                self._start = start if self._start is None else min(self._start, start)
        for group_key, value, first, last in store.load_baselines(self.rule_id):
            baseline = self._groups.get(group_key)
            if baseline is None:
                baseline = self._groups[group_key] = _Baseline()
            seen = baseline.values.get(value)
            if seen is None:
                baseline.values[value] = [first, last, 0]
                self._size += 1
            else:
                seen[0] = min(seen[0], first)
                seen[1] = max(seen[1], last)
            if last > baseline.newest:
                baseline.newest = last
        if self._size > self._max_entries:
            self._shrink()

    def flush(self, store: Store) -> None:
        """Write the learning start and the rows changed since the last flush."""
        if self._start_dirty and self._start is not None:
            store.set_meta(self.meta_key, str(self._start))
        rows = []
        for key, value in self._dirty:
            baseline = self._groups.get(key)
            seen = None if baseline is None else baseline.values.get(value)
            if seen is not None:
                seen[2] = 0
                rows.append((key, value, seen[0], seen[1]))
        if rows:
            store.put_baselines(self.rule_id, rows)
        if self._prune_before is not None:
            store.prune_baselines(self.rule_id, self._prune_before)
        self._start_dirty = False
        self._dirty.clear()
        self._prune_before = None

"""Each aggregation agrees with a brute-force oracle written from its definition.

The oracles follow the module docstring of ``alerting.engine.aggregations`` literally,
with no indexes, no incremental state and no eviction: they rescan every held hit after
each arrival (O(n^2) or worse, fine for small streams). The implementation runs with
eviction after every hit at the watermark the engine would use, so the tests also show
that eviction never changes a result when lateness stays within the tolerance.

Streams are generated in event-time order, then optionally shuffled locally: each event
gets a delay in ``[0, tolerance]`` and arrival is by ``time + delay``, so no event
arrives after one that is more than ``tolerance`` newer.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine.aggregations import build_aggregation
from alerting.engine.geo import haversine_km
from alerting.engine.types import (
    DistinctSpec,
    Hit,
    NewValueSpec,
    SequenceSpec,
    SumSpec,
    TemporalSpec,
    ThresholdSpec,
    TravelSpec,
)
from alerting.events import Event
from alerting.store import Store

S = 10**9
MIN = 60 * S
PROPS = settings(max_examples=150, deadline=None)
NOTHING: st.SearchStrategy[Any] = st.none()
NO_STEPS: st.SearchStrategy[tuple[int, ...]] = st.just(())


@dataclass
class Ev:
    """A generated event: what the oracle reads (the implementation gets a Hit)."""

    time: int
    id: str
    group: str
    value: Any = None
    steps: tuple[int, ...] = ()
    place: tuple[float, float] | None = None
    delay: int = 0

    @property
    def key(self) -> tuple[int, str]:
        return (self.time, self.id)

    def hit(self) -> Hit:
        raw: dict[str, Any] = {"id": self.id, "user": self.group}
        if self.value is not None:
            raw["value"] = self.value
        if self.place is not None:
            raw["geoip"] = {"latitude": self.place[0], "longitude": self.place[1]}
        return Hit(Event(raw, self.time, self.id), self.group, {"user": self.group}, self.steps)


Result = list[tuple[str, int, list[str]]]  # (trigger id, count, event ids) per firing


def events(
    *,
    gap_max: int,
    unit: int,
    tolerance: int,
    max_size: int = 24,
    values: st.SearchStrategy[Any] = NOTHING,
    steps: st.SearchStrategy[tuple[int, ...]] = NO_STEPS,
    places: st.SearchStrategy[Any] = NOTHING,
) -> st.SearchStrategy[list[Ev]]:
    """Event streams in event-time order; gaps of 0 make equal timestamps."""
    one = st.tuples(
        st.integers(0, gap_max),
        st.sampled_from(["alice", "bob"]),
        values,
        steps,
        places,
        st.integers(0, tolerance),
    )

    def build(rows: list[tuple[Any, ...]]) -> list[Ev]:
        out, t = [], 0
        for n, (gap, group, value, step, place, delay) in enumerate(rows):
            t += gap * unit
            out.append(Ev(t, f"e{n:03d}", group, value, step, place, delay * unit))
        return out

    return st.lists(one, min_size=1, max_size=max_size).map(build)


def arrivals(stream: list[Ev], shuffled: bool) -> list[Ev]:
    if not shuffled:
        return sorted(stream, key=lambda e: e.key)
    return sorted(stream, key=lambda e: e.time + e.delay)


def run(agg: Any, order: list[Ev], *, evict: bool = True) -> Result:
    """Feed the implementation, evicting at the highest event time seen so far."""
    out: Result = []
    watermark = None
    for ev in order:
        for f in agg.add(ev.hit()):
            out.append((f.trigger.id, f.count, [e.id for e in f.events]))
            assert f.group_key == ev.group
            assert [e.time_ns for e in f.events] == sorted(e.time_ns for e in f.events)
        watermark = ev.time if watermark is None else max(watermark, ev.time)
        if evict:
            agg.evict(watermark)
    return out


# ---------------------------------------------------------------------- threshold, distinct


def window_oracle(order: list[Ev], within: int, count: int, *, distinct: bool) -> Result:
    """After each arrival: the first window W(e) in order meeting the count fires."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    for h in order:
        if distinct and h.value is None:
            continue
        group = held.setdefault(h.group, [])
        group.append(h)
        while True:
            for e in sorted(group, key=lambda x: x.key):
                window = [u for u in group if u.key <= e.key and u.time > e.time - within]
                size = len({u.value for u in window}) if distinct else len(window)
                if size >= count:
                    ids = sorted(window, key=lambda x: x.key)
                    out.append((e.id, len(window), [u.id for u in ids]))
                    for u in window:
                        group.remove(u)
                    break
            else:
                break
    return out


@PROPS
@given(
    stream=events(gap_max=4, unit=S, tolerance=5),
    count=st.integers(1, 4),
    within_s=st.integers(1, 12),
)
def test_threshold_matches_oracle(stream: list[Ev], count: int, within_s: int) -> None:
    within, tolerance = within_s * S, 5 * S
    spec = ThresholdSpec(count=count, within=timedelta(seconds=within_s))
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="t", tolerance_ns=tolerance)
        assert run(agg, order) == window_oracle(order, within, count, distinct=False)


@PROPS
@given(
    stream=events(
        gap_max=4, unit=S, tolerance=5, values=st.sampled_from([None, "u1", "u2", "u3", "u4"])
    ),
    count=st.integers(2, 4),
    within_s=st.integers(1, 12),
)
def test_distinct_matches_oracle(stream: list[Ev], count: int, within_s: int) -> None:
    within, tolerance = within_s * S, 5 * S
    spec = DistinctSpec(field="value", count=count, within=timedelta(seconds=within_s))
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="d", tolerance_ns=tolerance)
        assert run(agg, order) == window_oracle(order, within, count, distinct=True)


@PROPS
@given(stream=events(gap_max=3, unit=S, tolerance=0, max_size=40), count=st.integers(1, 5))
def test_threshold_in_order_fires_every_count_hits_in_a_wide_window(
    stream: list[Ev], count: int
) -> None:
    """The user-visible promise: in one window, a firing every `count` hits of a group."""
    agg = build_aggregation(ThresholdSpec(count=count, within=timedelta(days=1)), rule_id="t")
    result = run(agg, arrivals(stream, False))
    for group in ("alice", "bob"):
        mine = [e for e in sorted(stream, key=lambda e: e.key) if e.group == group]
        expected = [mine[i].id for i in range(count - 1, len(mine), count)]
        assert [t for t, _, ids in result if ids[0] in {e.id for e in mine}] == expected
    assert all(n == count for _, n, _ in result)


# ---------------------------------------------------------------------- new_value


def new_value_oracle(
    order: list[Ev],
    learn: int,
    forget: int,
    *,
    dormant: int = 0,
    alert_on: bool = False,
    key: Callable[[Any], Any] = lambda value: value,
) -> Result:
    start = None
    seen: dict[str, list[tuple[Any, int]]] = {}  # group -> (value, time) in arrival order
    out: Result = []
    for h in order:
        if h.value is None:
            continue
        value = key(h.value)
        if start is None:
            start = h.time
        history = seen.setdefault(h.group, [])
        last: dict[Any, int] = {}
        for v, time in history:
            last[v] = max(time, last.get(v, time))
        known = {v for v, t in last.items() if forget == 0 or h.time - t < forget}
        judged = h.time >= start + learn and (not alert_on or bool(h.steps))
        if dormant and judged and last and h.time - max(last.values()) >= dormant:
            out.append((h.id, 1, [h.id]))
        elif judged and known and value not in known:
            out.append((h.id, 1, [h.id]))
        history.append((value, h.time))
    return out


@PROPS
@given(
    stream=events(
        gap_max=6, unit=S, tolerance=5, values=st.sampled_from([None, "US", "FR", "DE", "BR"])
    ),
    learn_s=st.integers(0, 20),
    forget_s=st.sampled_from([0, 5, 10, 30]),
)
def test_new_value_matches_oracle(stream: list[Ev], learn_s: int, forget_s: int) -> None:
    spec = NewValueSpec(
        field="value", learn=timedelta(seconds=learn_s), forget=timedelta(seconds=forget_s)
    )
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="n", tolerance_ns=5 * S)
        agg.SWEEP_EVERY_NS = 0  # type: ignore[attr-defined]  # sweep on every evict
        expected = new_value_oracle(order, learn_s * S, forget_s * S)
        assert run(agg, order) == expected


def json_text(value: Any) -> str:
    """How a rule compares a field's value: a string as is, any other as its JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def run_with_restarts(spec: NewValueSpec, order: list[Ev], stops: dict[int, bool]) -> Result:
    """``run`` of a new_value rule whose baselines are flushed to a store before each
    arrival index in ``stops``, as the service does after each poll, and when its
    value is true restored from the store into a fresh rule, as after a restart."""
    store = Store(":memory:")
    agg: Any = None
    out: Result = []
    watermark = None
    for i, ev in enumerate(order):
        if agg is not None and i in stops:
            with store.transaction():
                agg.flush(store)
        if agg is None or stops.get(i):
            agg = build_aggregation(spec, rule_id="n", tolerance_ns=5 * S)
            agg.SWEEP_EVERY_NS = 0  # sweep on every evict
            agg.restore(store)
        out.extend((f.trigger.id, f.count, [e.id for e in f.events]) for f in agg.add(ev.hit()))
        watermark = ev.time if watermark is None else max(watermark, ev.time)
        agg.evict(watermark)
    store.close()
    return out


@PROPS
@given(
    stream=events(
        gap_max=6,
        unit=S,
        tolerance=5,
        values=st.sampled_from([None, "US", True, False, "true", 0, 1, "1", 443, 2.5]),
        steps=st.sampled_from([(), (0,)]),
    ),
    learn_s=st.integers(0, 20),
    forget_s=st.sampled_from([0, 5, 10, 30]),
    dormant_s=st.sampled_from([0, 0, 4, 12]),
    alert_on=st.booleans(),
    stops=st.dictionaries(st.integers(1, 23), st.booleans(), max_size=4),
)
def test_new_value_judges_booleans_and_numbers_as_their_json_across_restarts(
    stream: list[Ev],
    learn_s: int,
    forget_s: int,
    dormant_s: int,
    alert_on: bool,
    stops: dict[int, bool],
) -> None:
    """Booleans and numbers are values like strings (``true`` is the string "true"; 1 is
    neither), with dormant and alert_on, when the rule flushes to its store and restarts from it."""
    forget_s = 0 if dormant_s else forget_s
    spec = NewValueSpec(
        field="value",
        learn=timedelta(seconds=learn_s),
        forget=timedelta(seconds=forget_s),
        dormant=timedelta(seconds=dormant_s),
        alert_on="failed" if alert_on else None,
    )
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        expected = new_value_oracle(
            order,
            learn_s * S,
            forget_s * S,
            dormant=dormant_s * S,
            alert_on=alert_on,
            key=json_text,
        )
        assert run_with_restarts(spec, order, stops) == expected


# ---------------------------------------------------------------------- travel

CITIES = [
    (48.8566, 2.3522),  # Paris
    (51.5074, -0.1278),  # London (~344 km from Paris)
    (52.5200, 13.4050),  # Berlin (~878 km from Paris)
    (40.7128, -74.0060),  # New York
    (35.6762, 139.6503),  # Tokyo
]


def travel_oracle(order: list[Ev], within: int, min_km: float, max_kmh: float) -> Result:
    """Compare each arrival with its chronological neighbours among earlier arrivals."""
    held: dict[str, list[Ev]] = {}
    out: Result = []

    def judge(a: Ev, b: Ev) -> None:
        dt = b.time - a.time
        assert a.place is not None
        assert b.place is not None
        km = haversine_km(*a.place, *b.place)
        if dt < within and km >= min_km and km / (max(dt, MIN) / (60 * MIN)) > max_kmh:
            out.append((b.id, 2, [a.id, b.id]))

    for h in order:
        if h.place is None:
            continue
        group = held.setdefault(h.group, [])
        ordered = sorted([*group, h], key=lambda x: x.key)
        i = ordered.index(h)
        if i > 0:
            judge(ordered[i - 1], h)
        if i < len(ordered) - 1:
            judge(h, ordered[i + 1])
        group.append(h)
    return out


@PROPS
@given(
    stream=events(
        gap_max=90, unit=MIN, tolerance=30, places=st.one_of(st.none(), st.sampled_from(CITIES))
    ),
    within_h=st.integers(1, 6),
    max_kmh=st.sampled_from([300.0, 1000.0]),
)
def test_travel_matches_oracle(stream: list[Ev], within_h: int, max_kmh: float) -> None:
    spec = TravelSpec(within=timedelta(hours=within_h), max_speed_kmh=max_kmh)
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="tr", tolerance_ns=30 * MIN)
        expected = travel_oracle(order, within_h * 60 * MIN, spec.min_distance_km, max_kmh)
        assert run(agg, order) == expected


# ---------------------------------------------------------------------- sequence


def valid_chain(members: list[Ev], counts: list[int], within: int) -> bool:
    """``members`` in order form step 1 x counts[0], then step 2, ... strictly later."""
    if members[-1].time - members[0].time >= within:
        return False
    blocks, at = [], 0
    for k, c in enumerate(counts):
        block = members[at : at + c]
        if any(k not in m.steps for m in block):
            return False
        blocks.append(block)
        at += c
    return all(a[-1].time < b[0].time for a, b in itertools.pairwise(blocks))


def sequence_oracle(order: list[Ev], counts: list[int], within: int) -> Result:
    """Every chain by enumeration; earliest end first, then the latest hits."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    size = sum(counts)
    for h in order:
        if not h.steps:
            continue
        group = held.setdefault(h.group, [])
        group.append(h)
        while True:
            ordered = sorted(group, key=lambda x: x.key)
            chains = [
                combo
                for combo in itertools.combinations(range(len(ordered)), size)
                if valid_chain([ordered[i] for i in combo], counts, within)
            ]
            if not chains:
                break
            best = min(chains, key=lambda c: (c[-1], tuple(-i for i in reversed(c))))
            members = [ordered[i] for i in best]
            out.append((members[-1].id, size, [m.id for m in members]))
            for m in members:
                group.remove(m)
    return out


@PROPS
@given(
    stream=events(
        gap_max=3,
        unit=S,
        tolerance=4,
        max_size=14,
        steps=st.sampled_from([(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), ()]),
    ),
    counts=st.lists(st.integers(1, 2), min_size=2, max_size=3),
    within_s=st.integers(1, 12),
)
def test_sequence_matches_oracle(stream: list[Ev], counts: list[int], within_s: int) -> None:
    # Step indexes past the spec's steps are ignored by both sides.
    stream = [
        Ev(e.time, e.id, e.group, steps=tuple(s for s in e.steps if s < len(counts)), delay=e.delay)
        for e in stream
    ]
    spec = SequenceSpec(
        within=timedelta(seconds=within_s),
        steps=[{"selection": f"s{k}", "count": c} for k, c in enumerate(counts)],
    )
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="s", tolerance_ns=4 * S)
        assert run(agg, order) == sequence_oracle(order, counts, within_s * S)


# ---------------------------------------------------------------------- temporal


def temporal_oracle(order: list[Ev], within: int, count: int) -> Result:
    """distinct's rule over the rules (steps) each hit matched: after each arrival, the
    first window W(e) holding ``count`` different rules fires and is consumed."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    for h in order:
        if not h.steps:
            continue
        group = held.setdefault(h.group, [])
        group.append(h)
        while True:
            for e in sorted(group, key=lambda x: x.key):
                window = [u for u in group if u.key <= e.key and u.time > e.time - within]
                if len({s for u in window for s in u.steps}) >= count:
                    ids = sorted(window, key=lambda x: x.key)
                    out.append((e.id, len(window), [u.id for u in ids]))
                    for u in window:
                        group.remove(u)
                    break
            else:
                break
    return out


@PROPS
@given(
    stream=events(
        gap_max=4,
        unit=S,
        tolerance=5,
        steps=st.sampled_from([(0,), (1,), (2,), (0, 1), (1, 2), ()]),
    ),
    count=st.integers(1, 3),
    within_s=st.integers(1, 12),
)
def test_temporal_matches_oracle(stream: list[Ev], count: int, within_s: int) -> None:
    """Sigma's temporal correlation, with late hits (the end-to-end test is in order)."""
    spec = TemporalSpec(rules=["a", "b", "c"], count=count, within=timedelta(seconds=within_s))
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="tp", tolerance_ns=5 * S)
        assert run(agg, order) == temporal_oracle(order, within_s * S, count)


# ---------------------------------------------------------------------- sum


def sum_oracle(order: list[Ev], within: int, total: float, strict: bool) -> Result:
    """threshold's rule with the window's sum of values for its count."""
    held: dict[str, list[Ev]] = {}
    out: Result = []
    for h in order:
        if h.value is None:
            continue
        group = held.setdefault(h.group, [])
        group.append(h)
        while True:
            for e in sorted(group, key=lambda x: x.key):
                window = [u for u in group if u.key <= e.key and u.time > e.time - within]
                got = sum(u.value for u in window)
                if got > total if strict else got >= total:
                    ids = sorted(window, key=lambda x: x.key)
                    out.append((e.id, len(window), [u.id for u in ids]))
                    for u in window:
                        group.remove(u)
                    break
            else:
                break
    return out


@PROPS
@given(
    stream=events(gap_max=4, unit=S, tolerance=5, values=st.none() | st.integers(0, 9)),
    total=st.integers(0, 25),
    strict=st.booleans(),
    within_s=st.integers(1, 12),
)
def test_sum_matches_oracle(stream: list[Ev], total: int, strict: bool, within_s: int) -> None:
    """Sigma's value_sum, with late hits (the end-to-end test is in order)."""
    spec = SumSpec(field="value", total=total, strict=strict, within=timedelta(seconds=within_s))
    for shuffled in (False, True):
        order = arrivals(stream, shuffled)
        agg = build_aggregation(spec, rule_id="sum", tolerance_ns=5 * S)
        assert run(agg, order) == sum_oracle(order, within_s * S, total, strict)

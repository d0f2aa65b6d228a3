"""The aggregations' documented behaviour, one scenario a rule author would recognise each."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.engine.aggregations import (
    DistinctAggregation,
    NewValueAggregation,
    SequenceAggregation,
    ThresholdAggregation,
    TravelAggregation,
    build_aggregation,
    field_values,
)
from alerting.engine.fields import FieldPathError
from alerting.engine.geo import coordinate, haversine_km
from alerting.engine.types import (
    DistinctSpec,
    Firing,
    Hit,
    NewValueSpec,
    SequenceSpec,
    ThresholdSpec,
    TravelSpec,
)
from alerting.events import Event, format_timestamp, parse_timestamp
from alerting.store import Store

T0 = parse_timestamp("2026-11-20T10:00:00Z")
S = 10**9
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR

PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
ORLEANS = (47.9030, 1.9093)  # ~111 km south-west of Paris


def hit(
    offset_ns: int,
    event_id: str,
    group: str = "alice",
    steps: tuple[int, ...] = (),
    **fields: Any,
) -> Hit:
    raw = {"id": event_id, "initiated_by": {"username": group}, **fields}
    return Hit(Event(raw, T0 + offset_ns, event_id), group, {"initiated_by.username": group}, steps)


def feed(agg: Any, hits: list[Hit]) -> list[Firing]:
    out: list[Firing] = []
    for h in hits:
        out.extend(agg.add(h))
    return out


def ids(firing: Firing) -> list[str]:
    return [e.id for e in firing.events]


# ---------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        (ThresholdSpec(count=3, within=timedelta(minutes=5)), ThresholdAggregation),
        (DistinctSpec(field="a", count=3, within=timedelta(minutes=5)), DistinctAggregation),
        (NewValueSpec(field="geoip.country_code"), NewValueAggregation),
        (TravelSpec(), TravelAggregation),
        (
            SequenceSpec(
                within=timedelta(minutes=5), steps=[{"selection": "a"}, {"selection": "b"}]
            ),
            SequenceAggregation,
        ),
    ],
)
def test_factory_builds_the_aggregation_for_each_spec(spec: Any, cls: type) -> None:
    agg = build_aggregation(spec, rule_id="r")
    assert isinstance(agg, cls)
    assert agg.entries() == 0


def test_factory_rejects_a_bad_field_path() -> None:
    with pytest.raises(FieldPathError, match="empty part"):
        build_aggregation(
            DistinctSpec(field="a..b", count=2, within=timedelta(minutes=1)), rule_id="r"
        )


# ---------------------------------------------------------------------- threshold


def test_threshold_fires_once_per_crossing_and_consumes() -> None:
    agg = build_aggregation(ThresholdSpec(count=10, within=timedelta(minutes=5)), rule_id="r")
    hits = [hit(i * S, f"e{i:02d}") for i in range(25)]
    firings = feed(agg, hits)
    # 25 failures inside one window: the 10th and the 20th cross the threshold.
    assert [f.trigger.id for f in firings] == ["e09", "e19"]
    assert [f.count for f in firings] == [10, 10]
    assert ids(firings[0]) == [f"e{i:02d}" for i in range(10)]
    assert ids(firings[1]) == [f"e{i:02d}" for i in range(10, 20)]
    assert firings[0].group == {"initiated_by.username": "alice"}
    assert agg.entries() == 5  # the 5 after the second firing are still held


@pytest.mark.parametrize(("last_s", "fires"), [(300, False), (299, True)])
def test_threshold_window_is_half_open(last_s: int, fires: bool) -> None:
    """Events exactly `within` apart are never in one window (like ElastAlert)."""
    agg = build_aggregation(ThresholdSpec(count=5, within=timedelta(minutes=5)), rule_id="r")
    hits = [hit(s * S, f"e{s}") for s in (0, 60, 120, 180, last_s)]
    assert bool(feed(agg, hits)) is fires


def test_threshold_keeps_groups_apart() -> None:
    agg = build_aggregation(ThresholdSpec(count=3, within=timedelta(minutes=5)), rule_id="r")
    hits = [hit(i * S, f"e{i}", group="alice" if i % 2 else "bob") for i in range(5)]
    # bob has e0, e2, e4 (3 hits), alice only e1, e3.
    firings = feed(agg, hits)
    assert [(f.group_key, f.trigger.id, ids(f)) for f in firings] == [
        ("bob", "e4", ["e0", "e2", "e4"])
    ]
    assert agg.entries() == 2


def test_threshold_late_event_within_tolerance_completes_the_window() -> None:
    agg = build_aggregation(ThresholdSpec(count=5, within=timedelta(minutes=5)), rule_id="r")
    order = [0, 10, 20, 40, 30]  # the hit at 30 s arrives last
    firings = feed(agg, [hit(s * S, f"e{s:02d}") for s in order])
    assert len(firings) == 1
    # Trigger = the event closing the window, as an in-order re-read would pick.
    assert firings[0].trigger.id == "e40"
    assert ids(firings[0]) == ["e00", "e10", "e20", "e30", "e40"]


def test_threshold_events_are_capped_but_count_is_exact() -> None:
    agg = build_aggregation(ThresholdSpec(count=150, within=timedelta(hours=1)), rule_id="r")
    firings = feed(agg, [hit(i * S, f"e{i:03d}") for i in range(150)])
    assert len(firings) == 1
    f = firings[0]
    assert f.count == 150
    assert len(f.events) == 100
    assert f.events[0].id == "e000"
    assert f.events[-1].id == "e149" == f.trigger.id
    times = [e.time_ns for e in f.events]
    assert times == sorted(times)


def test_threshold_evict_keeps_what_can_still_matter() -> None:
    tolerance = 5 * MIN
    agg = build_aggregation(
        ThresholdSpec(count=3, within=timedelta(minutes=5)), rule_id="r", tolerance_ns=tolerance
    )
    feed(agg, [hit(0, "a"), hit(4 * MIN, "b")])
    # A later hit may be as old as watermark - tolerance, and its window reaches back
    # `within` further: at watermark 10m the cutoff is 0, so nothing is dropped yet.
    agg.evict(T0 + 10 * MIN)
    assert agg.entries() == 2
    agg.evict(T0 + 10 * MIN + 1)
    assert agg.entries() == 1  # "a" (at 0) is now older than the cutoff
    # A hit at the oldest allowed time still combines with what is held.
    assert [f.trigger.id for f in agg.add(hit(5 * MIN + 1, "c"))] == []
    assert [f.trigger.id for f in agg.add(hit(6 * MIN, "d"))] == ["d"]


def test_cap_drops_oldest_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    agg = build_aggregation(
        ThresholdSpec(count=2, within=timedelta(hours=1)), rule_id="spray", max_entries=100
    )
    with caplog.at_level(logging.WARNING, logger="alerting.engine.aggregations"):
        for i in range(350):  # every hit its own group: nothing ever fires
            assert agg.add(hit(i * S, f"e{i}", group=f"user{i}")) == []
            assert agg.entries() <= 100
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "spray" in warnings[0].getMessage()
    assert "max_entries=100" in warnings[0].getMessage()
    # The newest entries survived: a second hit for the latest user still fires.
    assert [f.trigger.id for f in agg.add(hit(351 * S, "x", group="user349"))] == ["x"]


# ---------------------------------------------------------------------- distinct


def spray(offset_ns: int, event_id: str, username: Any = None, ip: str = "203.0.113.9") -> Hit:
    fields: dict[str, Any] = {"client_ip": ip}
    if username is not None:
        fields["target"] = username
    return hit(offset_ns, event_id, group=ip, **fields)


def test_distinct_counts_distinct_values_not_events() -> None:
    agg = build_aggregation(
        DistinctSpec(field="target", count=4, within=timedelta(minutes=10)), rule_id="r"
    )
    names = ["ann", "bob", "ann", "bob", "cid", "ann", "dee", "eve"]
    firings = feed(agg, [spray(i * S, f"e{i}", n) for i, n in enumerate(names)])
    assert len(firings) == 1
    f = firings[0]
    # The 4th distinct username (dee, e6) fires with every hit of the window.
    assert f.trigger.id == "e6"
    assert f.count == 7
    assert f.details == {"field": "target", "values": ["ann", "bob", "cid", "dee"], "distinct": 4}
    assert f.group_key == "203.0.113.9"
    # Consumed: "eve" alone is one distinct value, far from firing again.
    assert agg.entries() == 1


def test_distinct_ignores_missing_and_null_values() -> None:
    agg = build_aggregation(
        DistinctSpec(field="target", count=2, within=timedelta(minutes=10)), rule_id="r"
    )
    raw_null = spray(2 * S, "e2")
    raw_null.event.raw["target"] = None
    assert feed(agg, [spray(0, "e0", "ann"), spray(S, "e1"), raw_null]) == []
    assert agg.entries() == 1
    assert [f.trigger.id for f in agg.add(spray(3 * S, "e3", "bob"))] == ["e3"]


def test_distinct_values_exactly_within_apart_do_not_combine() -> None:
    agg = build_aggregation(
        DistinctSpec(field="target", count=2, within=timedelta(minutes=10)), rule_id="r"
    )
    assert feed(agg, [spray(0, "a", "ann"), spray(10 * MIN, "b", "bob")]) == []
    assert [f.trigger.id for f in agg.add(spray(10 * MIN + 1, "c", "cid"))] == ["c"]


def test_distinct_late_event_is_counted() -> None:
    agg = build_aggregation(
        DistinctSpec(field="target", count=3, within=timedelta(minutes=10)), rule_id="r"
    )
    firings = feed(
        agg, [spray(0, "a", "ann"), spray(2 * MIN, "c", "cid"), spray(1 * MIN, "b", "bob")]
    )
    assert [(f.trigger.id, ids(f)) for f in firings] == [("c", ["a", "b", "c"])]


def test_distinct_jsonpath_list_counts_each_element() -> None:
    agg = build_aggregation(
        DistinctSpec(field="$.changes[*].field", count=3, within=timedelta(minutes=10)),
        rule_id="r",
    )
    first = hit(0, "a", changes=[{"field": "mfa"}, {"field": "email"}])
    second = hit(S, "b", changes=[{"field": "mfa"}, {"field": "state"}])
    firings = feed(agg, [first, second])
    assert [f.details["values"] for f in firings] == [["email", "mfa", "state"]]


def test_field_values_normalises_json_scalars() -> None:
    assert field_values("US") == ("US",)
    assert field_values(3) == ("3",)
    assert field_values(True) == ("true",)
    assert field_values(["a", None, "a", 2]) == ("a", "2")
    assert field_values(None) == ()


# ---------------------------------------------------------------------- new_value


def login(offset_ns: int, event_id: str, country: str | None, group: str = "alice") -> Hit:
    geoip = {} if country is None else {"country_code": country}
    return hit(offset_ns, event_id, group=group, geoip=geoip)


def new_value_spec(**kw: Any) -> NewValueSpec:
    return NewValueSpec(field="geoip.country_code", by=["initiated_by.username"], **kw)


def test_new_value_learns_then_fires_once_per_new_value() -> None:
    agg = build_aggregation(new_value_spec(learn=timedelta(days=1)), rule_id="geo")
    learning = [login(0, "l1", "US"), login(HOUR, "l2", "FR"), login(23 * HOUR, "l3", "DE")]
    assert feed(agg, learning) == []
    firings = feed(
        agg,
        [
            login(DAY, "a", "US"),
            login(DAY + HOUR, "b", "BR"),
            login(DAY + 2 * HOUR, "c", "BR"),
        ],
    )
    assert [f.trigger.id for f in firings] == ["b"]
    assert firings[0].details == {
        "field": "geoip.country_code",
        "value": "BR",
        "known": ["DE", "FR", "US"],
    }
    assert firings[0].count == 1
    assert ids(firings[0]) == ["b"]


def test_new_value_first_value_of_a_new_group_is_learned_not_alerted() -> None:
    agg = build_aggregation(new_value_spec(learn=timedelta(hours=1)), rule_id="geo")
    agg.add(login(0, "start", "US"))
    # bob appears after the learning period: his first country is his baseline...
    assert agg.add(login(2 * DAY, "b1", "RU", group="bob")) == []
    assert agg.add(login(2 * DAY + 1, "b2", "RU", group="bob")) == []
    # ...and only a different one is unusual for him.
    assert [f.trigger.id for f in agg.add(login(2 * DAY + 2, "b3", "CN", group="bob"))] == ["b3"]


def test_an_assumed_learning_start_judges_as_if_the_first_hit_had_come_then() -> None:
    # A --jobs worker meets only its users: alice's first login is not the rule's first
    # hit, which came a day earlier in another worker's share.
    agg = build_aggregation(new_value_spec(learn=timedelta(days=1)), rule_id="geo")
    assert isinstance(agg, NewValueAggregation)
    agg.assume_start(T0)
    assert feed(agg, [login(2 * HOUR, "a1", "US"), login(DAY + HOUR, "a2", "US")]) == []
    assert [f.trigger.id for f in agg.add(login(DAY + HOUR + 30 * MIN, "a3", "BR"))] == ["a3"]
    assert agg.learning_start == T0
    assert agg.first_hit_ns == T0 + 2 * HOUR  # what it met itself: the check of the guess
    unassumed = build_aggregation(new_value_spec(learn=timedelta(days=1)), rule_id="geo")
    feed(unassumed, [login(2 * HOUR, "a1", "US"), login(DAY + HOUR, "a2", "US")])
    assert unassumed.add(login(DAY + HOUR + 30 * MIN, "a3", "BR")) == []  # still learning


def test_new_value_forgets_values_not_seen_for_forget() -> None:
    agg = build_aggregation(
        new_value_spec(learn=timedelta(0), forget=timedelta(days=30)), rule_id="geo"
    )
    feed(agg, [login(0, "a", "US"), login(20 * DAY, "b", "FR")])
    # US was last seen 35 days ago: forgotten, so it is new again; FR is still known.
    assert [f.trigger.id for f in agg.add(login(35 * DAY, "c", "US"))] == ["c"]
    assert agg.add(login(36 * DAY, "d", "FR")) == []


def test_new_value_forget_boundary_is_half_open() -> None:
    """A value last seen exactly `forget` ago is forgotten, like the window edges."""
    for offset, fires in ((30 * DAY - 1, False), (30 * DAY, True)):
        agg = build_aggregation(
            new_value_spec(learn=timedelta(0), forget=timedelta(days=30)), rule_id="geo"
        )
        feed(agg, [login(0, "a", "US"), login(20 * DAY, "b", "FR")])
        assert bool(agg.add(login(offset, "c", "US"))) is fires


def test_new_value_eviction_keeps_values_a_late_event_still_knows() -> None:
    agg = build_aggregation(
        new_value_spec(learn=timedelta(0), forget=timedelta(days=30)),
        rule_id="geo",
        tolerance_ns=5 * MIN,
    )
    feed(agg, [login(0, "a", "US"), login(29 * DAY, "b", "FR")])
    agg.evict(T0 + 30 * DAY + 2 * MIN)
    assert agg.entries() == 2
    # Late by 3 minutes (within tolerance): US was seen under 30 days before it.
    assert agg.add(login(30 * DAY - MIN, "c", "US")) == []


def test_new_value_cap_forgets_least_recently_seen(caplog: pytest.LogCaptureFixture) -> None:
    agg = build_aggregation(new_value_spec(learn=timedelta(days=1)), rule_id="ips", max_entries=10)
    with caplog.at_level(logging.WARNING, logger="alerting.engine.aggregations"):
        for i in range(30):
            agg.add(login(i * S, f"e{i}", f"C{i:02d}"))
            assert agg.entries() <= 10
    assert len([r for r in caplog.records if "max_entries=10" in r.getMessage()]) == 1
    # After learning, the most recent value is still known, an early one is not.
    assert agg.add(login(2 * DAY, "recent", "C29")) == []
    assert [f.trigger.id for f in agg.add(login(2 * DAY, "old", "C00"))] == ["old"]


def test_new_value_ignores_missing_values() -> None:
    agg = build_aggregation(new_value_spec(learn=timedelta(0)), rule_id="geo")
    feed(agg, [login(0, "a", "US")])
    assert agg.add(login(S, "b", None)) == []
    assert agg.entries() == 1


def test_new_value_baselines_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    spec = new_value_spec(learn=timedelta(days=1), forget=timedelta(days=30))
    store = Store(path)
    agg = build_aggregation(spec, rule_id="geo")
    feed(agg, [login(0, "a", "US"), login(HOUR, "b", "FR"), login(HOUR, "c", "JP", group="bob")])
    with store.transaction():
        agg.flush(store)
    agg.add(login(2 * HOUR, "d", "DE"))  # learned after the flush
    with store.transaction():
        agg.flush(store)
    with store.transaction():
        agg.flush(store)  # nothing new: harmless
    store.close()

    store = Store(path)
    again = build_aggregation(spec, rule_id="geo")
    again.restore(store)
    assert again.entries() == 4
    # The learning start came back too: day 2 is past it, so a new country fires.
    firings = feed(again, [login(2 * DAY, "e", "FR"), login(2 * DAY, "f", "BR")])
    assert [f.trigger.id for f in firings] == ["f"]
    assert firings[0].details["known"] == ["DE", "FR", "US"]
    # Other rules' baselines are separate.
    other = build_aggregation(spec, rule_id="other-rule")
    other.restore(store)
    assert other.entries() == 0
    store.close()


def test_new_value_eviction_prunes_forgotten_rows_from_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    agg = build_aggregation(
        new_value_spec(learn=timedelta(0), forget=timedelta(days=30)),
        rule_id="geo",
        tolerance_ns=0,
    )
    feed(agg, [login(0, "a", "US"), login(40 * DAY, "b", "FR")])
    with store.transaction():
        agg.flush(store)
    assert len(store.load_baselines("geo")) == 2
    agg.evict(T0 + 40 * DAY)  # US last seen 40 days ago > forget
    assert agg.entries() == 1
    with store.transaction():
        agg.flush(store)
    assert [row[1] for row in store.load_baselines("geo")] == ["FR"]
    store.close()


def test_new_value_a_value_seen_again_after_a_flush_is_written_again(tmp_path: Path) -> None:
    spec = new_value_spec(learn=timedelta(0), forget=timedelta(days=30))
    store = Store(tmp_path / "state.db")
    agg = build_aggregation(spec, rule_id="geo")
    feed(agg, [login(0, "a", "US")])
    with store.transaction():
        agg.flush(store)
    feed(agg, [login(20 * DAY, "b", "US")])  # the same value, seen again after the flush
    with store.transaction():
        agg.flush(store)
    again = build_aggregation(spec, rule_id="geo")
    again.restore(store)
    # US was seen 20 days before the restart, not 40: still known, so BR is new.
    firings = again.add(login(40 * DAY, "c", "BR"))
    assert [f.details for f in firings] == [
        {"field": "geoip.country_code", "value": "BR", "known": ["US"]}
    ]
    store.close()


def mfa_login(offset_ns: int, event_id: str, mfa: Any, group: str = "alice") -> Hit:
    return hit(offset_ns, event_id, group=group, mfa=mfa)


def test_new_value_of_booleans_and_numbers_across_a_restart(tmp_path: Path) -> None:
    """A boolean field (``mfa``) or a number is a value like a string, as its JSON."""
    spec = NewValueSpec(field="mfa", learn=timedelta(0), forget=timedelta(days=30))
    store = Store(tmp_path / "state.db")
    agg = build_aggregation(spec, rule_id="mfa")
    assert feed(agg, [mfa_login(0, "a", True), mfa_login(HOUR, "b", True)]) == []
    firings = agg.add(mfa_login(2 * HOUR, "c", False))
    assert [f.details for f in firings] == [{"field": "mfa", "value": "false", "known": ["true"]}]
    with store.transaction():
        agg.flush(store)
    assert sorted(row[1] for row in store.load_baselines("mfa")) == ["false", "true"]
    again = build_aggregation(spec, rule_id="mfa")
    again.restore(store)
    # Both are known after the restart; the string "true" is the boolean's JSON.
    quiet = [mfa_login(DAY, "d", False), mfa_login(DAY, "e", True), mfa_login(DAY, "f", "true")]
    assert feed(again, quiet) == []
    # Numbers are their JSON text too: 1 is neither true nor 1.0, and "1" is 1.
    numbers = [mfa_login(DAY + i, f"n{i}", v) for i, v in enumerate([1, "1", 1.0, 443, 443])]
    assert [f.details["value"] for f in feed(again, numbers)] == ["1", "1.0", "443"]
    store.close()


# ---------------------------------------------------------------------- travel


def located(
    offset_ns: int, event_id: str, place: tuple[Any, Any], country: str = "", ip: str = ""
) -> Hit:
    geoip = {"latitude": place[0], "longitude": place[1], "country_code": country}
    return hit(offset_ns, event_id, geoip=geoip, client_ip=ip)


def test_haversine_matches_known_city_distances() -> None:
    # Paris - New York is about 5,837 km by great circle.
    assert 5800 < haversine_km(*PARIS, *NEW_YORK) < 5880
    assert 100 < haversine_km(*PARIS, *ORLEANS) < 125
    assert haversine_km(*PARIS, *PARIS) == 0.0
    # Antipodes: half the circumference, no math domain error.
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(20015.1, abs=0.5)


def test_coordinate_accepts_numbers_and_numeric_strings_only() -> None:
    assert coordinate(48.85, 90) == 48.85
    assert coordinate("48.85", 90) == 48.85
    assert coordinate([2], 180) == 2.0
    for bad in (None, True, "north", float("nan"), float("inf"), 91, {"x": 1}):
        assert coordinate(bad, 90) is None


def test_travel_paris_to_new_york_in_ten_minutes_fires() -> None:
    agg = build_aggregation(TravelSpec(by=["initiated_by.username"]), rule_id="travel")
    firings = feed(
        agg,
        [
            located(0, "p", PARIS, "FR", "198.51.100.1"),
            located(10 * MIN, "ny", NEW_YORK, "US", "203.0.113.7"),
        ],
    )
    assert len(firings) == 1
    f = firings[0]
    assert f.trigger.id == "ny"
    assert ids(f) == ["p", "ny"]
    assert f.count == 2
    d = f.details
    assert 5800 < d["distance_km"] < 5880
    assert d["minutes"] == 10.0
    assert d["speed_kmh"] == pytest.approx(d["distance_km"] * 6, rel=1e-3)
    assert d["from"] == {
        "lat": PARIS[0],
        "lon": PARIS[1],
        "country_code": "FR",
        "client_ip": "198.51.100.1",
        "time": "2026-11-20T10:00:00Z",
    }
    assert d["to"]["country_code"] == "US"
    assert d["to"]["time"] == "2026-11-20T10:10:00Z"


def test_travel_paris_to_new_york_in_ten_hours_is_a_plane() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    # ~584 km/h: below the 1000 km/h default.
    assert feed(agg, [located(0, "p", PARIS), located(10 * HOUR, "ny", NEW_YORK)]) == []


def test_travel_short_hop_is_below_min_distance() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    # ~111 km in one minute is 6,700 km/h, but under min_distance_km (500): GeoIP noise.
    assert feed(agg, [located(0, "p", PARIS), located(MIN, "o", ORLEANS)]) == []


def test_travel_same_instant_uses_a_one_minute_floor() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    firings = feed(agg, [located(0, "p", PARIS), located(0, "q", NEW_YORK)])
    assert len(firings) == 1
    assert firings[0].details["minutes"] == 0.0
    assert firings[0].details["speed_kmh"] == pytest.approx(
        firings[0].details["distance_km"] * 60, rel=1e-3
    )


def test_travel_late_event_is_compared_with_its_successor() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    firings = feed(agg, [located(10 * MIN, "ny", NEW_YORK), located(0, "p", PARIS)])
    assert [(f.trigger.id, ids(f)) for f in firings] == [("ny", ["p", "ny"])]


REAL_EVENTS = Path("/work/shared/reference/real-events")
SYDNEY = (-33.8688, 151.2093)


def _real_login(event_id: str, offset_ns: int, place: tuple[float, float], ip: str) -> Hit:
    """A successful user login, shaped like JumpCloud's documented login event."""
    with (REAL_EVENTS / "jumpcloud-api-docs.jsonl").open() as lines:
        shape = next(json.loads(x) for x in lines if '"admin_login_attempt"' in x)
    raw = copy.deepcopy(shape)
    raw.update(
        id=event_id,
        event_type="user_login_attempt",
        initiated_by={"id": raw["resource"]["id"], "type": "user", "username": "jane.doe"},
        client_ip=ip,
        timestamp=format_timestamp(T0 + offset_ns),
    )
    raw["geoip"].update(latitude=place[0], longitude=place[1])
    return Hit(
        Event(raw, T0 + offset_ns, event_id), "jane.doe", {"initiated_by.username": "jane.doe"}
    )


# Paris, Paris, Sydney, Paris, Paris, two to eight minutes apart (the review's case).
_TRIP = [
    _real_login("p1", 0, PARIS, "198.51.100.1"),
    _real_login("p2", 4 * MIN, PARIS, "198.51.100.1"),
    _real_login("syd", 6 * MIN, SYDNEY, "203.0.113.9"),
    _real_login("p3", 10 * MIN, PARIS, "198.51.100.1"),
    _real_login("p4", 18 * MIN, PARIS, "198.51.100.1"),
]
_SYDNEY_LAST = [_TRIP[0], _TRIP[1], _TRIP[3], _TRIP[4], _TRIP[2]]  # 12 minutes late


def _pairs(firings: list[Firing]) -> list[list[str]]:
    return sorted(ids(f) for f in firings)


def test_travel_judges_a_login_as_late_as_the_tolerance_against_both_neighbours() -> None:
    tolerance = 15 * MIN
    in_order = feed(build_aggregation(TravelSpec(), rule_id="t", tolerance_ns=tolerance), _TRIP)
    assert _pairs(in_order) == [["p2", "syd"], ["syd", "p3"]]
    late = feed(build_aggregation(TravelSpec(), rule_id="t", tolerance_ns=tolerance), _SYDNEY_LAST)
    assert _pairs(late) == _pairs(in_order)
    assert [f.details["distance_km"] for f in sorted(late, key=ids)] == [
        f.details["distance_km"] for f in sorted(in_order, key=ids)
    ]


def test_travel_with_the_default_tolerance_loses_a_pair_to_a_login_later_than_it() -> None:
    # Why source.overlap must reach the engine: 12 minutes late is past the 5-minute default.
    late = feed(build_aggregation(TravelSpec(), rule_id="t"), _SYDNEY_LAST)
    assert len(late) == 1


def test_travel_compares_only_within_the_window() -> None:
    agg = build_aggregation(TravelSpec(within=timedelta(hours=1)), rule_id="travel")
    assert feed(agg, [located(0, "p", PARIS), located(HOUR, "ny", NEW_YORK)]) == []
    agg2 = build_aggregation(TravelSpec(within=timedelta(hours=1)), rule_id="travel")
    assert len(feed(agg2, [located(0, "p", PARIS), located(HOUR - S, "ny", NEW_YORK)])) == 1


def test_travel_ignores_events_without_a_location() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    hits = [
        located(0, "p", ("48.8566", "2.3522")),  # numeric strings are fine
        located(MIN, "x", (None, None)),
        located(2 * MIN, "y", ("abc", 3)),
        located(3 * MIN, "ny", NEW_YORK),
    ]
    firings = feed(agg, hits)
    assert [ids(f) for f in firings] == [["p", "ny"]]
    assert agg.entries() == 2


def test_travel_only_compares_adjacent_logins() -> None:
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    hits = [
        located(0, "p1", PARIS),
        located(10 * MIN, "ny1", NEW_YORK),  # fires: Paris -> NY
        located(15 * MIN, "ny2", NEW_YORK),  # NY -> NY: nothing
        located(20 * MIN, "p2", PARIS),  # fires: NY -> Paris
    ]
    assert [ids(f) for f in feed(agg, hits)] == [["p1", "ny1"], ["ny2", "p2"]]


def test_travel_keeps_few_logins_per_user_without_waiting_for_evict() -> None:
    """A user's logins older than the tolerance behind their newest can no longer be a
    neighbour (but the newest of them): a day of logins never piles up between evicts."""
    agg = build_aggregation(TravelSpec(), rule_id="travel")
    logins = [located(i * MIN, f"l{i}", PARIS) for i in range(24 * 60)]
    assert feed(agg, logins) == []
    assert agg.entries() <= 7  # the 5-minute tolerance at one login a minute, plus one
    # A login late by less than the tolerance still meets its true neighbours.
    late = located(24 * 60 * MIN - 3 * MIN + 30 * S, "late", NEW_YORK)
    assert [ids(f) for f in agg.add(late)] == [
        [f"l{24 * 60 - 3}", "late"],
        ["late", f"l{24 * 60 - 2}"],
    ]


def test_travel_past_its_cap_drops_the_oldest_logins_and_still_judges(caplog) -> None:
    agg = build_aggregation(
        TravelSpec(), rule_id="travel", max_entries=10, tolerance_ns=24 * 3600 * S
    )
    logins = [
        hit(i * MIN, f"l{i}", group=f"u{i % 3}", geoip={"latitude": 48.8, "longitude": 2.3})
        for i in range(50)
    ]
    with caplog.at_level(logging.WARNING):
        assert feed(agg, logins) == []
    assert agg.entries() <= 10
    assert "max_entries=10" in caplog.records[0].getMessage()
    # What is left is still in order and whole: a jump from the newest login fires.
    jump = hit(50 * MIN, "ny", group="u2", geoip={"latitude": 40.7, "longitude": -74.0})
    [firing] = agg.add(jump)
    assert ids(firing) == ["l47", "ny"]
    assert firing.events[0].raw["id"] == "l47"


# ---------------------------------------------------------------------- sequence

FAIL, OK = 0, 1


def brute_force_spec(fails: int = 3, within: timedelta = timedelta(minutes=10)) -> SequenceSpec:
    return SequenceSpec(
        by=["initiated_by.username"],
        within=within,
        steps=[{"selection": "failed", "count": fails}, {"selection": "succeeded"}],
    )


def test_sequence_failures_then_success_fires() -> None:
    agg = build_aggregation(brute_force_spec(), rule_id="bf")
    hits = [hit(i * MIN, f"f{i}", steps=(FAIL,)) for i in range(4)]
    hits.append(hit(5 * MIN, "ok", steps=(OK,)))
    firings = feed(agg, hits)
    assert len(firings) == 1
    f = firings[0]
    assert f.trigger.id == "ok"
    # The latest three failures are used; the first stays held.
    assert ids(f) == ["f1", "f2", "f3", "ok"]
    assert f.count == 4
    assert f.details == {
        "steps": [{"selection": "failed", "count": 3}, {"selection": "succeeded", "count": 1}]
    }
    assert agg.entries() == 1
    # Consumed: another success needs three new failures.
    assert agg.add(hit(6 * MIN, "ok2", steps=(OK,))) == []


def test_sequence_order_matters() -> None:
    agg = build_aggregation(brute_force_spec(), rule_id="bf")
    hits = [hit(0, "ok", steps=(OK,))] + [
        hit((i + 1) * S, f"f{i}", steps=(FAIL,)) for i in range(3)
    ]
    assert feed(agg, hits) == []


def test_sequence_steps_must_be_strictly_later() -> None:
    agg = build_aggregation(brute_force_spec(fails=2), rule_id="bf")
    hits = [hit(0, "f0", steps=(FAIL,)), hit(S, "f1", steps=(FAIL,)), hit(S, "ok", steps=(OK,))]
    assert feed(agg, hits) == []  # the success shares f1's second
    assert [f.trigger.id for f in agg.add(hit(2 * S, "ok2", steps=(OK,)))] == ["ok2"]


def test_sequence_must_fit_in_the_window() -> None:
    agg = build_aggregation(brute_force_spec(fails=2, within=timedelta(minutes=10)), rule_id="bf")
    hits = [
        hit(0, "f0", steps=(FAIL,)),
        hit(5 * MIN, "f1", steps=(FAIL,)),
        hit(10 * MIN, "ok", steps=(OK,)),  # f0 is exactly 10 minutes before: outside
    ]
    assert feed(agg, hits) == []
    firings = feed(agg, [hit(11 * MIN, "f2", steps=(FAIL,)), hit(12 * MIN, "ok2", steps=(OK,))])
    assert [ids(f) for f in firings] == [["f1", "f2", "ok2"]]


def test_sequence_hit_matching_several_steps() -> None:
    spec = SequenceSpec(
        within=timedelta(minutes=10),
        steps=[{"selection": "any_login"}, {"selection": "any_login"}, {"selection": "admin"}],
    )
    agg = build_aggregation(spec, rule_id="r")
    hits = [
        hit(0, "a", steps=(0, 1)),
        hit(S, "b", steps=(0, 1, 2)),  # could be the last step but needs two before it
        hit(2 * S, "c", steps=(0, 1, 2)),
    ]
    firings = feed(agg, hits)
    assert [(f.trigger.id, ids(f)) for f in firings] == [("c", ["a", "b", "c"])]


def test_sequence_late_failure_still_completes_the_sequence() -> None:
    agg = build_aggregation(brute_force_spec(fails=2), rule_id="bf")
    hits = [
        hit(0, "f0", steps=(FAIL,)),
        hit(2 * MIN, "ok", steps=(OK,)),
        hit(1 * MIN, "f1", steps=(FAIL,)),  # late, but before the success in event time
    ]
    firings = feed(agg, hits)
    assert [(f.trigger.id, ids(f)) for f in firings] == [("ok", ["f0", "f1", "ok"])]
    assert agg.entries() == 0


def test_sequence_late_first_step_completes_a_later_end() -> None:
    """A late step-1 hit can complete a chain ending at a later hit, not the first one."""
    spec = SequenceSpec(
        within=timedelta(minutes=10),
        steps=[{"selection": "mfa_removed"}, {"selection": "login", "count": 2}],
    )
    agg = build_aggregation(spec, rule_id="r")
    hits = [
        hit(3 * S, "l1", steps=(1,)),
        hit(5 * S, "l2", steps=(1,)),
        hit(1 * S, "m", steps=(0,)),  # late; a chain ending at l1 lacks a second login
    ]
    firings = feed(agg, hits)
    assert [(f.trigger.id, ids(f)) for f in firings] == [("l2", ["m", "l1", "l2"])]


def test_sequence_ignores_hits_matching_no_step() -> None:
    agg = build_aggregation(brute_force_spec(), rule_id="bf")
    assert agg.add(hit(0, "x", steps=())) == []
    assert agg.add(hit(0, "y", steps=(7,))) == []
    assert agg.entries() == 0


def test_restore_and_flush_are_noops_for_windowed_aggregations(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    agg = build_aggregation(ThresholdSpec(count=2, within=timedelta(minutes=1)), rule_id="r")
    agg.add(hit(0, "a"))
    with store.transaction():
        agg.flush(store)
    agg.restore(store)
    assert agg.entries() == 1
    assert store.load_baselines("r") == []
    store.close()


def test_distinct_late_hit_pairs_with_a_hit_left_over_by_a_firing() -> None:
    """Found by the property test: after a firing, an earlier unconsumed hit must still
    count for a late hit (within the tolerance) whose window contains it."""
    spec = DistinctSpec(field="user", count=2, within=timedelta(seconds=8))
    agg = build_aggregation(spec, rule_id="spray", tolerance_ns=5 * S)
    fired = []
    for eid, t, user in [("a", 0, "u3"), ("b", 3, "u3"), ("d", 8, "u1"), ("c", 7, "u1")]:
        event = Event({"user": user}, t * S, eid)
        for firing in agg.add(Hit(event, "10.0.0.1", {"client_ip": "10.0.0.1"})):
            fired.append((firing.trigger.id, [e.id for e in firing.events]))
    assert fired == [("d", ["b", "d"]), ("c", ["a", "c"])]

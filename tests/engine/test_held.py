"""Slim window entries: what a summary needs, slim vs full events, samples, the cap.

Held events keep their full JSON only while among the newest ``MAX_SAMPLE_EVENTS`` of
their series; otherwise only the fields the rule's summary reads. The tests show that a
summary renders the same from projections as from whole events, that the analysis falls
back to whole events whenever a template could see more than named fields, and which
events an alert then carries as samples.
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import jsonutil
from alerting.alert import MAX_SAMPLE_EVENTS
from alerting.engine.aggregations import ThresholdAggregation, build_aggregation
from alerting.engine.engine import Engine
from alerting.engine.held import HeldEvent, Holder, held_in_full, pick_samples, summary_needs
from alerting.engine.loader import load_rules
from alerting.engine.types import Hit, ThresholdSpec
from alerting.engine.windows import Series
from alerting.events import Event, JsonEvent, format_timestamp, parse_timestamp
from alerting.jinja_env import make_environment
from alerting.simulator.traffic import HOUR_NS, TrafficGenerator
from tests.support.real_events import RADIUS_FAILURE, shaped

ROOT = Path(__file__).resolve().parents[2]
T0 = parse_timestamp("2026-03-02T10:00:00Z")
S = 10**9
MIN = 60 * S
ENV = make_environment()
K = MAX_SAMPLE_EVENTS


def needs(template: str) -> tuple[list[str], bool]:
    found = summary_needs(ENV.parse(template))
    return [".".join(p) for p in found.paths], found.hold_full


def event(seconds: float, event_id: str, **fields: Any) -> Event:
    raw = {"id": event_id, "timestamp": format_timestamp(T0 + int(seconds * S)), **fields}
    return Event.from_raw(raw)


# ---------------------------------------------------------------------- analysis


@pytest.mark.parametrize(
    ("template", "paths", "full"),
    [
        # nothing read from events
        ("{{ count }} for {{ group['initiated_by.username'] }}", [], False),
        ("{{ details.distance_km | round }} km, {{ rule.id }} {{ title }}", [], False),
        # values() with a constant dotted path
        ("{{ values('client_ip') | join(', ') }}", ["client_ip"], False),
        (
            "{{ values('geoip.country_code') }} {{ values('client_ip') }}",
            ["client_ip", "geoip.country_code"],
            False,
        ),
        # first/last chains, attribute or constant subscript, up to the first non-constant
        ("{{ last.geoip.country_code }}", ["geoip.country_code"], False),
        ("{{ first['geoip']['region_name'] }}", ["geoip.region_name"], False),
        ("{{ last['a.b'] }}", ["a.b"], False),  # one key with a dot, not a nested path
        ("{{ last.changes[0].field }}", ["changes"], False),
        ("{{ last.client_ip[:3] }}", ["client_ip"], False),
        ("{% set k = 'x' %}{{ last.resource[k] }}", ["resource"], False),
        # a shorter chain covers a longer one: the whole value is kept
        ("{{ last.resource }}{{ last.resource.email }}", ["resource"], False),
        # an existence test is answered by any longer path through it (the dicts on the
        # way are kept), or else by the value itself
        (
            "{% if last.resource is defined %}{{ last.resource.email }}{% endif %}",
            ["resource.email"],
            False,
        ),
        (
            "{% if last.geoip is not defined %}?{% endif %}{{ values('geoip.city') }}",
            ["geoip.city"],
            False,
        ),
        ("{{ 'y' if first['resource'] is defined }}", ["resource"], False),
        ("{{ 'y' if last.resource.items is defined }}", ["resource"], False),
        ("{{ 'y' if last is defined }}", [], True),
        # dict methods answer for every key: stop before them, or whole events
        ("{{ last.resource.items() | list }}", ["resource"], False),
        ("{{ last.items() | list }}", [], True),
        ("{{ last['keys'] }}", [], True),
        # whole events
        ("{{ events | length }}", [], True),
        ("{% for e in events %}{{ e.client_ip }}{% endfor %}", [], True),
        ("{{ last }}", [], True),
        ("{{ first | tojson }}", [], True),
        ("{% set k = 'x' %}{{ last[k] }}", [], True),
        ("{% set e = first %}{{ e.client_ip }}", [], True),
        ("{{ values(details.field) }}", [], True),
        ("{{ values('$.changes[*].field') }}", [], True),
        ("{% set v = values %}{{ v('client_ip') }}", [], True),
        ("{{ values(path='client_ip') }}", [], True),
    ],
)
def test_summary_needs(template: str, paths: list[str], full: bool) -> None:
    assert needs(template) == (paths, full)


def test_the_shipped_pack_holds_projections_not_whole_events() -> None:
    rules = load_rules([ROOT / "rules"])
    assert rules
    whole = [r.id for r in rules if r.hold_full]
    assert whole == []
    burst = next(r for r in rules if r.id == "failed-login-burst")
    assert burst.held_paths == (("client_ip",), ("event_type",), ("geoip", "country_code"))


def test_a_rule_without_summary_holds_nothing(tmp_path: Path) -> None:
    (tmp_path / "r.yml").write_text(
        textwrap.dedent(
            """\
            id: burst
            title: Burst
            severity: low
            detection:
              sel: {event_type: user_login_attempt}
              condition: sel
            threshold: {count: 3, within: 5m}
            """
        ),
        encoding="utf-8",
    )
    (rule,) = load_rules([tmp_path])
    assert (rule.held_paths, rule.hold_full) == ((), False)


# ---------------------------------------------------------------------- slim vs full


def test_held_event_is_full_until_slimmed_then_its_projection() -> None:
    raw = {
        "id": "e1",
        "timestamp": "2026-03-02T10:00:00.120000Z",  # not the canonical form
        "client_ip": "203.0.113.7",
        "geoip": {"country_code": "RU", "latitude": 55.7},
        "resource": {"type": "user"},
        "changes": [{"field": "mfa"}],
        "useragent": {"name": "curl"},
    }
    blob = jsonutil.dumps(raw).encode()
    source = JsonEvent.from_json(jsonutil.loads(blob), blob)
    holder = Holder([("geoip", "country_code"), ("resource", "email"), ("changes", "field")])
    held = holder.hold(source)
    assert held.full
    assert held.raw == raw
    assert held.time_ns is source.time_ns  # one int shared with the series' times
    assert held.id == "e1"
    held.slim()
    assert not held.full
    assert not held_in_full(held)
    assert held.raw == {
        "geoip": {"country_code": "RU"},
        "resource": {},  # there, without the missing email: `is defined` still holds
        "changes": [{"field": "mfa"}],  # not a dict: kept whole
        "id": "e1",
        "timestamp": format_timestamp(source.time_ns),
    }


def test_projection_carrying_id_and_timestamp_keeps_the_events_own() -> None:
    raw = {"timestamp": "2026-03-02T10:00:00.000Z", "client_ip": "x"}  # no id
    source = Event.from_raw(raw)
    held = Holder([("timestamp",), ("id",)]).hold(source)
    held.slim()
    assert held.raw == {"timestamp": "2026-03-02T10:00:00.000Z"}  # no id was there


def test_rule_projecting_nothing_keeps_only_identity_once_slim() -> None:
    source = event(0, "e1", client_ip="x", geoip={"country_code": "US"})
    held = Holder().hold(source)
    assert held.raw == source.raw
    held.slim()
    assert held.raw == {"id": "e1", "timestamp": source.raw["timestamp"]}


def test_hold_full_never_slims() -> None:
    source = event(0, "e1", client_ip="x")
    held = Holder.full().hold(source)
    held.slim()
    assert held.full
    assert held.raw == source.raw


def test_one_event_held_by_many_rules_shares_its_bytes() -> None:
    source = event(0, "e1", client_ip="x")
    a, b = Holder().hold(source), Holder([("client_ip",)]).hold(source)
    assert a._full is b._full  # encoded once, not once per rule


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "a", "RU"])
keys = st.sampled_from(["geoip", "resource", "changes", "client_ip", "email", "field", "to"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)

TEMPLATES = [
    "{{ values('client_ip') | join(',') }}|{{ values('geoip.email') | join(',') }}",
    "{{ last.geoip.email | default('?') }} {{ first.client_ip | default('-') }}",
    "{% if last.resource is defined %}{{ last.resource.email | default('none') }}{% endif %}",
    "{% for c in (last.changes | default([]) if last.changes is not mapping"
    " else [last.changes]) %}{{ c.field | default('?') }},{% endfor %}",
    "{{ last.resource.items() | list if last.resource is mapping else 'n' }}",
    "{{ last.changes[0] if last.changes is sequence and last.changes else 'e' }}",
    "{{ first['geoip']['to'] | default(0) }}{{ last.client_ip.upper() if last.client_ip is string }}",
    "{{ 'g' if last.geoip is defined }}{{ 'r' if first.resource is undefined }}"
    "{{ last.geoip.email | default('?') if last.geoip is defined and last.geoip is mapping }}",
    "{{ 'c' if last.changes is defined }}{{ 'e' if last.email.to is defined }}",
]


def render(template: str, raws: list[dict[str, Any]]) -> str:
    def values(path: str) -> list[str]:
        from alerting.engine.fields import MISSING, compile_path

        get = compile_path(path)
        out = set()
        for raw in raws:
            v = get(raw)
            for item in v if isinstance(v, list) else [v]:
                if item is not MISSING and item is not None:
                    out.add(jsonutil.dumps(item, sort_keys=True))
        return sorted(out)

    try:
        return ENV.from_string(template).render(first=raws[0], last=raws[-1], values=values)
    except Exception as exc:  # a failure must be the same failure
        return f"error: {type(exc).__name__}: {exc}"


def spelled_out_projection(paths: tuple[tuple[str, ...], ...], raw: dict[str, Any]) -> bytes:
    """The projection as the Holder docstring defines it, one path and key at a time."""
    codes: list[int] = []
    values: list[Any] = []
    for path in paths:
        node: Any = raw
        for depth, key in enumerate(path, 1):
            if key not in node:
                codes.append(-depth)
                values.append(None)
                break
            node = node[key]
            if depth == len(path) or type(node) is not dict:
                codes.append(depth)
                values.append(node)
                break
    if codes == [len(p) for p in paths]:
        return jsonutil.dumps(values).encode()
    return jsonutil.dumps([codes, *values]).encode()


PROJECTED = [
    [("client_ip",), ("event_type",), ("geoip",), ("src_ip",)],  # brute-force-success
    [("client_ip",), ("geoip", "country_code"), ("geoip", "to")],
    [("resource", "email", "to"), ("changes", "field"), ("email",)],
]


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(keys | st.sampled_from(["src_ip", "event_type"]), json_values))
@pytest.mark.parametrize("paths", PROJECTED)
def test_projection_bytes_follow_the_definition(
    paths: list[tuple[str, ...]], body: dict[str, Any]
) -> None:
    """Whatever is missing or not a dict on the way, the bytes are the definition's (the
    alerts' summaries are rendered from them)."""
    holder = Holder(paths)
    assert holder.project is not None
    assert holder.project(body) == spelled_out_projection(holder.paths, body)


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.dictionaries(keys, json_values, max_size=5), min_size=1, max_size=4),
    template=st.sampled_from(TEMPLATES),
)
def test_summaries_render_the_same_from_projections(
    bodies: list[dict[str, Any]], template: str
) -> None:
    needs_ = summary_needs(ENV.parse(template))
    assert not needs_.hold_full
    holder = Holder(needs_.paths)
    full = []
    slim = []
    for i, body in enumerate(bodies):
        source = event(i, f"e{i}", **body)
        held = holder.hold(source)
        held.slim()
        full.append(source.raw)
        slim.append(held.raw)
    assert render(template, slim) == render(template, full)


# ---------------------------------------------------------------------- series and samples


def hit(seconds: float, event_id: str, group: str = "alice", **fields: Any) -> Hit:
    return Hit(event(seconds, event_id, **fields), group, {"user": group})


def threshold(count: int, within: str = "10m", **kwargs: Any) -> ThresholdAggregation:
    spec = ThresholdSpec(count=count, within=within)  # type: ignore[arg-type]
    agg = build_aggregation(spec, rule_id="t", holder=Holder([("client_ip",)]), **kwargs)
    assert isinstance(agg, ThresholdAggregation)
    return agg


def entries(series: Series) -> list[HeldEvent]:
    """Every entry of a series as the held event a firing would carry."""
    return series.events(range(len(series.times)))


def full_flags(agg: ThresholdAggregation, group: str = "alice") -> list[bool]:
    return [e.full for e in entries(agg._windows.groups[group])]


def test_only_the_newest_entries_of_a_series_stay_full() -> None:
    agg = threshold(100)
    for i in range(8):
        agg.add(hit(i, f"e{i}"))
    assert full_flags(agg) == [False] * 3 + [True] * K
    series = agg._windows.groups["alice"]
    assert [e.time_ns for e in entries(series)] == [T0 + i * S for i in range(8)]
    # a late event behind K newer ones is slim from the start
    agg.add(hit(0.5, "late-old"))
    assert [e.id for e in entries(series)][:3] == ["e0", "late-old", "e1"]
    assert full_flags(agg) == [False] * 4 + [True] * K
    # a late event among the newest pushes the oldest full one out
    agg.add(hit(6.5, "late-new"))
    assert [e.id for e in entries(series) if e.full] == ["e4", "e5", "e6", "late-new", "e7"]
    # deleting newer entries never makes older ones full again
    series.delete(len(series.times) - 2, len(series.times))
    assert [e.id for e in entries(series) if e.full] == ["e4", "e5", "e6"]
    # nor does a late event among the newest then: the full ones are no longer a suffix
    agg.add(hit(2.5, "late-mid"))
    assert [e.id for e in entries(series) if e.full] == ["late-mid", "e4", "e5", "e6"]
    agg.add(hit(9, "e9"))
    assert [e.id for e in entries(series) if e.full] == ["e4", "e5", "e6", "e9"]


def test_alert_samples_are_the_newest_full_events_in_time_order(tmp_path: Path) -> None:
    rule = """\
    id: burst
    title: Burst
    severity: low
    detection:
      sel: {event_type: user_login_attempt}
      condition: sel
    threshold: {count: 8, within: 10m, by: user}
    summary: "{{ count }} from {{ values('client_ip') | join(', ') }}"
    """
    (tmp_path / "r.yml").write_text(textwrap.dedent(rule), encoding="utf-8")
    engine = Engine(load_rules([tmp_path]))
    events = [
        event(i, f"e{i}", event_type="user_login_attempt", user="amy", client_ip=f"10.0.0.{i}")
        for i in range(8)
    ]
    (alert,) = engine.process_many(events)
    # The old choice was the first 4 + the last; the older ones are slim by now.
    assert [e["id"] for e in alert.events] == ["e3", "e4", "e5", "e6", "e7"]
    assert alert.events == [e.raw for e in events[3:]]
    # the summary still reads every contributing event, slim or not
    assert alert.summary == "8 from " + ", ".join(f"10.0.0.{i}" for i in range(8))
    assert alert.event_ids == [f"e{i}" for i in range(8)]


def test_a_slimmed_trigger_is_still_a_sample(tmp_path: Path) -> None:
    rule = """\
    id: burst
    title: Burst
    severity: low
    detection:
      sel: {event_type: user_login_attempt}
      condition: sel
    threshold: {count: 3, within: 10m}
    summary: "{{ last.client_ip }}"
    """
    (tmp_path / "r.yml").write_text(textwrap.dedent(rule), encoding="utf-8")
    engine = Engine(load_rules([tmp_path]))

    def login(minutes: float, event_id: str) -> Event:
        return event(minutes * 60, event_id, event_type="user_login_attempt", client_ip=event_id)

    # Quiet in order: two within 10 minutes, then five more each on its own.
    stream = [login(0, "a"), login(9, "b"), *(login(30 + 15 * i, f"n{i}") for i in range(5))]
    assert engine.process_many(stream) == []
    # A late event makes a, late, b three within 10 minutes: b (slim by now) triggers.
    (alert,) = engine.process(login(1, "late"))
    assert alert.event_ids == ["a", "late", "b"]
    assert alert.summary == "b"
    assert alert.events == [
        {"client_ip": "b", "id": "b", "timestamp": format_timestamp(T0 + 9 * MIN)}
    ]


# ---------------------------------------------------------------------- deferred projections


def _brute_force_success() -> Engine:
    rules = load_rules([ROOT / "rules"])
    return Engine([r for r in rules if r.id == "brute-force-success"])


def _radius(minutes: float, event_id: str, *, success: bool, client_ip: str) -> Event:
    """The real RADIUS failure (or the same request accepted) for john.doe."""
    fields: dict[str, Any] = {"success": success, "client_ip": client_ip}
    if success:
        fields["error_message"] = None
    return Event.from_raw(shaped(RADIUS_FAILURE, event_id, T0 + int(minutes * MIN), **fields))


def _projections(engine: Engine) -> tuple[int, int]:
    """(held entries of brute-force-success, of which with a projection)."""
    (runner,) = engine._runners
    groups = runner.aggregation._windows.groups  # type: ignore[union-attr]
    parts = [p for series in groups.values() for p in series.parts]
    return len(parts), sum(type(p) is bytes for p in parts)


def test_a_late_guess_before_a_slimmed_success_still_names_where_it_came_from() -> None:
    """A success is held without its projection (it can only end a chain); when newer
    logins slim it while a late failure may still come (the service's poll overlap),
    it is projected then, so the alert it triggers reads its own fields."""
    engine = _brute_force_success()
    # The success, then five RADIUS re-authentications that push it out of the newest.
    stream = [_radius(10, "ok", success=True, client_ip="198.51.100.7")]
    stream += [
        _radius(10.5 + i / 2, f"re{i}", success=True, client_ip="198.51.100.8") for i in range(5)
    ]
    assert engine.process_many(stream) == []
    engine.advance(T0 + int(12.5 * MIN))  # a poll: late events may be 5 minutes older
    # Six failures from before the success arrive late, within the tolerance.
    late = [_radius(8 + i / 4, f"f{i}", success=False, client_ip="13.14.15.16") for i in range(6)]
    (alert,) = engine.process_many(late)
    assert alert.event_ids == [f"f{i}" for i in range(6)] + ["ok"]
    assert alert.summary == (
        "john.doe logged in (radius_auth_attempt) from 198.51.100.7 (FR) "
        "after 6 or more failed attempts from 13.14.15.16, 198.51.100.7"
    )
    trigger = next(e for e in alert.events if e["id"] == "ok")
    assert trigger["client_ip"] == "198.51.100.7"  # its projection: slim by now


def test_a_success_out_of_every_late_failures_reach_is_not_projected() -> None:
    """Past a watermark, no failure still to come can precede an older success (the
    watermark contract): slimming it takes no projection; a newer one is projected."""
    engine = _brute_force_success()
    logins = [_radius(i, f"ok{i}", success=True, client_ip="198.51.100.7") for i in range(20)]
    engine.process_many(logins[:10])
    engine.advance(T0 + 15 * MIN)  # later hits are at least 10 minutes in
    engine.process_many(logins[10:])
    # ok0-ok14 were slimmed: ok0-ok4 before the advance, with a projection; ok5-ok10
    # after it without one (a failure still to come is no earlier than 10 minutes, and
    # a chain's failures are strictly earlier than its success); ok11-ok14 with one.
    assert _projections(engine) == (20, 5 + 4)


def test_in_order_a_success_no_failure_can_reach_holds_no_projection() -> None:
    """A replay that reads strictly in order promises it (``assume_in_order``): the
    successes that end no chain are held without a projection, and the alerts are the
    same as without the promise."""
    start = int(datetime(2026, 11, 19, tzinfo=UTC).timestamp()) * S
    raws = TrafficGenerator(seed=5).generate(start, start + 12 * HOUR_NS)
    events = [Event.from_raw(r) for r in raws]
    general, promised = _brute_force_success(), _brute_force_success()
    promised.assume_in_order()
    alerts = general.process_many(events)
    assert [a.to_dict() for a in promised.process_many(events)] == [a.to_dict() for a in alerts]
    held, projected = _projections(general)
    held_promised, projected_promised = _projections(promised)
    assert held == held_promised > 100
    # Without the promise, every slimmed success is projected (no advance says it is
    # out of reach); with it, only the failures are.
    assert projected_promised < projected


def test_pick_samples_caps_and_keeps_the_trigger() -> None:
    holder = Holder()
    held = [holder.hold(event(i, f"e{i}")) for i in range(8)]
    for h in held[:4]:
        h.slim()
    assert [e.id for e in pick_samples(held, held[-1], K)] == ["e4", "e5", "e6", "e7"]
    assert [e.id for e in pick_samples(held, held[1], 3)] == ["e1", "e6", "e7"]
    plain = [event(i, f"p{i}") for i in range(7)]  # not held: whole events
    assert [e.id for e in pick_samples(plain, plain[-1], K)] == ["p2", "p3", "p4", "p5", "p6"]


def test_memory_cap_drops_the_oldest_and_keeps_the_layout(caplog: pytest.LogCaptureFixture) -> None:
    agg = threshold(100, max_entries=20)
    for i in range(30):
        agg.add(hit(i, f"e{i:02d}", group=f"u{i % 3}", client_ip=str(i)))
    windows = agg._windows
    assert windows.size <= 20
    held = sorted(e.id for s in windows.groups.values() for e in entries(s))
    assert held == [f"e{i:02d}" for i in range(30 - len(held), 30)]  # the newest survive
    assert "max_entries=20" in caplog.text
    for series in windows.groups.values():
        columns = (series.times, series.ids, series.fulls, series.parts, series.aux)
        assert len({len(column) for column in columns}) == 1
        assert list(series.times) == sorted(series.times)
        held_events = entries(series)
        assert [e.full for e in held_events] == [
            i >= len(held_events) - K for i in range(len(held_events))
        ]
        assert all(e.raw["client_ip"] == str(int(e.id[1:])) for e in held_events)


def test_no_objects_are_held_per_entry() -> None:
    """An entry is its columns' values (no Hit, no HeldEvent): a firing makes the events."""
    agg = threshold(100)
    agg.add(hit(0, "e0", client_ip="10.0.0.1"))
    series = agg._windows.groups["alice"]
    assert series.group == {"user": "alice"}
    assert not hasattr(series, "hits")
    assert list(series.times) == [T0]
    assert series.ids == ["e0"]
    assert series.parts == [b'["10.0.0.1"]']
    (held,) = entries(series)
    assert isinstance(held, HeldEvent)
    assert held.full
    assert held.raw["client_ip"] == "10.0.0.1"


# ---------------------------------------------------------------------- the pack


def test_pack_alerts_are_the_same_with_projections_as_with_whole_events() -> None:
    """Every pack rule with whole events held vs its projections: same alerts, same
    summaries (the samples may differ only in which events are still whole)."""
    rules = load_rules([ROOT / "rules"])
    whole = [dataclasses.replace(r, held_paths=(), hold_full=True) for r in rules]
    start = int(datetime(2026, 11, 19, tzinfo=UTC).timestamp()) * S
    raws = TrafficGenerator(seed=3).generate(start, start + 36 * HOUR_NS)
    events = [Event.from_raw(r) for r in raws]
    slim = Engine(rules).process_many(events)
    full = Engine(whole).process_many(events)
    assert len(slim) == len(full) > 20
    assert {a.rule for a in slim} >= {"impossible-travel", "password-spray", "failed-login-burst"}
    for a, b in zip(slim, full, strict=True):
        da, db = a.to_dict(), b.to_dict()
        samples_a, samples_b = da.pop("events"), db.pop("events")
        assert da == db
        assert samples_a == samples_b  # in order: the newest events are the full ones


def test_travel_holds_logins_whole_for_late_neighbours_and_details(tmp_path: Path) -> None:
    rule = """\
    id: travel
    title: Travel
    severity: high
    detection:
      ok: {event_type: user_login_attempt}
      condition: ok
    travel: {by: user}
    """
    (tmp_path / "r.yml").write_text(textwrap.dedent(rule), encoding="utf-8")
    (travel,) = load_rules([tmp_path])
    assert travel.held_paths == ()  # no summary; travel keeps its logins whole anyway
    assert travel.aggregation is not None
    agg = build_aggregation(travel.aggregation, rule_id=travel.id, holder=Holder())

    def login(minutes: float, event_id: str, city: tuple[float, float], cc: str) -> Hit:
        place = {"country_code": cc, "latitude": city[0], "longitude": city[1], "city": "x"}
        return hit(minutes * 60, event_id, group="amy", client_ip=f"ip-{event_id}", geoip=place)

    paris, new_york = (48.8566, 2.3522), (40.7128, -74.0060)
    stream = [
        login(0, "p0", paris, "FR"),
        *(login(2 + i, f"p{i + 1}", paris, "FR") for i in range(6)),
    ]
    assert [f for h in stream for f in agg.add(h)] == []
    # Late, between p0 and p1: both neighbours are far away; p0 is six logins back.
    firings = agg.add(login(1, "ny", new_york, "US"))
    assert [[e.id for e in f.events] for f in firings] == [["p0", "ny"], ["ny", "p1"]]
    assert all(e.full for f in firings for e in f.events)
    places = [(f.details["from"], f.details["to"]) for f in firings]
    assert [
        (a["client_ip"], a["country_code"], b["client_ip"], b["country_code"]) for a, b in places
    ] == [
        ("ip-p0", "FR", "ip-ny", "US"),
        ("ip-ny", "US", "ip-p1", "FR"),
    ]


def test_partially_decoded_events_show_whole_in_alerts(tmp_path: Path) -> None:
    rule = """\
    id: no-mfa
    title: No MFA
    severity: high
    detection:
      sel: {event_type: admin_login_attempt, mfa: false}
      condition: sel
    summary: "{{ last.client_ip }}"
    """
    (tmp_path / "r.yml").write_text(textwrap.dedent(rule), encoding="utf-8")
    engine = Engine(load_rules([tmp_path]))
    whole = {
        "id": "a1",
        "timestamp": "2026-03-02T10:00:00Z",
        "event_type": "admin_login_attempt",
        "mfa": False,
        "client_ip": "203.0.113.9",
        "useragent": {"name": "curl"},
    }
    blob = jsonutil.dumps(whole).encode()
    read = {k: whole[k] for k in ("id", "timestamp", "event_type", "mfa", "client_ip")}
    event_ = JsonEvent(read, T0, "a1", blob, partial=True)
    (alert,) = engine.process(event_)
    assert alert.summary == "203.0.113.9"
    assert alert.events == [whole]


def test_times_past_64_bits_are_held_too() -> None:
    """Times live unboxed in a 64-bit array; one past the year 2262 boxes the column."""
    agg = threshold(3)

    def at(timestamp: str, event_id: str) -> Hit:
        raw = {"id": event_id, "timestamp": timestamp}
        return Hit(Event.from_raw(raw), "alice", {"user": "alice"})

    assert parse_timestamp("2300-01-01T00:00:00Z") >= 2**63
    assert agg.add(hit(0, "now")) == []
    assert agg.add(at("2300-01-01T00:00:00Z", "far1")) == []
    assert agg.add(at("2299-12-31T23:59:59Z", "far0")) == []  # late, inserted
    series = agg._windows.groups["alice"]
    assert [e.id for e in entries(series)] == ["now", "far0", "far1"]
    (firing,) = agg.add(at("2300-01-01T00:00:01Z", "far2"))
    assert [e.id for e in firing.events] == ["far0", "far1", "far2"]
    assert firing.trigger.raw["timestamp"] == "2300-01-01T00:00:01Z"

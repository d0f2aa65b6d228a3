"""The replay hot path (commit "a faster hot path") keeps every user-visible result.

Covered: lazy and partly decoded events give back the whole event; the per-event-type
folding of conditions gives the verdict of the plain condition; the reorder buffer
orders, counts late events and stays bounded; a replay never decodes events no rule can
match; the fast paths of the JSONL reader yield and report exactly what the careful
path does; a shuffled simulator export replays to the same alerts as the sorted one.
"""

from __future__ import annotations

import json
import random
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import jsonutil
from alerting.cli import main as cli_main
from alerting.engine.conditions import And, Node, Not, Or, Ref, evaluate, specialize_tree
from alerting.engine.engine import Engine
from alerting.engine.fields import MISSING, compile_values
from alerting.engine.loader import load_rules
from alerting.engine.matchers import compile_selection
from alerting.engine.reads import flag_fields
from alerting.errors import EventError
from alerting.events import (
    Event,
    JsonEvent,
    LazyEvent,
    format_timestamp,
    parse_timestamp,
)
from alerting.replay import ReorderBuffer, read_for_replay, replay
from alerting.source import files
from alerting.source.files import read_events

T0 = parse_timestamp("2026-03-02T00:00:00Z")
S = 1_000_000_000


def blob_of(raw: Any) -> bytes:
    return json.dumps(raw, ensure_ascii=False).encode("utf-8")


def json_event(raw: dict[str, Any]) -> JsonEvent:
    blob = blob_of(raw)
    return JsonEvent.from_json(jsonutil.loads(blob), blob)


def projector(*fields: str) -> Any:
    decode = jsonutil.projection_decoder(frozenset({"timestamp", "id", "event_type", *fields}))
    assert decode is not None  # msgspec is installed here
    return decode


def raw_at(seconds: float, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "timestamp": format_timestamp(T0 + int(seconds * S)), **fields}


# ----------------------------------------------------------------- 1. lazy and partial events

NESTED = {
    "id": "evt-ü-1",
    "timestamp": "2026-03-02T10:00:01.123456789Z",
    "event_type": "user_login_attempt",
    "initiated_by": {"username": "zoë.o'brien", "groups": ["ops", {"名前": ["日本語", "🙂"]}]},
    "geoip": {"latitude": 39.0392, "longitude": -77.5, "country_code": None},
    "success": False,
    "attempts": 3,
    "note": 'line\nbreak\ttab "quoted" \\ back \u2028 sep',
    "empty": {},
    "list": [],
}


def lazy_event(raw: dict[str, Any], tmp_path: Any) -> LazyEvent:
    path = tmp_path / "one.jsonl"
    path.write_bytes(blob_of(raw))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    assert type(event) is LazyEvent
    return event


def test_a_lazy_event_decodes_to_an_equal_raw_dict(tmp_path):
    event = lazy_event(NESTED, tmp_path)
    assert event.time_ns == parse_timestamp(NESTED["timestamp"])
    assert event.id == "evt-ü-1"
    whole = event.parsed()
    assert type(whole) is JsonEvent
    assert not whole.partial
    assert whole.raw == NESTED
    assert whole.raw["initiated_by"]["groups"][1]["名前"] == ["日本語", "🙂"]
    part = event.parsed(projector("initiated_by", "note"))
    assert type(part) is JsonEvent
    assert part.partial
    assert part.raw == {
        k: NESTED[k] for k in ("id", "timestamp", "event_type", "initiated_by", "note")
    }
    assert (part.time_ns, part.id) == (whole.time_ns, whole.id)
    assert part.complete().raw == NESTED


def test_a_partial_event_completes_from_its_line_not_from_a_mutated_raw(tmp_path):
    part = lazy_event(NESTED, tmp_path).parsed(projector("initiated_by"))
    assert part is not None
    part.raw["initiated_by"]["username"] = "mallory"
    part.raw["success"] = True
    assert part.complete().raw == NESTED


def test_an_event_without_id_gets_the_same_content_id_either_way():
    raw = {k: v for k, v in NESTED.items() if k != "id"}
    event = json_event(raw)
    assert event.id == Event.from_raw(raw).id
    assert event.id.startswith("sha1:")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ({"id": "x"}, "no 'timestamp'"),
        ({"id": "x", "timestamp": "yesterday"}, "invalid timestamp"),
    ],
)
def test_from_json_rejects_what_from_raw_rejects(raw, reason):
    with pytest.raises(EventError, match=reason):
        json_event(raw)  # type: ignore[arg-type]
    with pytest.raises(EventError, match=reason):
        Event.from_raw(raw)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(_TEXT, _JSON, max_size=6), seconds=st.integers(0, 10**6))
def test_any_json_object_survives_projection_and_completion(fields, seconds):
    raw = {**fields, "id": "e1", "timestamp": format_timestamp(T0 + seconds * S)}
    blob = blob_of(raw)
    some = sorted(k for k in fields if k.isascii())[:2]  # others: see the next test
    part = JsonEvent(projector(*some)(blob), T0 + seconds * S, "e1", blob, partial=True)
    assert part.raw == {k: v for k, v in raw.items() if k in {"id", "timestamp", *some}}
    assert part.complete().raw == raw


def test_a_field_name_beyond_ascii_is_decoded_whole():
    """msgspec never matches a non-ASCII key of a projection: no projection then, rather
    than an event that silently lacks the field."""
    assert jsonutil.projection_decoder(frozenset({"id", "prénom"})) is None
    assert jsonutil.projection_decoder(frozenset({"id", "prenom"})) is not None


# ----------------------------------------------------------------- 2. specialisation

RULE_DETECTIONS = {
    "one-type": "sel: {event_type: user_login_attempt, success: false}",
    "type-list": "sel: {event_type: [user_login_attempt, admin_login_attempt]}",
    "type-contains": "sel: {event_type|contains: login, mfa: false}",
    "type-wildcard": "sel: {event_type: '*_LOGIN_*'}",
    "type-regex": "sel: {event_type|re: '^(sso|ldap)_'}",
    "type-cased": "sel: {event_type|cased: User_Login_Attempt}",
    "and-not": """\
      sel: {event_type: user_login_attempt}
      filter: {success: true}
      condition: sel and not filter""",
    "one-of": """\
      sel_create: {event_type: user_create}
      sel_admin: {event_type: admin_login_attempt, mfa: false}
      condition: 1 of sel_*""",
    "all-of": """\
      sel_a: {event_type: [user_create, admin_login_attempt]}
      sel_b: {event_type: admin_login_attempt, success: true}
      condition: all of sel_*""",
    "no-type": "sel: {success: false, client_ip|cidr: 10.0.0.0/8}",
    "not-typed": """\
      sel: {event_type: user_login_attempt}
      condition: not sel""",
    "not-either": """\
      sel: {event_type: user_login_attempt}
      other: {event_type: admin_login_attempt, mfa: true}
      condition: not (sel or other)""",
    "contradiction": """\
      sel: {event_type: user_login_attempt}
      other: {event_type: admin_login_attempt}
      condition: sel and other""",
    "list-selection": "sel: [{event_type: user_create}, {client_ip|cidr: 10.0.0.0/8}]",
    "null-type": """\
      sel: {event_type: null}
      other: {event_type|exists: false}
      net: {client_ip: 10.1.1.1}
      condition: (sel or other) and not net""",
    "type-or-ip": """\
      sel: {event_type: sso_auth, success: false}
      net: {client_ip|startswith: '203.'}
      condition: sel or net""",
}

EVENT_TYPES: list[Any] = [
    "user_login_attempt",
    "USER_LOGIN_ATTEMPT",
    "User_Login_Attempt",
    "admin_login_attempt",
    "Admin_Login_Attempt",
    "user_create",
    "sso_auth",
    "ldap_bind",
    "",
    None,
    5,
    ["user_login_attempt"],
    "<missing>",
]


def rule_text(rule_id: str, detection: str) -> str:
    body = textwrap.indent(textwrap.dedent(detection), "  ")
    return f"id: {rule_id}\ntitle: {rule_id}\nseverity: low\ndetection:\n{body}\n"


@pytest.fixture(scope="module")
def table_rules(tmp_path_factory):
    d = tmp_path_factory.mktemp("rules")
    for rule_id, detection in RULE_DETECTIONS.items():
        (d / f"{rule_id}.yml").write_text(rule_text(rule_id, detection), encoding="utf-8")
    rules = load_rules([d])
    assert {r.id for r in rules} == set(RULE_DETECTIONS)
    return rules


def table_events(n: int = 600, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        raw = raw_at(
            i,
            f"t{i:04d}",
            success=rng.choice([True, False, "false", None]),
            mfa=rng.choice([True, False]),
            client_ip=rng.choice(["10.1.1.1", "10.9.0.3", "198.51.100.7", "203.0.113.9"]),
            initiated_by={"username": rng.choice("abc")},
        )
        et = rng.choice(EVENT_TYPES)
        if et != "<missing>":
            raw["event_type"] = et
        events.append(raw)
    return events


def specialised_verdict(residual: Any, raw: dict[str, Any]) -> bool:
    return residual if isinstance(residual, bool) else bool(residual(raw))


def known_values(raw: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {f: raw.get(f, MISSING) for f in ("event_type", *fields)}


def test_every_rule_specialised_per_known_fields_gives_the_plain_verdict(table_rules):
    events = table_events()
    matched = dict.fromkeys(RULE_DETECTIONS, 0)
    for rule in table_rules:
        assert rule.specialize is not None
        for raw in events:
            plain = rule.condition(raw)
            matched[rule.id] += plain
            if type(raw.get("event_type")) is not str:
                continue  # the engine folds only for a text event_type
            for fields in ((), ("success",), ("success", "mfa", "client_ip")):
                got = specialised_verdict(rule.specialize(known_values(raw, *fields)), raw)
                assert got == plain, (rule.id, fields, raw)
    # each rule matches some events and rejects some: the comparison is not vacuous
    assert matched.pop("contradiction") == 0  # `sel and other` on two types: never
    assert all(0 < count < len(events) for count in matched.values()), matched


def test_the_index_never_hides_a_rule_that_matches(table_rules):
    """A text event_type meets only the rules indexed under it (plus catch-alls)."""
    for rule in table_rules:
        for raw in table_events(200, seed=9):
            et = raw.get("event_type")
            if rule.condition(raw):
                if type(et) is str:
                    assert rule.event_types is None or et.lower() in rule.event_types, rule.id
                elif not isinstance(et, list):  # a list meets every rule (test below)
                    assert rule.event_types is None, (rule.id, raw)


def test_indexed_engine_gives_the_same_alerts_as_brute_force(table_rules):
    events = [
        Event.from_raw(raw)
        for raw in table_events(800, seed=2)
        if not isinstance(raw.get("event_type"), list)
    ]
    indexed = [a.to_dict() for a in Engine(table_rules).process_many(events)]
    brute = [a.to_dict() for a in Engine(table_rules, use_index=False).process_many(events)]
    assert indexed == brute
    assert {a["rule"] for a in indexed} == set(RULE_DETECTIONS) - {"contradiction"}


def test_plans_per_flag_values_give_the_alerts_of_full_conditions(table_rules):
    """``success`` and ``mfa`` are tested only against plain booleans here, so the engine
    keys its plans on their values too (null and absent alike); texts like "false" and
    lists in a flag must still give the verdicts of the full conditions."""
    assert flag_fields(table_rules) == ("mfa", "success")
    raws = table_events(800, seed=4)
    raws[7]["success"] = ["false"]  # unhashable: the plan per event type only
    raws[9]["success"] = "FALSE"
    events = [Event.from_raw(r) for r in raws if not isinstance(r.get("event_type"), list)]
    indexed = Engine(table_rules)
    plain = Engine(table_rules, use_index=False)
    assert [a.to_dict() for a in indexed.process_many(events)] == [
        a.to_dict() for a in plain.process_many(events)
    ]
    for event in events:
        assert indexed.can_match(event) == plain.can_match(event), event.raw


@given(
    keys=st.lists(st.text(max_size=12), max_size=6, unique=True),
    present=st.dictionaries(st.text(max_size=12), st.integers() | st.none(), max_size=6),
)
def test_the_plan_key_reads_each_flag_as_dict_get_does(keys, present):
    """The generated key function: any field names (rule text: quotes, newlines) are
    constants, never code."""
    raw = {**present, **{k: i for i, k in enumerate(keys[::2])}}
    assert compile_values(tuple(keys))(raw) == tuple(map(raw.get, keys))


def test_a_list_valued_event_type_meets_the_same_rules_indexed_or_not(table_rules):
    event = Event.from_raw(raw_at(0, "l1", event_type=["user_login_attempt"], success=False))
    indexed = {a.rule for a in Engine(table_rules).process(event)}
    brute = {a.rule for a in Engine(table_rules, use_index=False).process(event)}
    assert indexed == brute


SELECTIONS = [
    {"event_type": "user_login_attempt"},
    {"event_type": "User_Login_Attempt", "success": False},
    {"event_type": ["user_login_attempt", "sso_auth"], "mfa": False},
    {"event_type": "*login*"},
    {"event_type": "user_?ogin_attempt"},
    {"event_type|endswith": "_ATTEMPT"},
    {"event_type|cased": "user_login_attempt"},
    {"event_type|exists": True, "success": True},
    {"event_type": None},
    {"event_type": ""},
    {"success": False},
    {"client_ip|cidr": "10.0.0.0/8"},
    [{"event_type": "user_create"}, {"success": True}],
    [{"event_type": "user_create"}, {"event_type": "sso_auth", "mfa": True}],
]


@pytest.mark.parametrize("body", SELECTIONS, ids=[json.dumps(b) for b in SELECTIONS])
def test_a_selection_specialised_per_event_type_gives_the_plain_verdict(body):
    selection = compile_selection("sel", body)
    assert selection.specialize is not None
    outcomes = set()
    for raw in table_events(300, seed=3):
        et = raw.get("event_type")
        plain = selection.predicate(raw)
        outcomes.add(plain)
        if type(et) is str:
            for fields in ((), ("success",), ("success", "mfa")):
                residual = selection.specialize(known_values(raw, *fields))
                assert specialised_verdict(residual, raw) == plain, (fields, raw)
        if plain and selection.event_types is not None and not isinstance(et, list):
            assert type(et) is str  # a list meets every rule in full, not through the index
            assert et.lower() in selection.event_types
    assert outcomes == {True, False}  # the events both match and miss it


NAMES = ("a", "b", "c", "d")
_TREES: st.SearchStrategy[Node] = st.recursive(
    st.sampled_from([Ref(n) for n in NAMES]),
    lambda inner: (
        inner.map(Not)
        | st.lists(inner, min_size=2, max_size=3).map(lambda c: And(tuple(c)))
        | st.lists(inner, min_size=2, max_size=3).map(lambda c: Or(tuple(c)))
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    tree=_TREES,
    decided=st.dictionaries(st.sampled_from(NAMES), st.booleans()),
    values=st.fixed_dictionaries({n: st.booleans() for n in NAMES}),
)
def test_specialize_tree_folds_constants_without_changing_the_truth_table(tree, decided, values):
    """Names in ``decided`` are known constants; the others are read from the event."""

    def residual(name: str) -> Any:
        if name in decided:
            return decided[name]
        return lambda raw: raw[name]

    folded = specialize_tree(tree, residual)
    truth = {n: decided.get(n, values[n]) for n in NAMES}
    assert specialised_verdict(folded, dict(values)) == evaluate(tree, truth)
    if all(n in decided for n in NAMES):
        assert isinstance(folded, bool)  # fully decided: no per-event work left


# ----------------------------------------------------------------- 3. reorder buffer


def jittered(n: int, lateness_ns: int, seed: int) -> list[JsonEvent]:
    """Events in an arrival order where none is ``lateness`` behind one seen before it."""
    rng = random.Random(seed)
    raws = [raw_at(i // 3, f"id-{rng.randrange(10**6):06d}-{i}", n=i) for i in range(n)]
    keyed = [
        (T0 + (i // 3) * S + rng.randrange(int(lateness_ns * 0.9)), r) for i, r in enumerate(raws)
    ]
    keyed.sort(key=lambda kr: kr[0])
    return [json_event(r) for _, r in keyed]


def through(buffer: ReorderBuffer, events: list[Event]) -> list[tuple[str, str]]:
    """Feed ``events`` one at a time; each step: ("in", id) on arrival, ("out", id) on
    release, so the log shows when the buffer lets each event go."""
    log: list[tuple[str, str]] = []

    def arrivals() -> Any:
        for event in events:
            log.append(("in", event.id))
            yield event

    log.extend(("out", e.id) for e in buffer.ordered(arrivals()))
    return log


def released(log: list[tuple[str, str]]) -> list[str]:
    return [event_id for kind, event_id in log if kind == "out"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_events_shuffled_within_the_lateness_come_out_in_time_then_id_order(seed):
    lateness = 20 * S
    events = jittered(400, lateness, seed)
    assert [e.id for e in events] != [e.id for e in sorted(events, key=lambda e: (e.time_ns, e.id))]
    buffer = ReorderBuffer(lateness, 10_000)
    out = list(buffer.ordered(events))
    assert [(e.time_ns, e.id) for e in out] == sorted((e.time_ns, e.id) for e in events)
    assert buffer.late == 0
    assert len(buffer) == 0
    expected = sorted(events, key=lambda e: (e.time_ns, e.id))
    assert all(a is b for a, b in zip(out, expected, strict=True))  # the same objects


def test_an_event_later_than_the_lateness_is_emitted_at_once_and_counted():
    buffer = ReorderBuffer(60 * S, 1000)
    events = [
        json_event(raw_at(0, "a")),
        json_event(raw_at(600, "b")),  # 10 min on: "a" is released
        json_event(raw_at(-5, "old", note="late")),
    ]
    log = through(buffer, events)
    assert log == [
        ("in", "a"),
        ("in", "b"),
        ("out", "a"),
        ("in", "old"),
        ("out", "old"),  # at once, not held
        ("out", "b"),  # at the end of the input
    ]
    assert buffer.late == 1


def test_an_event_that_sorts_before_the_last_released_one_is_counted_late():
    buffer = ReorderBuffer(60 * S, 1000)
    events = [
        json_event(raw_at(0, "b")),
        json_event(raw_at(60, "z")),  # exactly 60 s on: "b" goes
        json_event(raw_at(0, "a")),  # same time as "b", but sorts before it
    ]
    assert released(through(buffer, events)) == ["b", "a", "z"]
    assert buffer.late == 1


@pytest.mark.parametrize("order", ["sorted", "reversed", "shuffled"])
def test_the_buffer_never_holds_more_than_max_items(order):
    events = [json_event(raw_at(i, f"e{i:03d}")) for i in range(200)]
    if order == "reversed":
        events.reverse()
    elif order == "shuffled":
        random.Random(11).shuffle(events)
    buffer = ReorderBuffer(10**6 * S, 7)  # the lateness alone would hold everything
    out: list[Event] = []
    for event in buffer.ordered(events):
        out.append(event)
        assert len(buffer) <= 7
    assert sorted(e.id for e in out) == sorted(e.id for e in events)  # each exactly once
    if order == "sorted":
        assert [e.id for e in out] == [e.id for e in events]
        assert buffer.late == 0
    else:
        assert buffer.late > 0  # released early by the cap: older arrivals are late


IRRELEVANT_RULE = """\
id: only-deletes
title: Only deletes
severity: low
detection:
  sel: {event_type: user_delete}
"""


def test_replay_never_parses_events_no_rule_can_match(tmp_path, monkeypatch):
    (tmp_path / "r.yml").write_text(IRRELEVANT_RULE, encoding="utf-8")
    rules = load_rules([tmp_path])
    rng = random.Random(3)
    raws = [
        raw_at(i + rng.random() * 30, f"e{i:04d}", event_type=rng.choice(["user_delete", "x"]))
        for i in range(500)
    ]
    engine = Engine(rules)
    seen: list[Event] = []
    process = engine.process

    def recording(event: Event, route: Any = None) -> Any:
        seen.append(event)
        return process(event, route)

    engine.process = recording  # type: ignore[method-assign]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(blob_of(r) for r in raws))
    assert all(  # the fields conditions read only
        type(e) is LazyEvent for e in read_for_replay(path, engine, on_skip=pytest.fail)
    )
    lazy = read_for_replay(path, engine, on_skip=pytest.fail)
    parsed: list[str] = []
    real_parsed = LazyEvent.parsed

    def counting(self: LazyEvent, project: Any = None) -> Event | None:
        parsed.append(self.id)
        return real_parsed(self, project)

    monkeypatch.setattr(LazyEvent, "parsed", counting)
    got: list[Any] = []
    result = replay(lazy, engine, on_alert=got.append)
    assert result.events == 500
    assert sorted(parsed) == sorted(e.id for e in seen)  # the others were never parsed
    assert seen
    assert all(e.raw["event_type"] == "user_delete" for e in seen)
    assert len(seen) == sum(r["event_type"] == "user_delete" for r in raws)
    ordered = sorted((Event.from_raw(r) for r in raws), key=lambda e: (e.time_ns, e.id))
    expected = Engine(rules).process_many(ordered)
    assert [a.to_dict() for a in got] == [a.to_dict() for a in expected]


# ----------------------------------------------------------------- 4. JSONL reader

GOOD_1 = {"id": "g1", "timestamp": "2026-03-02T00:00:01Z", "event_type": "user_create"}
GOOD_2 = {"id": "g2", "timestamp": "2026-03-02T00:00:02.5Z", "who": {"name": "Zoë 🙂 日本"}}
GOOD_3 = {"id": "g3", "timestamp": "2026-03-02T00:00:03.123456789Z", "n": [1, {"x": None}]}
GOOD_4 = {"id": "g4", "timestamp": "2026-03-02T01:00:03+01:00"}

MIXED_LINES = [
    b"\xef\xbb\xbf" + blob_of(GOOD_1),  # 1: after a BOM
    b'{"id": "broken", "timestamp": ',  # 2: invalid JSON
    blob_of(GOOD_2),  # 3
    b'{"id": "u", "timestamp": "2026-03-02T00:00:00Z", "name": "\xff\xfeab"}',  # 4: bad UTF-8
    b"[1, 2, 3]",  # 5: not an object
    b'{"id": "t", "timestamp": "2026-13-45T99:00:00Z"}',  # 6: bad timestamp
    b"   ",  # 7: blank: not a record, not reported
    b'"just text"',  # 8: not an object
    b"  " + blob_of(GOOD_3) + b"\r",  # 9: spaces and a CRLF ending
    b'{"id": "nots", "event_type": "x"}',  # 10: no timestamp
    blob_of(GOOD_4),  # 11: no newline at the end
]
EXPECTED_SKIPS = {
    2: "invalid JSON",
    4: "invalid UTF-8 at byte",
    5: "not a JSON object but list",
    6: "invalid timestamp",
    8: "not a JSON object but str",
    10: "no 'timestamp' field",
}


@pytest.fixture
def mixed_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(MIXED_LINES))
    return path


def read_all(path) -> tuple[list[Event], list[str]]:
    skipped: list[str] = []
    events = list(read_events(path, on_skip=skipped.append))
    return events, skipped


def check_mixed(path, events: list[Event], skipped: list[str]) -> None:
    goods = [GOOD_1, GOOD_2, GOOD_3, GOOD_4]
    assert [e.raw for e in events] == goods
    assert [e.id for e in events] == ["g1", "g2", "g3", "g4"]
    assert [e.time_ns for e in events] == [parse_timestamp(g["timestamp"]) for g in goods]
    assert events[3].time_ns == parse_timestamp("2026-03-02T00:00:03Z")
    assert len(skipped) == len(EXPECTED_SKIPS), skipped
    for message, (line, reason) in zip(skipped, sorted(EXPECTED_SKIPS.items()), strict=True):
        assert message.startswith(f"{path}:{line}: "), message
        assert reason in message, message


def test_fast_path_yields_the_valid_events_and_reports_each_bad_line(mixed_file):
    assert files._BYTES_JSON  # orjson installed: the bytes fast path is the one taken
    events, skipped = read_all(mixed_file)
    check_mixed(mixed_file, events, skipped)
    assert all(type(e) is JsonEvent for e in events)  # parsed once, from the bytes


def test_careful_path_gives_the_same_events_and_reports(mixed_file, monkeypatch):
    fast_events, fast_skipped = read_all(mixed_file)
    monkeypatch.setattr(files, "_BYTES_JSON", False)
    events, skipped = read_all(mixed_file)
    check_mixed(mixed_file, events, skipped)
    assert skipped == fast_skipped
    assert [(e.raw, e.id, e.time_ns) for e in events] == [
        (e.raw, e.id, e.time_ns) for e in fast_events
    ]


def test_lazy_reading_gives_the_same_events_and_reports_once_parsed(mixed_file):
    eager_events, eager_skipped = read_all(mixed_file)
    skipped: list[str] = []
    lazy = list(read_events(mixed_file, on_skip=skipped.append, head=frozenset()))
    # Line 4's bad UTF-8 sits in a field the head decoder skips: the reader still checks
    # the line's UTF-8, so it is refused at once, in line order.
    assert sum(type(e) is LazyEvent for e in lazy) == 4
    events = [p for p in (e.parsed() if type(e) is LazyEvent else e for e in lazy) if p]
    check_mixed(mixed_file, events, skipped)
    assert skipped == eager_skipped
    assert [(e.raw, e.id, e.time_ns) for e in events] == [
        (e.raw, e.id, e.time_ns) for e in eager_events
    ]


def test_lazy_events_decode_only_the_fields_asked_for(mixed_file):
    eager_events, eager_skipped = read_all(mixed_file)
    skipped: list[str] = []
    lazy = list(read_events(mixed_file, on_skip=skipped.append, head=frozenset()))
    project = projector("who")
    events = [p for p in (e.parsed(project) if type(e) is LazyEvent else e for e in lazy) if p]
    assert skipped == eager_skipped  # line 4 (bad UTF-8) refused all the same
    assert [e.id for e in events] == [e.id for e in eager_events]
    projected = [e for e in events if type(e) is JsonEvent and e.partial]
    assert [e.id for e in projected] == ["g1", "g2", "g3", "g4"]
    # Only the fields asked for, plus identity; absent ones stay absent (not null).
    assert [sorted(e.raw) for e in projected] == [
        sorted(k for k in g if k in {"who", "id", "timestamp", "event_type"})
        for g in (GOOD_1, GOOD_2, GOOD_3, GOOD_4)
    ]
    assert [e.complete().raw for e in events] == [e.raw for e in eager_events]
    assert [e.time_ns for e in events] == [e.time_ns for e in eager_events]


def test_valid_utf8_beyond_ascii_is_projected_too(tmp_path):
    path = tmp_path / "utf8.jsonl"
    path.write_bytes(blob_of(GOOD_2))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    parsed = event.parsed(projector("who"))  # type: ignore[attr-defined]
    assert type(parsed) is JsonEvent
    assert parsed.partial
    assert parsed.raw == {k: GOOD_2[k] for k in ("id", "timestamp", "who")}


def test_an_event_without_id_is_read_whole(tmp_path):
    path = tmp_path / "noid.jsonl"
    raw = {"timestamp": "2026-03-02T00:00:01Z", "event_type": "x", "big": "y" * 50}
    path.write_bytes(blob_of(raw))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    assert type(event) is JsonEvent  # the id is a hash of all of it: nothing to defer
    assert event.id == Event.from_raw(raw).id
    assert event.raw == raw


def test_a_number_only_the_standard_library_reads_in_an_unread_field(tmp_path):
    """orjson refuses 1e999; the projection skips the field unbuilt, so the event is
    evaluated, and its alert shows it as the standard library reads it (infinity)."""
    path = tmp_path / "inf.jsonl"
    path.write_bytes(
        b'{"id": "i", "timestamp": "2026-03-02T00:00:01Z", "x": 1e999}\n' + blob_of(GOOD_1)
    )
    lazy = list(read_events(path, on_skip=pytest.fail, head=frozenset()))
    events = [e.parsed(projector()) for e in lazy]  # type: ignore[attr-defined]
    assert [e.id for e in events if e] == ["i", "g1"]
    assert events[0].complete().raw["x"] == float("inf")  # type: ignore[union-attr]
    # Read whole (the service's files, `alerting test`), the line is refused and said so.
    skipped: list[str] = []
    assert [e.id for e in read_events(path, on_skip=skipped.append)] == ["g1"]
    assert skipped == [f"{path}:1: invalid JSON (number is infinity when parsed as double)"]


# ----------------------------------------------------------------- 5. end to end


def test_replay_of_a_shuffled_simulator_export_gives_the_sorted_alerts(tmp_path, capsys):
    from pathlib import Path

    rules = Path(__file__).resolve().parents[2] / "rules"
    export = tmp_path / "sim.jsonl"
    assert cli_main(["simulate", "--export", str(export), "--hours", "2", "--seed", "5"]) == 0
    lines = export.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    rng = random.Random(8)
    # shuffle within 5 minutes of event time: inside the default 10 minute lateness
    keyed = sorted(
        zip(lines, records, strict=True),
        key=lambda lr: parse_timestamp(lr[1]["timestamp"]) + rng.randrange(300 * S),
    )
    shuffled = tmp_path / "shuffled.jsonl"
    shuffled.write_bytes(b"\n".join(line for line, _ in keyed) + b"\n")
    assert shuffled.read_bytes() != export.read_bytes()
    outputs = []
    for name, source in (("sorted", export), ("shuffled", shuffled)):
        out = tmp_path / f"{name}.alerts.jsonl"
        code = cli_main(
            ["replay", "--events", str(source), "--rules", str(rules), "--output", str(out)]
        )
        summary = capsys.readouterr().out
        assert code == 0
        assert summary.splitlines()[-1] == (
            f"{len(records):,} events read, 0 skipped (malformed), 0 duplicate events dropped"
        )
        assert "sorted" not in summary  # inside the lateness: the in-order path
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    alerts = [json.loads(line) for line in outputs[0].splitlines()]
    assert len({a["rule"] for a in alerts}) >= 3  # several rules fire: the check has teeth


def test_a_body_malformed_where_the_head_did_not_look_is_reported_on_release(tmp_path):
    """The head holds the condition fields only; a group field beyond float range is
    found when the event is decoded for the engine, reported with its line, not counted."""
    (tmp_path / "r.yml").write_text(
        textwrap.dedent(
            """\
            id: by-x
            title: By x
            severity: low
            detection:
              sel: {event_type: thing}
            threshold: {count: 2, within: 5m, by: x}
            """
        ),
        encoding="utf-8",
    )
    engine = Engine(load_rules([tmp_path]))
    path = tmp_path / "events.jsonl"
    lines = [blob_of(raw_at(i, f"e{i}", event_type="thing", x="a")) for i in range(3)]
    lines[1] = (
        b'{"id": "bad", "timestamp": "2026-03-02T00:00:01Z", "event_type": "thing", "x": 1e999}'
    )
    path.write_bytes(b"\n".join(lines))
    skipped: list[str] = []
    got: list[Any] = []
    result = replay(
        read_for_replay(path, engine, on_skip=skipped.append), engine, on_alert=got.append
    )
    assert skipped == [f"{path}:2: invalid JSON (number is infinity when parsed as double)"]
    assert result.events == 2
    assert [a.event_ids for a in got] == [["e0", "e2"]]

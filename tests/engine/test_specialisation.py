"""The per-event-type folding of conditions (the hot path) gives the verdict of the plain
condition: specialised rules, the event-type index and the per-flag plans never change
which rules match.
"""

from __future__ import annotations

import json
import random
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.engine import engine as engine_module
from alerting.engine.conditions import And, Node, Not, Or, Ref, evaluate, specialize_tree
from alerting.engine.engine import Engine
from alerting.engine.fields import MISSING, compile_getters, compile_path, compile_values
from alerting.engine.loader import load_rules
from alerting.engine.matchers import compile_selection
from alerting.engine.reads import flag_fields
from alerting.events import (
    Event,
)
from tests.support.events import raw_at

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


def test_kept_plans_give_the_alerts_and_counts_of_the_generic_loop(table_rules, monkeypatch):
    """Kept plans run as one generated function each; past the cache limits (attacker
    -chosen event types) the generic loop runs instead: the same alerts and counts."""
    events = [Event.from_raw(raw) for raw in table_events(800, seed=6)]
    kept = Engine(table_rules)
    kept_alerts = [a.to_dict() for a in kept.process_many(events)]
    monkeypatch.setattr(engine_module, "_TYPE_CACHE_LIMIT", 0)
    generic = Engine(table_rules)
    assert [a.to_dict() for a in generic.process_many(events)] == kept_alerts
    assert kept_alerts
    assert kept.stats == generic.stats
    assert not generic._plans  # it did run the generic loop
    assert not generic._type_cache


KEY_TEXTS = ["a", "b", "c", "'", 'x"\ny', "x y", "a$"]
ANY_A = compile_path("$..a")  # JSONPath: called, not inlined (compiled once: slow to parse)


@given(
    paths=st.lists(
        st.lists(st.sampled_from(KEY_TEXTS), min_size=1, max_size=3),
        max_size=6,
    ),
    raw=st.recursive(
        st.none() | st.integers() | st.text(max_size=3),
        lambda inner: st.dictionaries(st.sampled_from(KEY_TEXTS), inner),
        max_leaves=12,
    ),
)
@settings(deadline=None)
def test_a_group_reads_each_field_as_its_getter_does(paths, raw):
    """The generated values function of a multi-field group, with shared parents and any
    key text, reads what the getters read (JSONPath too, by calling it)."""
    getters = (*(compile_path(".".join(parts)) for parts in paths), ANY_A)
    event = raw if isinstance(raw, dict) else {"a": raw}
    assert compile_getters(getters)(event) == tuple(g(event) for g in getters)

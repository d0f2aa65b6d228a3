"""What the engine says its rules read, so a replay decodes only that (engine/reads.py).

The property that matters: events decoded only in the fields ``Engine.fields_read()``
names give the same alerts as whole events, rule by rule and for the shipped pack.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from alerting.cli import main as cli_main
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.reads import first_field
from alerting.replay import read_for_replay, replay
from alerting.source.files import read_events

PACK = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize(
    ("path", "first"),
    [
        ("client_ip", "client_ip"),
        ("initiated_by.username", "initiated_by"),
        ("$.changes..field", "changes"),
        ("$.changes[*].to", "changes"),
        ("$['@version']", "@version"),
        ('$["odd key"].x', "odd key"),
        ("$..field", None),  # recursive descent from the root: any field
        ("$[*].x", None),
        ("$[?(@.x == 1)]", None),
    ],
)
def test_the_first_field_of_a_path(path, first):
    assert first_field(path) == first


def write_rule(tmp_path: Path, text: str) -> list:
    (tmp_path / "rule.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([tmp_path])


def test_fields_cover_detection_grouping_aggregation_and_summary(tmp_path):
    rules = write_rule(
        tmp_path,
        """\
        id: spray
        title: Spray
        severity: high
        detection:
          failed: {event_type: sso_auth, sso_token_success: false}
          not_vpn: {client_ip|cidr: [10.0.0.0/8]}
          condition: failed and not not_vpn
        distinct: {field: initiated_by.username, count: 3, within: 10m, by: geoip.country_code}
        summary: "{{ values('useragent.name') | join(', ') }} from {{ last.resource.name }}"
        """,
    )
    engine = Engine(rules)
    assert engine.condition_fields() == {
        "timestamp",
        "id",
        "event_type",
        "sso_token_success",
        "client_ip",
    }
    fields = engine.fields_read()
    assert fields == {
        "timestamp",
        "id",
        "event_type",
        "sso_token_success",
        "client_ip",
        "initiated_by",
        "geoip",
        "useragent",
        "resource",
    }


def test_a_path_that_may_start_anywhere_means_every_field(tmp_path):
    rules = write_rule(
        tmp_path,
        """\
        id: anywhere
        title: Anywhere
        severity: low
        detection:
          sel: {"$..field": mfa}
        """,
    )
    assert Engine(rules).fields_read() is None
    assert Engine(rules).condition_fields() is None


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "sim.jsonl"
    assert cli_main(["simulate", "--export", str(path), "--hours", "30", "--seed", "12"]) == 0
    return path


def alerts_of(events, rules) -> list[dict]:
    got: list = []
    replay(events, Engine(rules), on_alert=got.append)
    return [a.to_dict() for a in got]


def replayed(path: Path, rules) -> list[dict]:
    """The alerts of ``alerting replay``'s path: read for the engine that replays."""
    engine = Engine(rules)
    got: list = []
    replay(read_for_replay(path, engine, on_skip=pytest.fail), engine, on_alert=got.append)
    return [a.to_dict() for a in got]


def test_projected_events_raise_the_same_alerts_as_whole_ones(export, pack_rules):
    rules = pack_rules
    engine = Engine(rules)
    fields = engine.fields_read()
    assert fields is not None  # the shipped pack can be projected
    assert len(fields) < 24  # and it is a small part of a DI event's fields,
    assert not fields & {"useragent", "auth_context", "application", "outer", "auth_meta"}
    # ... leaving out the big nested objects
    whole = alerts_of(read_events(export, on_skip=pytest.fail), rules)  # parsed whole
    projected = replayed(export, rules)
    assert whole  # the simulator injects attacks: there is something to compare
    assert projected == whole
    # Alerts show whole events, not the projection the rules were evaluated on.
    by_id = {e["id"]: e for e in map(json.loads, export.read_text().splitlines())}
    samples = [sample for a in projected for sample in a["events"]]
    assert all(sample == by_id[sample["id"]] for sample in samples)
    assert any(set(sample) - fields for sample in samples)


def counted_routes(engine: Engine, monkeypatch) -> list[int]:
    """How many times ``engine`` looks up which rules an event goes through."""
    lookups = [0]
    find = engine._plan_for

    def counting(raw):
        lookups[0] += 1
        return find(raw)

    monkeypatch.setattr(engine, "_plan_for", counting)
    return lookups


def test_replay_routes_each_event_once_from_its_head(export, monkeypatch, pack_rules):
    rules = pack_rules
    whole = alerts_of(read_events(export, on_skip=pytest.fail), rules)
    engine = Engine(rules)
    lookups = counted_routes(engine, monkeypatch)
    got: list = []
    result = replay(
        read_for_replay(export, engine, on_skip=pytest.fail), engine, on_alert=got.append
    )
    assert [a.to_dict() for a in got] == whole
    assert lookups[0] == result.events  # at the head, never again in process()


def test_events_read_for_another_engine_are_refused(export, pack_rules):
    """Its reader left out what the other engine's rules cannot match: maybe not these."""
    rules = pack_rules
    other = read_for_replay(export, Engine(rules), on_skip=pytest.fail)
    with pytest.raises(ValueError, match="read for another engine"):
        replay(other, Engine(rules), on_alert=pytest.fail)


def test_without_msgspec_replay_reads_whole_events_with_the_same_alerts(export, monkeypatch):
    from alerting import jsonutil
    from alerting.events import JsonEvent

    rules = load_rules([PACK])
    projected = replayed(export, rules)
    monkeypatch.setattr(jsonutil, "projection_decoder", lambda _keys: None)
    events = list(read_for_replay(export, Engine(rules), on_skip=pytest.fail))
    assert all(type(e) is JsonEvent and not e.partial for e in events)
    assert alerts_of(events, rules) == projected


def test_the_head_gives_every_condition_the_verdict_of_the_whole_event(export):
    engine = Engine(load_rules([PACK]))
    read = read_for_replay(export, engine, on_skip=pytest.fail)
    heads = list(read)
    whole = {e.id: e for e in read_events(export, on_skip=pytest.fail)}
    # The events left out are exactly those no rule can match, whole...
    kept = {e.id for e in heads}
    left_out = [e for e in whole.values() if e.id not in kept]
    assert read.unmatched.dropped == len(left_out) > 0  # a third of DI traffic
    assert not any(engine.can_match(e) for e in left_out)
    assert all(engine.can_match(whole[e.id]) for e in heads)
    times = [e.time_ns for e in left_out]
    assert (read.unmatched.first_ns, read.unmatched.last_ns) == (min(times), max(times))
    # ... and the others carry the rules to go through, which replay hands back
    assert all(e.verdict == engine.route(whole[e.id].raw) for e in heads)


def test_a_rule_on_a_field_name_beyond_ascii_replays_as_on_whole_events(tmp_path):
    rules = write_rule(
        tmp_path,
        """\
        id: accents
        title: Accents
        severity: low
        detection:
          sel: {event_type: thing, "état": bloqué}
        """,
    )
    path = tmp_path / "events.jsonl"
    raws = [
        {"id": f"e{i}", "timestamp": f"2026-03-02T00:00:0{i}Z", "event_type": "thing", "état": s}
        for i, s in enumerate(["bloqué", "ouvert", "bloqué"])
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in raws), encoding="utf-8")
    lazy = replayed(path, rules)
    assert [a["event_ids"] for a in lazy] == [["e0"], ["e2"]]
    assert lazy == alerts_of(read_events(path, on_skip=pytest.fail), rules)

"""The replay hot path keeps every user-visible result: the reorder buffer orders, counts
late events and stays bounded; a replay never decodes events no rule can match; a
shuffled simulator export replays to the same alerts as the sorted one.
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest

from alerting.cli import main as cli_main
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import (
    Event,
    JsonEvent,
    LazyEvent,
    parse_timestamp,
)
from alerting.jsonutil import projection_decoder
from alerting.replay import ReorderBuffer, read_for_replay, replay
from tests.support.events import T0, S, blob_of, json_event, raw_at
from tests.support.real_events import RADIUS_FAILURE, shaped

# ----------------------------------------------------------------- reorder buffer


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
    read = list(read_for_replay(path, engine, on_skip=pytest.fail))
    # only the events some rule can match, decoded in the fields the rules read at most
    assert sorted(e.id for e in read) == sorted(
        r["id"] for r in raws if r["event_type"] == "user_delete"
    )
    assert all(type(e) is LazyEvent or (type(e) is JsonEvent and e.partial) for e in read)
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
    assert set(parsed) <= {e.id for e in seen}  # the others were never parsed
    assert seen
    assert all(e.raw["event_type"] == "user_delete" for e in seen)
    assert len(seen) == sum(r["event_type"] == "user_delete" for r in raws)
    ordered = sorted((Event.from_raw(r) for r in raws), key=lambda e: (e.time_ns, e.id))
    expected = Engine(rules).process_many(ordered)
    assert [a.to_dict() for a in got] == [a.to_dict() for a in expected]


# ----------------------------------------------------------------- end to end


def test_replay_of_a_shuffled_simulator_export_gives_the_sorted_alerts(tmp_path, capsys):
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "rules"
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


def _deletes_among(tmp_path: Any, every: int, n: int) -> tuple[Engine, Any, list[dict[str, Any]]]:
    """An engine for deletes only, and a file of ``n`` events, one in ``every`` a delete."""
    (tmp_path / "r.yml").write_text(IRRELEVANT_RULE, encoding="utf-8")
    engine = Engine(load_rules([tmp_path]))
    raws = [
        raw_at(i, f"e{i:05d}", event_type="user_delete" if i % every == 0 else "x")
        for i in range(n)
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(blob_of(r) for r in raws))
    return engine, path, raws


@pytest.mark.parametrize(("every", "decoded_once"), [(2, True), (10, False)])
def test_the_reader_decodes_once_where_most_events_are_read(tmp_path, every, decoded_once):
    """Half the events for the rules: each is decoded once, at read time; one in ten: the
    head first, the body only for those let through. The alerts are the same either way."""
    engine, path, raws = _deletes_among(tmp_path, every, 3000)
    read = list(read_for_replay(path, engine, on_skip=pytest.fail))[-100:]  # after a choice
    assert all((type(e) is JsonEvent) is decoded_once for e in read)
    got: list[Any] = []
    replay(read_for_replay(path, engine, on_skip=pytest.fail), engine, on_alert=got.append)
    expected = Engine(load_rules([tmp_path])).process_many(Event.from_raw(r) for r in raws)
    assert [a.to_dict() for a in got] == [a.to_dict() for a in expected]
    assert len(got) == len(raws) // every


def test_a_bad_body_in_an_event_no_rule_reads_is_not_reported(tmp_path):
    """Decoding once must not find more to skip than the head alone: a value beyond float
    range in a field no condition reads, in an event no rule can match, goes unreported."""
    engine, path, _raws = _deletes_among(tmp_path, 2, 10)
    lines = path.read_bytes().split(b"\n")
    lines[3] = b'{"id": "e3", "timestamp": "2026-03-02T00:00:03Z", "event_type": "x", "x": 1e999}'
    path.write_bytes(b"\n".join(lines))
    (tmp_path / "r.yml").write_text(
        IRRELEVANT_RULE.replace(
            "user_delete}", "user_delete}\nthreshold: {count: 1, within: 5m, by: x}"
        ),
        encoding="utf-8",
    )
    engine = Engine(load_rules([tmp_path]))
    assert "x" in (engine.fields_read() or ())
    result = replay(read_for_replay(path, engine, on_skip=pytest.fail), engine, on_alert=[].append)
    assert result.events == 10


# ------------------------------------------------ a number orjson refuses, in an unread field

PACK = Path(__file__).resolve().parents[1] / "rules"
MIN = 60 * S


def _pack_rule(rule_id: str) -> Engine:
    return Engine([r for r in load_rules([PACK]) if r.id == rule_id])


def _with_huge_number(raw: dict[str, Any]) -> bytes:
    """The event's line with a field no rule reads holding 1e999: JSON allows it, orjson
    refuses it (beyond float range), the reader's projection skips it unread."""
    return blob_of(raw)[:-1] + b', "vendor_score": 1e999}'


def _radius(minutes: float, event_id: str, **fields: Any) -> dict[str, Any]:
    """The real RADIUS failure (Sekoia's sample), for john.doe."""
    return shaped(RADIUS_FAILURE, event_id, T0 + int(minutes * MIN), **fields)


def test_a_number_orjson_refuses_in_an_unread_field_does_not_cost_the_alert(tmp_path):
    """Ten RADIUS failures in a minute are a burst, also when one of them carries such a
    number: its alert goes out, the event shown whole with the number as null."""
    lines = [blob_of(_radius(i / 10, f"f{i}")) for i in range(10)]
    lines[7] = _with_huge_number(_radius(0.7, "f7"))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    engine = _pack_rule("failed-login-burst")
    got: list[Any] = []
    replay(read_for_replay(path, engine, on_skip=pytest.fail), engine, on_alert=got.append)
    (alert,) = got
    assert alert.event_ids == [f"f{i}" for i in range(10)]
    (shown,) = [e for e in json.loads(alert.to_json())["events"] if e["id"] == "f7"]
    assert shown["vendor_score"] is None  # JSON has no infinity
    assert shown["client_ip"] == "13.14.15.16"
    assert engine.stats["failed-login-burst"].errors == 0


def test_a_held_success_with_such_a_number_is_projected_when_slimmed(tmp_path):
    """brute-force-success holds a success unprojected until newer logins slim it; then
    it is projected from its line, which must not fail on that number: the late
    failures that precede it still raise the alert, naming where it came from."""
    lines = [_with_huge_number(_radius(10, "ok", success=True, client_ip="198.51.100.7"))]
    lines += [
        blob_of(_radius(10.5 + i / 2, f"re{i}", success=True, client_ip="198.51.100.8"))
        for i in range(5)
    ]
    lines += [blob_of(_radius(8 + i / 4, f"f{i}", success=False)) for i in range(6)]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    engine = _pack_rule("brute-force-success")
    fields = engine.fields_read()
    project = projection_decoder(fields) if fields is not None else None
    alerts: list[Any] = []
    # In file order, unbuffered, as the service meets events late within its overlap.
    for event in read_for_replay(path, engine, on_skip=pytest.fail):
        parsed = event.parsed(project) if isinstance(event, LazyEvent) else event
        assert parsed is not None
        if parsed.id == "f0":
            engine.advance(T0 + int(12.5 * MIN))  # a poll between: the overlap still open
        alerts += engine.process(parsed, event.verdict)  # type: ignore[attr-defined]
    (alert,) = alerts
    assert alert.event_ids == [f"f{i}" for i in range(6)] + ["ok"]
    assert "from 198.51.100.7" in alert.summary
    assert engine.stats["brute-force-success"].errors == 0

"""``alerting replay``: JSONL alert contract, summary table, bad input, event-time order."""

from __future__ import annotations

import json
import random
import textwrap

import pytest

from alerting.alert import Alert
from alerting.cli import main
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import RuleTestCase
from alerting.engine.testing import run_case
from alerting.events import Event, format_timestamp, parse_timestamp
from alerting.replay import ReorderBuffer

T0 = parse_timestamp("2026-03-02T00:00:00Z")
S = 1_000_000_000

BURST = """\
id: failed-burst
title: Failed login burst
severity: high
tags: [attack.t1110]
detection:
  failed: {event_type: user_login_attempt, success: false}
threshold: {count: 3, within: 5m, by: initiated_by.username}
"""
NO_MFA = """\
id: admin-no-mfa
title: Admin login without MFA
severity: medium
detection:
  sel: {event_type: admin_login_attempt, mfa: false}
by: initiated_by.email
"""
NEVER = """\
id: never-fires
title: Never fires
severity: low
enabled: false
detection:
  sel: {event_type: organization_delete}
"""

CONTRACT = {
    "rule",
    "title",
    "severity",
    "group",
    "count",
    "first_event_time",
    "last_event_time",
    "event_ids",
    "fingerprint",
    "summary",
    "events",
    "tags",
    "description",
    "suppressed",
    # additive (issue 18): where to look next, and which org
    "references",
    "runbook",
    "organization",
    "organization_name",
    "incident",
}


def raw_event(seconds, n, **fields):
    return {"id": f"ev-{n:05d}", "timestamp": format_timestamp(T0 + int(seconds * S)), **fields}


def failures(user, start, n0, count=3, step=20):
    return [
        raw_event(
            start + i * step,
            n0 + i,
            event_type="user_login_attempt",
            success=False,
            initiated_by={"username": user},
        )
        for i in range(count)
    ]


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    for name, text in (("burst.yml", BURST), ("nomfa.yml", NO_MFA), ("never.yml", NEVER)):
        (d / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return d


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def replay_cli(capsys, events, rules_dir, *extra):
    code = main(["replay", "--events", str(events), "--rules", str(rules_dir), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def table(out):
    rows = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[1].isdigit():
            rows[parts[0]] = parts[1:5]  # the per-day cells follow
    return rows


def two_days_of_events():
    records = failures("alice", 0, 1) + failures("bob", 3600, 10)
    records += failures("alice", 86_400, 20)  # a day later: a second alert for alice
    records.append(
        raw_event(
            2 * 86_400,
            30,
            event_type="admin_login_attempt",
            mfa=False,
            initiated_by={"email": "root@x"},
        )
    )
    return records


def test_alerts_are_written_as_jsonl_in_the_alert_contract(tmp_path, rules_dir, capsys):
    events = write_jsonl(tmp_path / "events.jsonl", two_days_of_events())
    output = tmp_path / "alerts.jsonl"
    code, _out, _ = replay_cli(capsys, events, rules_dir, "--output", str(output))
    assert code == 0
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(lines) == 4
    for line in lines:
        assert set(line) == CONTRACT
        assert Alert.from_dict(line).to_dict() == line
    first = lines[0]
    assert first["rule"] == "failed-burst"
    assert first["group"] == {"initiated_by.username": "alice"}
    assert first["count"] == 3
    assert first["event_ids"] == ["ev-00001", "ev-00002", "ev-00003"]
    assert first["first_event_time"] == "2026-03-02T00:00:00Z"
    assert first["last_event_time"] == "2026-03-02T00:00:40Z"
    assert first["tags"] == ["attack.t1110"]


def test_summary_table_counts_alerts_per_day_and_groups(tmp_path, rules_dir, capsys):
    events = write_jsonl(tmp_path / "events.jsonl", two_days_of_events())
    code, out, _ = replay_cli(capsys, events, rules_dir)
    assert code == 0
    rows = table(out)
    # events span exactly 2 days: 3 burst alerts (alice twice, bob once) -> 1.5 a day
    assert rows["failed-burst"] == ["3", "1.5", "2", "0"]
    assert rows["admin-no-mfa"] == ["1", "0.5", "1", "0"]
    assert "never-fires" not in rows  # disabled rules are not replayed by default
    assert "4 alerts over 2.0 days of events" in out
    assert out.splitlines()[-1] == (
        "10 events read, 0 skipped (malformed), 0 duplicate events dropped"
    )
    # alerts by the UTC day of their last event: alice and bob on day one, alice on day two
    header = out.splitlines()[0]
    assert header.endswith("PER DAY (03-02..03-04)")  # the span ends at 00:00:40 on the 4th
    assert next(x for x in out.splitlines() if x.startswith("failed-burst")).endswith(" 2 1 0")


def test_a_disabled_rule_can_be_backtested_by_name(tmp_path, rules_dir, capsys):
    records = [raw_event(0, 1, event_type="organization_delete")]
    events = write_jsonl(tmp_path / "events.jsonl", records)
    code, out, _ = replay_cli(capsys, events, rules_dir, "--rule", "never-fires")
    assert code == 0
    assert table(out) == {"never-fires": ["1", "24.0", "1", "0"]}  # span floor: one hour


def test_unknown_rule_id(tmp_path, rules_dir, capsys):
    events = write_jsonl(tmp_path / "events.jsonl", two_days_of_events())
    code, _, err = replay_cli(capsys, events, rules_dir, "--rule", "failed-brust")
    assert code == 1
    assert "unknown rule id 'failed-brust' (did you mean 'failed-burst'?)" in err


def test_malformed_lines_are_skipped_and_counted(tmp_path, rules_dir, capsys):
    good = [json.dumps(r) for r in failures("alice", 0, 1)]
    lines = [good[0], "{not json", good[1], '{"id": "x"}', good[2], "[1, 2]"]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = replay_cli(capsys, events, rules_dir)
    assert code == 0
    assert table(out)["failed-burst"][0] == "1"
    assert out.splitlines()[-1] == (
        "3 events read, 3 skipped (malformed), 0 duplicate events dropped"
    )
    assert f"{events}:2" in err
    assert f"{events}:4" in err


def test_empty_input_is_an_error_and_leaves_no_output(tmp_path, rules_dir, capsys):
    events = tmp_path / "empty.jsonl"
    events.write_text("\n\n", encoding="utf-8")
    output = tmp_path / "alerts.jsonl"
    code, _out, err = replay_cli(capsys, events, rules_dir, "--output", str(output))
    assert code == 1
    assert "no events" in err
    assert "\n" not in err.strip()
    assert not output.exists()


def test_out_of_order_input_gives_the_same_alerts_as_sorted_input(tmp_path, rules_dir, capsys):
    records = []
    for i, user in enumerate(["amy", "ben", "cat", "dan"]):
        records += failures(user, i * 50, 100 * i + 1, count=7, step=15)
    shuffled = list(records)
    random.Random(4).shuffle(shuffled)  # within a few minutes: inside the lateness window
    sorted_out, shuffled_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    replay_cli(
        capsys, write_jsonl(tmp_path / "s.jsonl", records), rules_dir, "--output", str(sorted_out)
    )
    code, out, _ = replay_cli(
        capsys,
        write_jsonl(tmp_path / "r.jsonl", shuffled),
        rules_dir,
        "--output",
        str(shuffled_out),
    )
    assert code == 0
    assert "sorted" not in out  # inside the lateness window: no sort needed
    assert shuffled_out.read_text() == sorted_out.read_text()
    assert len(sorted_out.read_text().splitlines()) == 8  # 7 failures each: 2 alerts per user


def test_an_event_later_than_the_window_sends_the_input_through_the_sort(
    tmp_path, rules_dir, capsys
):
    records = failures("alice", 0, 1, count=2)
    records += failures("bob", 3600, 50, count=1)  # pushes the watermark an hour on
    records += failures("alice", 10, 60, count=1)  # older than what was released: too late
    code, out, _ = replay_cli(capsys, write_jsonl(tmp_path / "e.jsonl", records), rules_dir)
    assert code == 0
    lines = out.splitlines()
    assert lines[-2] == "input was not in time order: sorted 4 events in 1 run"
    assert lines[-1] == "4 events read, 0 skipped (malformed), 0 duplicate events dropped"
    assert table(out)["failed-burst"][0] == "1"  # alice's three failures, in order


def test_events_no_rule_can_match_never_make_others_late(tmp_path, rules_dir, capsys):
    """Only events some rule can match are put in order: an hour-later event of a type no
    rule reads does not push the others out of the window."""
    records = failures("alice", 0, 1, count=2)
    records.append(raw_event(3600, 50, event_type="user_create"))
    records += failures("alice", 10, 60, count=1)
    code, out, _ = replay_cli(capsys, write_jsonl(tmp_path / "e.jsonl", records), rules_dir)
    assert code == 0
    assert (
        out.splitlines()[-1] == "4 events read, 0 skipped (malformed), 0 duplicate events dropped"
    )
    assert "sorted" not in out
    assert table(out)["failed-burst"][0] == "1"
    assert "1.0 hours of events" in out  # its time still counts for the span


def test_a_file_no_rule_can_match_is_read_in_full_without_alerts(tmp_path, rules_dir, capsys):
    """Events left out from their head still count: the file is not 'empty'."""
    records = [raw_event(60 * i, i, event_type="user_create") for i in range(30)]
    code, out, err = replay_cli(capsys, write_jsonl(tmp_path / "e.jsonl", records), rules_dir)
    assert code == 0, err
    assert out.splitlines()[-1] == (
        "30 events read, 0 skipped (malformed), 0 duplicate events dropped"
    )
    assert "0 alerts over 0.5 hours of events" in out


def test_replay_and_rule_tests_agree(tmp_path, rules_dir):
    """The same events give the same alerts through `alerting test` and the replay path."""
    records = []
    for i, user in enumerate(["amy", "ben"]):
        records += failures(user, i * 7, 10 * i, count=5, step=9)
    rng = random.Random(1)
    rng.shuffle(records)
    rule = next(r for r in load_rules([rules_dir]) if r.id == "failed-burst")
    case = RuleTestCase(name="x", events=records, expect={"alerts": 2})
    via_test = run_case(rule, case)
    assert via_test.passed, via_test.problems

    from alerting.replay import replay

    got = []
    replay((Event.from_raw(r) for r in records), Engine([rule]), on_alert=got.append)
    assert [a.to_dict() for a in got] == [a.to_dict() for a in via_test.alerts]


def test_reorder_buffer_memory_is_bounded_by_the_lateness_window():
    buffer = ReorderBuffer(lateness_ns=60 * S)
    peak = 0

    def arrivals():
        nonlocal peak
        for i in range(5000):
            jitter = (i * 7919) % 30  # up to 30 s out of order
            yield Event.from_raw(raw_event(i + jitter, i))
            peak = max(peak, len(buffer))

    released = list(buffer.ordered(arrivals()))
    assert peak <= 95  # about 60 s of events at one per second (+ jitter), not 5000
    assert [e.time_ns for e in released] == sorted(e.time_ns for e in released)
    assert len(released) == 5000
    assert buffer.late == 0


def test_notify_delivers_through_the_configured_routes(tmp_path, rules_dir, capsys):
    from pathlib import Path

    templates = Path(__file__).resolve().parents[1] / "templates"
    sent = tmp_path / "sent.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            source: {{kind: simulator}}
            templates: {{path: {templates}}}
            channels:
              out: {{type: file, path: {sent}}}
            routes:
              - match: {{severity: [high]}}
                channels: [out]
            """
        ),
        encoding="utf-8",
    )
    events = write_jsonl(tmp_path / "events.jsonl", two_days_of_events())
    code, out, _ = replay_cli(capsys, events, rules_dir, "--notify", "--config", str(config))
    assert code == 0, out
    delivered = [json.loads(line) for line in sent.read_text().splitlines()]
    # the three high-severity burst alerts are routed; the medium one matches no route
    assert [d["rule"] for d in delivered] == ["failed-burst"] * 3
    assert "notify: 3 deliveries sent" in out
    assert "1 matched no route" in out


def test_newest_first_on_stdin_is_sorted_like_a_file(tmp_path, rules_dir, capsys, monkeypatch):
    """Stdin cannot be read twice: it is copied aside, so it too can be sorted."""
    import io

    records = two_days_of_events()
    expected = tmp_path / "expected.jsonl"
    replay_cli(
        capsys, write_jsonl(tmp_path / "s.jsonl", records), rules_dir, "--output", str(expected)
    )
    data = "".join(json.dumps(r) + "\n" for r in reversed(records)).encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    got = tmp_path / "got.jsonl"
    code, out, _ = replay_cli(capsys, "-", rules_dir, "--output", str(got))
    assert code == 0
    assert "input was newest-first: sorted 10 events in 1 run" in out
    assert got.read_text() == expected.read_text() != ""


def test_a_long_input_keeps_the_per_day_column_to_a_terminal_width() -> None:
    """Six years of events (the real samples span 2019-2026): 60 columns, each summing
    several days, and the header says how many and in which years."""
    from alerting.durations import DAY_NS
    from alerting.replay import ReplayResult, RuleSummary
    from alerting.replay_summary import MAX_SPARK_COLUMNS, format_summary

    first_day = parse_timestamp("2019-03-01T00:00:00Z") // DAY_NS
    result = ReplayResult(
        events=2,
        first_ns=first_day * DAY_NS,
        last_ns=(first_day + 2262) * DAY_NS,
        alerts=2,
        per_rule={"r": RuleSummary(alerts=2, per_day={first_day: 1, first_day + 2262: 1})},
    )
    row = next(line for line in format_summary(result).splitlines() if line.startswith("r "))
    spark = row.split()[-1]
    assert len(spark) <= MAX_SPARK_COLUMNS
    assert spark[0] != "_"
    assert spark[-1] != "_"
    header = format_summary(result).splitlines()[0]
    assert header.endswith("PER DAY (2019-03-01..2025-05-10, 38 days a column)")

"""``alerting test``: pass/fail output, exit codes, test event expansion."""

from __future__ import annotations

import json
import textwrap

import pytest

from alerting.cli import main
from alerting.engine.loader import load_rules
from alerting.engine.rule import TEST_BASE_NS, build_test_events
from alerting.engine.testing import run_rule_tests
from alerting.events import format_timestamp

BURST = """\
id: failed-burst
title: Failed login burst
severity: high
detection:
  failed: {event_type: user_login_attempt, success: false}
threshold: {count: 3, within: 5m, by: initiated_by.username}
summary: "{{ count }} failures for {{ group['initiated_by.username'] }}"
tests:
  - name: three failures fire
    events:
      - event: {event_type: user_login_attempt, success: false, initiated_by: {username: bob}}
        repeat: 3
        every: 30s
    expect: {alerts: 1, count: 3, group: {initiated_by.username: bob}, summary_contains: "3 failures for bob"}
  - name: failures spread out stay quiet
    events:
      - {event: {event_type: user_login_attempt, success: false, initiated_by: {username: bob}}, repeat: 3, every: 3m}
    expect: {alerts: 0}
"""


def write(tmp_path, name, text):
    (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")


def run(capsys, *argv):
    code = main(["test", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_pass_exits_0_with_a_table(tmp_path, capsys):
    write(tmp_path, "burst.yml", BURST)
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["RULE", "TEST", "RESULT"]
    assert lines[1].split()[0] == "failed-burst"
    assert lines[1].endswith("PASS")
    assert "failures spread out stay quiet" in lines[2]
    assert lines[2].endswith("PASS")
    assert lines[-1] == "2 tests: 2 passed, 0 failed"


def test_a_failure_exits_1_and_shows_expected_vs_got(tmp_path, capsys):
    text = BURST.replace("expect: {alerts: 0}", "expect: {alerts: 1}").replace(
        '"3 failures for bob"', '"3 failures for alice"'
    )
    write(tmp_path, "burst.yml", text)
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 1
    assert "three failures fire" in out
    assert "alert 1: summary does not contain '3 failures for alice': '3 failures for bob'" in out
    assert "expected 1 alert, got 0" in out
    assert '  got alert 1: group {"initiated_by.username":"bob"}, count 3' in out
    assert out.splitlines()[-1] == "2 tests: 0 passed, 2 failed"


def test_each_listed_alert_is_checked(tmp_path):
    text = (
        BURST.replace(
            "expect: {alerts: 0}",
            "expect:\n      alerts: [{count: 3}, {count: 4, group: {initiated_by.username: eve}}]",
        )
        .replace("every: 3m", "every: 1s")
        .replace("repeat: 3, every", "repeat: 6, every")
    )
    write(tmp_path, "burst.yml", text)
    results = run_rule_tests(load_rules([tmp_path]))
    failed = results[1]
    assert failed.passed is False
    assert len(failed.alerts) == 2
    assert failed.problems[:2] == [
        "alert 2: group['initiated_by.username']: expected 'eve', got 'bob'",
        "alert 2: count: expected 4, got 3",
    ]


def test_events_file_relative_to_the_rule(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    lines = [
        {"event_type": "user_login_attempt", "success": False, "initiated_by": {"username": "amy"}}
        for _ in range(3)
    ]
    (data / "burst.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    text = BURST.split("tests:")[0] + textwrap.dedent(
        """\
        tests:
          - name: from a file
            events: data/burst.jsonl
            expect: {alerts: 1, group: {initiated_by.username: amy}}
        """
    )
    write(tmp_path, "burst.yml", text)
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 0, out


def test_rules_without_tests_warn_but_pass(tmp_path, capsys):
    write(tmp_path, "burst.yml", BURST)
    write(tmp_path, "plain.yml", BURST.split("tests:")[0].replace("failed-burst", "untested"))
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 0
    assert any(
        line.startswith("untested ") and "(no tests)" in line and line.endswith("WARN")
        for line in out.splitlines()
    )
    assert out.splitlines()[-1].endswith("warning: 1 rule(s) without tests: untested")


def test_only_named_rules_run_and_unknown_ids_get_a_suggestion(tmp_path, capsys):
    write(tmp_path, "burst.yml", BURST)
    write(tmp_path, "plain.yml", BURST.split("tests:")[0].replace("failed-burst", "untested"))
    code, out, _ = run(capsys, "--rules", str(tmp_path), "failed-burst")
    assert code == 0
    assert "untested" not in out
    code, out, err = run(capsys, "--rules", str(tmp_path), "failed-brust")
    assert code == 1
    assert (
        err.strip()
        == "alerting test: error: unknown rule id 'failed-brust' (did you mean 'failed-burst'?)"
    )


def test_disabled_rules_are_still_tested(tmp_path, capsys):
    write(tmp_path, "burst.yml", BURST + "enabled: false\n")
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 0
    assert "PASS (rule disabled)" in out


def test_invalid_rules_fail_with_located_errors(tmp_path, capsys):
    write(tmp_path, "burst.yml", BURST.replace("count: 3, within", "count: 3, withn"))
    code, _, err = run(capsys, "--rules", str(tmp_path))
    assert code == 1
    assert f"{tmp_path / 'burst.yml'}:6:23: unknown key 'withn' (did you mean 'within'?)" in err


def test_inline_event_expansion():
    entries = [
        {"event_type": "a"},
        {"event": {"event_type": "b"}, "repeat": 3, "every": "30s"},
        {"event_type": "c"},
        {"event": {"event_type": "d"}, "offset": "10m"},
        {"event_type": "e", "timestamp": "2026-02-01T00:00:00.5Z", "id": "mine"},
        {"event_type": "f"},
    ]
    events = build_test_events(entries)
    s = 1_000_000_000
    assert [(e.raw["event_type"], e.time_ns - TEST_BASE_NS) for e in events] == [
        ("a", 0),
        ("b", 1 * s),
        ("b", 31 * s),
        ("b", 61 * s),
        ("c", 62 * s),  # consecutive entries advance 1s
        ("d", 600 * s),  # offset counts from the base time
        ("e", events[6].time_ns - TEST_BASE_NS),  # an explicit timestamp is kept
        ("f", 601 * s),
    ]
    assert events[6].raw["timestamp"] == "2026-02-01T00:00:00.5Z"
    assert events[0].raw["timestamp"] == format_timestamp(TEST_BASE_NS)
    assert [e.id for e in events] == [
        "evt-0001",
        "evt-0002",
        "evt-0003",
        "evt-0004",
        "evt-0005",
        "evt-0006",
        "mine",
        "evt-0008",
    ]


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("text", "expected an event mapping"),
        ({"event": {"a": 1}, "repeat": 0}, "'repeat' must be a whole number >= 1"),
        ({"event": "x"}, "'event' must be a mapping"),
        ({"timestamp": "yesterday"}, "invalid timestamp 'yesterday'"),
    ],
)
def test_bad_inline_events(entry, fragment):
    from alerting.engine.rule import TestEventError

    with pytest.raises(TestEventError) as info:
        build_test_events([entry])
    assert fragment in info.value.message


def readme_examples():
    """Every complete rule (a yaml block starting with `id:`) in the README's rule guide."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = text.split("```yaml\n")[1:]
    return [b.split("```", 1)[0] for b in blocks if b.startswith(("id:", "title:"))]


def test_readme_examples(tmp_path):
    examples = readme_examples()
    assert len(examples) >= 7
    for i, example in enumerate(examples):
        (tmp_path / f"example{i:02d}.yml").write_text(example, encoding="utf-8")
    rules = load_rules([tmp_path])
    kinds = {type(r.aggregation).__name__ for r in rules}
    assert kinds == {
        "NoneType",
        "ThresholdSpec",
        "DistinctSpec",
        "NewValueSpec",
        "TravelSpec",
        "SequenceSpec",
        "DigestSpec",
    }
    assert any(r.filters for r in rules), "the filter example applies"
    # the examples read real DI fields: SSO launches carry sso_token_success, no success
    for example in examples:
        assert "event_type: sso_auth, success:" not in example
    results = run_rule_tests(rules)
    # every example has tests, but for the rules a correlation example tests through it
    through = {r.id for r in rules if r.correlated_by}
    assert all(r.passed is not None for r in results if r.rule not in through)
    failures = [
        (r.rule, r.name, r.problems)
        for r in results
        if not r.passed and not (r.passed is None and r.rule in through)
    ]
    assert failures == []


def test_a_broken_events_file_fails_the_test_with_its_line(tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"event_type": "user_login_attempt"}\n{oops\n')
    text = BURST.split("tests:")[0] + (
        "tests:\n  - name: broken file\n    events: bad.jsonl\n    expect: {alerts: 0}\n"
    )
    write(tmp_path, "burst.yml", text)
    code, out, _ = run(capsys, "--rules", str(tmp_path))
    assert code == 1
    assert f"bad test events: {tmp_path / 'bad.jsonl'}:2: invalid JSON" in out

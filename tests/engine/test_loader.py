"""Rule loading: every error class at its exact file:line:col, all problems at once."""

from __future__ import annotations

import textwrap

import pytest

from alerting.engine.loader import load_rules
from alerting.errors import AlertingError, RuleError

GOOD = """\
id: admin-login-no-mfa
title: Admin login without MFA
severity: high
detection:
  sel:
    event_type: admin_login_attempt
    mfa: false
  condition: sel
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path):
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    return [str(p) for p in info.value.problems]


def single_problem(tmp_path, text):
    path = write(tmp_path, "rule.yml", text)
    found = problems(tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:"), found
    return found[0][len(str(path)) + 1 :]


def test_a_good_rule_loads_with_its_index_keys(tmp_path):
    write(tmp_path, "r.yml", GOOD)
    (rule,) = load_rules([tmp_path])
    assert rule.id == "admin-login-no-mfa"
    assert rule.event_types == {"admin_login_attempt"}
    assert rule.condition({"event_type": "admin_login_attempt", "mfa": False})
    assert not rule.condition({"event_type": "admin_login_attempt", "mfa": True})


def test_unknown_key_with_did_you_mean(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("severity: high", "severity: high\nrealret: 5m"))
    assert msg == "4:1: unknown key 'realret' (did you mean 'realert'?)"


def test_unknown_modifier_with_did_you_mean(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("mfa: false", "mfa|equals: false"))
    assert msg.startswith("7:5: unknown modifier 'equals' in 'mfa|equals'")


def test_unknown_modifier_near_miss(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("mfa: false", "mfa|endwith: x"))
    assert msg == "7:5: unknown modifier 'endwith' in 'mfa|endwith' (did you mean 'endswith'?)"


def test_bad_regex_points_at_the_value(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("mfa: false", "useragent|re: 'curl(['"))
    assert msg.startswith("7:19: invalid regular expression 'curl(['")


def test_bad_cidr_points_at_the_list_item(tmp_path):
    msg = single_problem(
        tmp_path, GOOD.replace("mfa: false", "client_ip|cidr: [10.0.0.0/8, 10.0.0.0/40]")
    )
    assert msg.startswith("7:34: invalid network '10.0.0.0/40'")


def test_bad_duration(tmp_path):
    msg = single_problem(tmp_path, GOOD + "realert: 5 minutes\n")
    assert msg.startswith("9:10: realert: invalid duration '5 minutes'")


def test_bad_duration_inside_an_aggregation(tmp_path):
    msg = single_problem(tmp_path, GOOD + "threshold: {count: 3, within: soon}\n")
    assert msg.startswith("9:31: threshold.within: invalid duration 'soon'")


def test_unknown_selection_in_condition_at_its_column(tmp_path):
    text = GOOD.replace("condition: sel", "condition: sel and not filtr") + (
        "  filter:\n    initiated_by.email: a@b.c\n"
    )
    msg = single_problem(tmp_path, text)
    assert msg == "8:26: unknown selection 'filtr' (did you mean 'filter'?)"


def test_quoted_condition_column_accounts_for_the_quote(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("condition: sel", 'condition: "sel and"'))
    assert msg.startswith("8:22: the condition ends too early")


def test_condition_syntax_error_column(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("condition: sel", "condition: (sel"))
    assert msg == "8:14: missing ')' to close this '('"


def test_two_aggregations(tmp_path):
    text = GOOD + "threshold: {count: 3, within: 5m}\ndistinct: {field: a, count: 3, within: 5m}\n"
    msg = single_problem(tmp_path, text)
    assert msg.startswith(
        "10:1: a rule may have only one aggregation, found threshold and distinct"
    )


def test_duplicate_id_names_both_files_on_one_line(tmp_path):
    first = write(tmp_path, "a.yml", GOOD)
    second = write(
        tmp_path, "b.yml", "title: Again\n" + GOOD.replace("title: Admin login without MFA\n", "")
    )
    (msg,) = problems(tmp_path)
    assert msg == (
        f"{second}:2:5: duplicate rule id 'admin-login-no-mfa': also defined in {first}:1:5; "
        "rule ids must be unique, rename one"
    )


def test_empty_file(tmp_path):
    assert single_problem(tmp_path, "# only a comment\n") == (
        "1:1: file is empty: it must hold a YAML mapping"
    )


def test_tab(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("  condition: sel", "\tcondition: sel"))
    assert msg.startswith("8:1: tab character")


def test_bad_field_path(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("mfa: false", "initiated_by..email: x"))
    assert msg.startswith("7:5: invalid field path 'initiated_by..email'")


def test_bad_group_path(tmp_path):
    msg = single_problem(tmp_path, GOOD + "threshold: {count: 3, within: 5m, by: ['a..b']}\n")
    assert msg.startswith("9:40: invalid field path 'a..b'")


def test_unknown_sequence_step_selection(tmp_path):
    text = GOOD + textwrap.dedent(
        """\
        sequence:
          within: 5m
          steps:
            - selection: sel
            - selection: sell
        """
    )
    msg = single_problem(tmp_path, text)
    assert msg == "13:18: unknown selection 'sell' (did you mean 'sel'?)"


def test_summary_with_unknown_variable(tmp_path):
    msg = single_problem(tmp_path, GOOD + "summary: '{{ cout }} logins'\n")
    assert msg == "9:10: summary template uses unknown variable 'cout' (did you mean 'count'?)"


def test_summary_syntax_error(tmp_path):
    msg = single_problem(tmp_path, GOOD + "summary: '{{ count '\n")
    assert msg.startswith("9: summary template:")


def test_summary_with_unknown_filter_is_a_located_problem_not_a_crash(tmp_path):
    msg = single_problem(tmp_path, GOOD + "summary: '{{ last.event_type | upperr }}'\n")
    assert msg == "9: summary template: unknown filter 'upperr' (did you mean 'upper'?)"


def test_summary_with_unknown_test_lists_the_known_ones(tmp_path):
    msg = single_problem(tmp_path, GOOD + "summary: '{{ count is zzz }}'\n")
    assert msg.startswith("9: summary template: unknown test 'zzz' (available: ")
    assert ", defined, " in msg


def test_bad_rule_id(tmp_path):
    msg = single_problem(tmp_path, GOOD.replace("id: admin-login-no-mfa", "id: Admin_Login"))
    assert msg.startswith("1:5: id: rule id 'Admin_Login' must be a UUID (Sigma")
    assert "or kebab-case" in msg


def test_missing_test_events_file(tmp_path):
    text = GOOD + "tests:\n  - name: t\n    events: nowhere.jsonl\n    expect: {alerts: 1}\n"
    msg = single_problem(tmp_path, text)
    assert msg.startswith("11:13: events file 'nowhere.jsonl' not found")


def test_bad_inline_test_event(tmp_path):
    text = GOOD + (
        "tests:\n  - name: t\n    events:\n      - {event_type: x}\n"
        "      - {event: {a: 1}, every: sometimes}\n    expect: {alerts: 1}\n"
    )
    msg = single_problem(tmp_path, text)
    assert msg.startswith("13:9: invalid duration 'sometimes'")


def test_several_selections_need_a_condition(tmp_path):
    text = GOOD.replace("  condition: sel\n", "  other: {a: 1}\n")
    msg = single_problem(tmp_path, text)
    assert msg.startswith("5:3: detection needs a condition")


def test_all_problems_of_all_files_are_reported_together(tmp_path):
    write(tmp_path, "a.yml", GOOD.replace("severity: high", "severity: hgh"))
    write(tmp_path, "b.yml", GOOD.replace("mfa: false", "mfa|bogus: 1\n    ip|cidr: x"))
    write(tmp_path, "c.yml", GOOD.replace("admin-login-no-mfa", "fine-rule"))
    found = problems(tmp_path)
    assert [p.split(":", 1)[0].rsplit("/", 1)[-1] for p in found] == ["a.yml", "b.yml", "b.yml"]
    assert "did you mean 'high'?" in found[0]


def test_a_directory_with_one_bad_file_loads_nothing(tmp_path):
    write(tmp_path, "a.yml", GOOD)
    write(tmp_path, "b.yml", GOOD.replace("admin-login-no-mfa", "other").replace("sel\n", "nope\n"))
    with pytest.raises(RuleError):
        load_rules([tmp_path])


def test_missing_directory_is_one_line(tmp_path):
    with pytest.raises(AlertingError) as info:
        load_rules([tmp_path / "nope"])
    assert "\n" not in str(info.value)
    assert "does not exist" in str(info.value)


def test_directories_are_not_searched_recursively(tmp_path):
    write(tmp_path, "r.yml", GOOD)
    (tmp_path / "drafts").mkdir()
    write(tmp_path / "drafts", "broken.yml", "id: [")
    assert [r.id for r in load_rules([tmp_path])] == ["admin-login-no-mfa"]


def test_disabled_rules_load_and_unused_selections_become_notes(tmp_path):
    write(tmp_path, "r.yml", GOOD + "enabled: false\n" + "")
    text = GOOD.replace("  condition: sel\n", "  spare: {a: 1}\n  condition: sel\n")
    write(tmp_path, "s.yml", text.replace("admin-login-no-mfa", "with-spare"))
    rules = {r.id: r for r in load_rules([tmp_path])}
    assert rules["admin-login-no-mfa"].enabled is False
    (note,) = rules["with-spare"].notes
    assert str(note).endswith("s.yml:8:3: selection 'spare' is not used by the condition")


def test_sequence_without_condition_uses_its_steps(tmp_path):
    text = textwrap.dedent(
        """\
        id: brute-then-success
        title: Failures then success
        severity: high
        detection:
          failed: {event_type: user_login_attempt, success: false}
          ok: {event_type: user_login_attempt, success: true}
        sequence:
          by: initiated_by.username
          within: 10m
          steps: [{selection: failed, count: 3}, {selection: ok}]
        """
    )
    write(tmp_path, "r.yml", text)
    (rule,) = load_rules([tmp_path])
    assert rule.event_types == {"user_login_attempt"}
    assert rule.condition({"event_type": "user_login_attempt", "success": True})
    assert not rule.condition({"event_type": "user_login_attempt"})
    assert len(rule.step_predicates) == 2

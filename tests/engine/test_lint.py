"""``alerting validate`` warnings: names DI does not send, summaries reading group keys the
rule lacks, tests whose events match no selection; located, advisory unless --strict."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerting.cli import main
from alerting.engine.schema import di_schema

ROOT = Path(__file__).resolve().parents[2]
# The shared reference sits beside the clone (CI) or at /work/shared (the workplace).
REFERENCE = next(
    (
        d
        for d in (ROOT.parent / "shared" / "reference", Path("/work/shared/reference"))
        if (d / "jumpcloud-di-api.md").is_file()
    ),
    None,
)
REAL_EVENTS = REFERENCE / "real-events" if REFERENCE else Path("/nonexistent")

BAD = """\
id: typo-rule
title: Typos everywhere
severity: low
detection:
  sel:
    event_type: [user_login_attemp, admin_login_attempt]
    sucess: false
    initated_by.username|startswith: adm
  other:
    event_type|startswith: [user_login, zzz_]
  changed:
    $.changes..feild: apiKey
  condition: sel or other or changed
threshold: {count: 3, within: 5m, by: initiated_by.username}
summary: "{{ group['client_ip'] }} for {{ group['initiated_by.username'] }} from {{ values('clientip') }}"
fields: [geoip.countrycode, client_ip]
tests:
  - name: fires
    events:
      - {event: {event_type: admin_login_attempt, success: true}, repeat: 3}
    expect: {alerts: 1}
  - name: quiet by accident
    events:
      - {event_type: admin_login_attempt, sucess: true, initiated_by: {email: ann@example.com}}
    expect: {alerts: 0}
  - name: a deliberate near miss
    events:
      - {event_type: user_create, success: false}
    expect: {alerts: 0}
"""


def validate(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[int, list[str]]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "r.yaml").write_text(textwrap.dedent(text))
    code = main(["validate", "--config", str(ROOT / "config.yaml"), "--rules", str(rules), *flags])
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if ": warning: " in line]


def test_each_mistake_is_a_located_warning_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, warnings = validate(tmp_path, BAD, capsys)
    assert code == 0  # warnings are advice
    where = {
        w.split(": warning: ")[0].split("r.yaml:")[1]: w.split(": warning: ")[1] for w in warnings
    }
    assert where["6:18"].startswith(
        "event_type 'user_login_attemp' is not a known DI event type (did you mean "
        "'user_login_attempt'?)"
    )
    assert where["7:5"].startswith(
        "field 'sucess' is not a DI event field (did you mean 'success'?)"
    )
    assert "(did you mean 'initiated_by.username'?)" in where["8:5"]
    # A prefix some DI event types have is fine; one none has is not.
    assert where["10:41"].startswith("event_type 'zzz_' is not a known DI event type")
    assert "10:29" not in where
    assert "10:30" not in where
    # JSONPath fields are checked by their names too.
    assert (
        "field '$.changes..feild' is not a DI event field (did you mean 'changes.field'?)"
        in where["12:5"]
    )
    assert "(did you mean 'geoip.country_code'?)" in where["16:10"]
    summary = [w for w in warnings if "summary reads" in w]
    assert len(summary) == 2
    assert (
        "group['client_ip'], which is always empty: the rule groups by initiated_by.username"
        in summary[0]
    )
    assert "values('clientip')" in summary[1]
    assert "(did you mean 'client_ip'?)" in summary[1]
    tests = [w for w in warnings if "test '" in w]
    assert len(tests) == 2  # not the deliberate near miss: its fields are DI's
    assert (
        "r.yaml:20:7: warning: test 'fires' expects 1 alert(s) but none of its 3 events" in tests[0]
    )
    assert "test 'quiet by accident' passes only because" in tests[1]
    assert "'sucess' (did you mean 'success'?)" in tests[1]
    assert len(warnings) == 10, "\n".join(warnings)


def test_strict_fails_on_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(BAD)
    args = ["validate", "--config", str(ROOT / "config.yaml"), "--rules", str(rules), "--strict"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "10 warnings (--strict): fix them or drop --strict" in err


def test_a_rule_without_group_reading_group_is_told_to_add_by(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, warnings = validate(
        tmp_path,
        """\
        id: no-group
        title: No group
        severity: low
        detection:
          sel: {event_type: user_lockout}
        summary: "{{ group.client_ip }} locked out"
        """,
        capsys,
    )
    assert len(warnings) == 1
    assert (
        "r.yaml:6:10: warning: summary reads group['client_ip'], which is always empty: the rule has no group key (add 'by'"
        in warnings[0]
    )


def test_the_shipped_pack_has_no_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "validate",
                "--config",
                str(ROOT / "config.yaml"),
                "--rules",
                str(ROOT / "rules"),
                "--strict",
            ]
        )
        == 0
    )
    assert "warning:" not in capsys.readouterr().out


@pytest.mark.skipif(not REAL_EVENTS.is_dir(), reason="the shared reference samples are not here")
def test_every_field_and_event_type_of_the_real_samples_is_known() -> None:
    schema = di_schema()

    def paths(value: object, prefix: str = "") -> list[str]:
        if isinstance(value, list):
            return [p for item in value for p in paths(item, prefix)]
        if not isinstance(value, dict):
            return []
        out = []
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.append(path)
            out.extend(paths(inner, path))
        return out

    seen = 0
    for path in REAL_EVENTS.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            seen += 1
            if "event_type" in event:
                assert schema.knows_event_type(event["event_type"])
            unknown = [
                p
                for p in paths(event)
                if not schema.knows_field(p)
                and p.split(".")[0] not in ("jumpcloud_event_type", "some_other_fields")
            ]
            assert unknown == [], (path.name, unknown)
    assert seen >= 20


def test_the_schema_file_is_what_the_generator_builds() -> None:
    if REFERENCE is None:
        pytest.skip("the shared reference is not here")
    reference = REFERENCE
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "build_di_schema.py"),
            "--reference",
            str(reference),
            "--check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_correlation_documents_have_their_group_and_field_checked() -> None:
    from alerting.engine.lint import _path_warnings
    from alerting.yamlfile import load_yaml

    text = textwrap.dedent(
        """\
        title: Spray
        name: spray
        correlation:
          type: value_count
          rules: [failed]
          group-by: [clientip]
          timespan: 10m
          condition: {gte: 10, field: initiated_by.usrname}
        """
    )
    doc = load_yaml("c.yml", text=text)
    warnings = _path_warnings(doc.data, doc, di_schema())
    assert [str(w.location) for w in warnings] == ["c.yml:6:14", "c.yml:8:31"]
    assert "(did you mean 'client_ip'?)" in warnings[0].message
    assert "(did you mean 'initiated_by.username'?)" in warnings[1].message


def test_each_document_of_a_sigma_file_is_checked_where_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, warnings = validate(
        tmp_path,
        """\
        title: Failed logins
        name: failed
        logsource: {product: jumpcloud, service: directory_insights}
        level: low
        detection:
          sel: {event_type: user_login_attempt, sucess: false}
          condition: sel
        ---
        title: Many failed logins
        name: many-failed
        level: high
        correlation:
          type: event_count
          rules: [failed]
          group-by: [initiated_by.usrname]
          timespan: 5m
          condition: {gte: 10}
        """,
        capsys,
    )
    assert [w.split(": warning: ")[0].rsplit(":", 2)[-2:] for w in warnings] == [
        ["6", "41"],
        ["15", "14"],
    ]
    assert "'sucess'" in warnings[0]
    assert "(did you mean 'initiated_by.username'?)" in warnings[1]


def test_another_product_s_rule_gets_one_warning_not_one_per_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, warnings = validate(
        tmp_path,
        """\
        title: Okta MFA reset
        id: 50e068d7-1e6b-4054-87e5-0a592c40c7e0
        logsource: {product: okta, service: okta}
        level: medium
        detection:
          selection:
            eventType: [user.mfa.factor.reset_all, user.mfa.factor.deactivate]
          condition: selection
        """,
        capsys,
    )
    assert len(warnings) == 1
    assert (
        "r.yaml:3:22: warning: logsource product 'okta': this service reads JumpCloud"
        in warnings[0]
    )

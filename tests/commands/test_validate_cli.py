"""``alerting validate`` as a user runs it: exit code, stdout summary, stderr problems."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from alerting.cli import main

ROOT = Path(__file__).resolve().parents[2]

RULE = """\
id: admin-login
title: Admin console login
severity: low
detection:
  login:
    event_type: admin_login_attempt
  condition: login
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shipped config with a one-rule pack and a one-template folder."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "admin-login.yaml").write_text(RULE)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "console.txt.j2").write_text("alert {{ 1 + 1 }}\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_shipped_config_validates(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("alerting.engine.loader")
    code, out, err = run(capsys, "--config", str(project / "config.yaml"))
    assert (code, err) == (0, "")
    assert f"config ok: {project / 'config.yaml'} (source simulator" in out
    assert f"rules: 1 ok in {project / 'rules'}" in out
    assert f"templates: 1 ok in {project / 'templates'}" in out
    assert "channels: console, alerts-file; routes: 1; silences: 0 active" in out
    assert ": warning:" not in out
    assert ": note:" not in out  # every shipped channel is routed


def test_project_as_shipped_validates(capsys: pytest.CaptureFixture[str]) -> None:
    """The real tree: config.yaml + rules/ + templates/ (needs the rule pack)."""
    pytest.importorskip("alerting.engine.loader")
    pytest.importorskip("alerting.notify.render")
    if not any((ROOT / "rules").glob("*.y*ml")):
        pytest.skip("the rule pack is not in this tree yet")
    code, out, err = run(capsys, "--config", str(ROOT / "config.yaml"))
    assert err == ""
    assert code == 0
    assert "config ok" in out


def test_broken_config_and_broken_rule_report_everything(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("alerting.engine.loader")
    config = project / "config.yaml"
    edit(config, "  lag: 2m ", "  lag: two minutes ")
    edit(config, "  - channels: [console, alerts-file]", "  - channels: [consle, alerts-file]")
    (project / "rules" / "broken.yaml").write_text(
        "id: broken-rule\ntitle: x\nseverity: hgih\ndetection: {a: {x: 1}, condition: a}\n"
    )
    code, out, err = run(capsys, "--config", str(config))
    assert code == 1
    lines = err.splitlines()
    text = config.read_text()
    lag_line = text[: text.index("two minutes")].count("\n") + 1
    route_line = text[: text.index("[consle")].count("\n") + 1
    assert lines[0].startswith(f"{config}:{lag_line}:")
    assert "source.lag: invalid duration 'two minutes'" in lines[0]
    assert lines[1].startswith(f"{config}:{route_line}:")
    assert "unknown channel 'consle' (did you mean 'console'?)" in lines[1]
    assert lines[2].startswith(f"{project / 'rules' / 'broken.yaml'}:3:")
    assert "hgih" in lines[2]
    assert lines[-1] == "3 problems found"
    assert len(lines) == 4
    assert "config ok" not in out


def test_rules_flag_overrides_config_paths(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("alerting.engine.loader")
    other = tmp_path_factory.mktemp("other-rules")
    (other / "a.yaml").write_text(RULE)
    (other / "b.yaml").write_text(RULE.replace("admin-login", "admin-login-two"))
    (project / "templates" / "rules" / "admin-login-two").mkdir(parents=True)
    (project / "templates" / "rules" / "admin-login-two" / "console.txt.j2").write_text("x\n")
    code, out, err = run(capsys, "--config", str(project / "config.yaml"), "--rules", str(other))
    assert (code, err) == (0, "")
    assert f"rules: 2 ok in {other}" in out
    assert "templates: 2 ok" in out


def test_config_errors_still_check_the_rules(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("alerting.engine.loader")
    (project / "config.yaml").write_text("source: {kind: nope}\n")
    (project / "rules" / "admin-login.yaml").write_text(
        RULE.replace("severity: low", "sevrity: low")
    )
    code, out, err = run(capsys, "--config", str(project / "config.yaml"))
    assert code == 1
    assert "source.kind: 'nope' is not one of simulator, jumpcloud, file" in err
    assert "admin-login.yaml" in err
    assert "did you mean 'severity'?" in err
    assert "templates not checked: fix the config first" in out


def test_expired_silence_and_unused_channel_do_not_fail(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("alerting.engine.loader")
    config = project / "config.yaml"
    edit(
        config,
        "silences: []\n",
        textwrap.dedent("""\
        silences:
          - match: {rule: admin-login}
            until: 2020-01-01T00:00:00Z
            reason: migration
            owner: bob
          - match: {rule: [admin-logn]}
            until: 2999-01-01T00:00:00Z
            reason: typo in the rule id
            owner: eve
        """),
    )
    edit(config, "  alerts-file:\n", "  spare:\n    type: console\n  alerts-file:\n")
    code, out, err = run(capsys, "--config", str(config))
    assert (code, err) == (0, "")
    text = config.read_text()
    silence_line = text[: text.index("- match: {rule: admin-login}")].count("\n") + 1
    spare_line = text[: text.index("spare:")].count("\n") + 1
    assert (
        f"{config}:{silence_line}:5: warning: silence for rule admin-login expired 2020-01-01 "
        "(owner bob): remove it"
    ) in out.splitlines()
    assert (
        "silences.1.match.rule: 'admin-logn' matches no rule (did you mean 'admin-login'?)" in out
    )
    assert f"{config}:{spare_line}:3: note: channel 'spare' is used by no route" in out.splitlines()
    assert "silences: 1 active" in out


def test_channel_template_must_exist(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("alerting.engine.loader")
    config = project / "config.yaml"
    edit(
        config,
        "  alerts-file:\n",
        "  hook:\n    type: webhook\n    url: https://siem.example.com/x\n"
        "    template: consol\n  alerts-file:\n",
    )
    edit(config, "[console, alerts-file]", "[console, alerts-file, hook]")
    code, _, err = run(capsys, "--config", str(config))
    assert code == 1
    assert "channels.hook.template: no template 'consol' in" in err
    assert "(did you mean 'console'?)" in err


def test_missing_config_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.yaml"
    code, out, err = run(capsys, "--config", str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}: config file not found: copy config.yaml from the project or pass --config",
        "1 problem found",
    ]
    assert "Traceback" not in err + out


def test_secrets_are_not_printed(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/TOPSECRETX")
    config = project / "config.yaml"
    edit(config, "  alerts-file:\n", "  oncall: ${SLACK_WEBHOOK_URL}\n  alerts-file:\n")
    code, out, err = run(capsys, "--config", str(config))
    assert code == 1
    assert "channels.oncall: expected a mapping" in err
    assert "TOPSECRETX" not in out + err

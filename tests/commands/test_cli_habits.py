"""The command line fits operators' habits: flags anywhere, no secrets to read state,
the config's rules everywhere, rules listed with their channels, exit codes in every
--help, durations that do not mistake months for minutes, no silently ignored names,
and a container that refuses to pretend."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting import cli
from alerting.durations import parse_duration_ns
from tests.support.service import FAILED_BURST_RULE, FAILED_LOGIN_RULE, login

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``--log-level``/``-q`` install a log handler; take it off after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _project(tmp_path: Path, *, rules_dir: str = "my-rules", extra: str = "") -> Path:
    """A config whose secrets are unset and whose rules live outside ./rules."""
    rules = tmp_path / rules_dir
    rules.mkdir()
    (rules / "failed-login.yml").write_text(FAILED_LOGIN_RULE)
    (rules / "failed-burst.yml").write_text(FAILED_BURST_RULE)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
source: {{kind: file, path: events.jsonl}}
state: {{path: state/alerting.db}}
rules: {{paths: [{rules_dir}]}}
templates: {{path: {ROOT / "templates"}}}
channels:
  pager: {{type: slack, webhook_url: "${{SLACK_PAGER_URL}}"}}
  siem: {{type: webhook, url: "https://siem.example.com/hook", secret_file: /nonexistent/secret}}
  audit: {{type: file, path: state/audit.jsonl}}
routes:
  - match: {{severity: critical}}
    channels: [pager]
    continue: true
  - match: {{group: {{initiated_by.username: admin-*}}}}
    channels: [siem]
    continue: true
  - channels: [audit]
{extra}"""
    )
    return config


@pytest.mark.usefixtures("restore_logging")
def test_global_options_work_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_project(tmp_path))
    for argv in (
        ["outbox", "list", "--config", config],
        ["outbox", "--config", config, "list"],
        ["--config", config, "outbox", "list"],
        ["-q", "outbox", "list", "--config", config],
        ["outbox", "list", "--config", config, "--log-level", "WARNING"],
    ):
        code, out, err = _run(capsys, *argv)
        assert (code, err) == (0, ""), argv
        assert out.startswith("outbox is empty")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["-v", "outbox", "list", "-q", "--config", config])
    assert exit_info.value.code == 2
    assert "-v and -q exclude each other" in capsys.readouterr().err


def test_outbox_and_silences_need_no_channel_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_project(tmp_path))
    os.environ.pop("SLACK_PAGER_URL", None)
    # The service itself needs them and says which ...
    code, _, err = _run(capsys, "validate", "--config", config)
    assert code == 1
    assert "SLACK_PAGER_URL is not set" in err
    assert "/nonexistent/secret" in err
    # ... but reading and changing the state database does not.
    assert _run(capsys, "outbox", "list", "--config", config)[0] == 0
    assert _run(capsys, "outbox", "retry", "--config", config)[0] == 0
    code, out, err = _run(
        capsys, "silence", "add", "--config", config, "--rule", "test-failed-login",
        "--for", "2h", "--reason", "noisy", "--owner", "ann",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "1"), err
    code, out, _ = _run(capsys, "silence", "list", "--config", config)
    assert code == 0
    assert "test-failed-login (every group)" in out


def test_test_and_replay_use_the_configs_rules_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)  # rules in my-rules/, not rules/
    events = tmp_path / "export.jsonl"

    events.write_text("".join(json.dumps(login(1.8e9 + i, "alice")) + "\n" for i in range(3)))
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "test")
    assert code == 0, err
    assert "test-failed-login" in out
    assert "test-failed-burst" in out
    code, out, err = _run(capsys, "replay", "--events", str(events))
    assert code == 0, err
    assert "test-failed-burst" in out
    assert "4 alerts over" in out  # 3 failed logins + 1 burst, from my-rules/
    # An explicit --rules still wins.
    code, _, err = _run(capsys, "test", "--rules", str(ROOT / "rules"), "brute-force-success")
    assert code == 0, err


def test_validate_rules_works_without_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.yaml here
    code, out, err = _run(capsys, "validate", "--rules", str(ROOT / "rules"))
    assert (code, err) == (0, "")
    assert out.startswith(f"rules: {len(list((ROOT / 'rules').glob('*.yaml')))} ok in ")
    assert "config and templates not checked" in out
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "r.yml").write_text(FAILED_LOGIN_RULE.replace("severity: high", "severity: huge"))
    code, _, err = _run(capsys, "validate", "--rules", str(broken))
    assert code == 1
    assert f"{broken / 'r.yml'}:3:" in err
    # An explicit --config that is missing is still an error.
    assert _run(capsys, "validate", "--rules", str(broken), "--config", "nope.yaml")[0] == 1


def test_rules_list_shows_each_rule_and_the_channels_it_reaches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(_project(tmp_path))
    code, out, err = _run(capsys, "rules", "list", "--config", config)
    assert (code, err) == (0, "")
    rows = {line.split()[0]: line.split(None, 4) for line in out.splitlines()[1:-1]}
    assert rows["test-failed-burst"] == [
        "test-failed-burst", "critical", "threshold", "yes", "pager, siem?, audit",
    ]  # fmt: skip
    assert rows["test-failed-login"] == [
        "test-failed-login", "high", "none", "yes", "siem?, audit",
    ]  # fmt: skip
    assert out.splitlines()[-1].startswith("2 rules, 2 enabled")


def test_every_command_help_states_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["run"], ["validate"], ["test"], ["replay"], ["export"], ["simulate"], ["outbox"],
        ["convert"], ["silence"],
        ["rules"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "exit codes:" in text, argv
        assert "  0 " in text
        assert "  1 " in text
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "  3    --once: a delivery of this run was dead-lettered" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "hint"),
    [("6M", "180d"), ("1y", "365d"), ("6mo", "180d"), ("1M30s", "180d for six months")],
)
def test_months_are_not_minutes(text: str, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_duration_ns(text)


def test_durations_keep_working_where_case_does_not_matter() -> None:
    assert parse_duration_ns("6m") == 6 * 60 * 10**9
    assert parse_duration_ns("2H") == parse_duration_ns("2h")
    assert parse_duration_ns("250MS") == parse_duration_ns("250ms")


def test_a_rule_forgetting_after_6M_is_an_error_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "geo.yml").write_text(
        (ROOT / "rules" / "unusual-geoip-login.yaml")
        .read_text()
        .replace("forget: 180d", "forget: 6M")
    )
    code, _, err = _run(capsys, "validate", "--rules", str(rules))
    assert code == 1
    [line] = [x for x in err.splitlines() if "6M" in x]
    assert line.startswith(f"{rules / 'geo.yml'}:")
    assert "180d" in line


def test_unknown_simulator_names_are_errors_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "simulate", "--fault", "slw", "--port", "0")
    assert code == 1
    assert "did you mean 'slow'" in err
    code, _, err = _run(capsys, "simulate", "--scenario", "pasword-spray", "--export", "x")
    assert code == 1
    assert "did you mean 'password-spray'" in err
    code, _, err = _run(capsys, "simulate", "--fault", "slow", "--export", str(tmp_path / "x"))
    assert code == 1
    assert "no effect with --export" in err
    config = tmp_path / "config.yaml"
    config.write_text("source:\n  kind: simulator\n  simulator: {faults: [rate-limt]}\n")
    code, _, err = _run(capsys, "validate", "--config", str(config))
    assert code == 1
    assert f"{config}:3:" in err
    assert "did you mean 'rate-limit'" in err


@pytest.fixture
def entrypoint(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The container's entrypoint with a stand-in ``alerting`` that prints its arguments."""
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "alerting"
    stub.write_text('#!/bin/sh\necho "alerting $*"\n')
    stub.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "JC_ALERTING_CONFIG": str(tmp_path / "etc" / "config.yaml"),
        "JC_ALERTING_DEMO_CONFIG": "/etc/jc-alerting/demo.yaml",
    }
    return ROOT / "deploy" / "docker-entrypoint.sh", env


def _entry(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script), *args], env=env, capture_output=True, text=True, timeout=10
    )


def test_container_refuses_to_start_without_a_config_unless_asked_for_the_demo(
    entrypoint: tuple[Path, dict[str, str]],
) -> None:
    script, env = entrypoint
    refused = _entry(script, env)
    assert refused.returncode == 78
    assert refused.stdout == ""
    assert "no config at" in refused.stderr
    assert "demo" in refused.stderr
    demo = _entry(script, env, "demo")
    assert (demo.returncode, demo.stdout) == (
        0,
        "alerting run --config /etc/jc-alerting/demo.yaml\n",
    )
    by_env = _entry(script, {**env, "JC_ALERTING_DEMO": "1"})
    assert by_env.stdout == "alerting run --config /etc/jc-alerting/demo.yaml\n"
    Path(env["JC_ALERTING_CONFIG"]).parent.mkdir()
    Path(env["JC_ALERTING_CONFIG"]).write_text("source: {kind: simulator}\n")
    mounted = _entry(script, env)
    assert mounted.stdout == f"alerting run --config {env['JC_ALERTING_CONFIG']}\n"
    other = _entry(script, env, "silence", "list")
    assert other.stdout == "alerting silence list\n"


def test_the_repo_ships_a_dockerignore_and_a_reloadable_always_restarting_unit() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "state/", "tests/"} <= set(ignored)
    unit = (ROOT / "deploy" / "jc-alerting.service").read_text()
    assert "\nRestart=always\n" in unit
    assert "\nExecReload=/bin/kill -HUP $MAINPID\n" in unit
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["jc-alerting-entrypoint"]' in dockerfile
    assert "COPY config.yaml /etc/jc-alerting/demo.yaml" in dockerfile

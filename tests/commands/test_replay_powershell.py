"""A PowerShell export cut at ``ConvertTo-Json``'s default ``-Depth`` is refused where a
rule reads below the cut (by replay, and by the service as its file source), instead of
replaying to "no alerts"; where no rule does, it replays as the whole export would.

The exports are real events (tests/support/real_events.py, SEKOIA's association_change)
written as Windows PowerShell 5.1 writes ``Get-JCEvent ... | ConvertTo-Json | Out-File``
(tests/support/exports.py, ``powershell_export``).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from alerting import jsonutil
from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.engine.loader import load_rules
from alerting.events import Event, parse_timestamp
from alerting.replay_shape import TruncatedExportError, check_export
from alerting.service.app import Service
from tests.support.exports import powershell_cut, powershell_export
from tests.support.real_events import RADIUS_FAILURE, SSO_FAILURE, shaped
from tests.support.replay_cli import replay_pack

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "tests" / "data" / "real-events" / "sekoia-intake-formats.jsonl"
T0 = parse_timestamp("2026-11-20T10:00:00Z")


def association_change() -> str:
    """SEKOIA's captured association_change (a device bound to a user)."""
    return next(line for line in REAL.read_text().splitlines() if "association_change" in line)


def it_admins_added(event_id: str, at_ns: int) -> dict:
    """The real association_change with a user added to "IT Admins", as the rule's own
    test shapes it."""
    raw = shaped(association_change(), event_id, at_ns)
    raw["association"]["connection"]["from"] = {
        "name": "IT Admins",
        "type": "user_group",
        "object_id": "6447f8a7caa17d71c56b2dcb",
    }
    return raw


def replay(events: Path, tmp_path: Path, *extra: str) -> tuple[int, Path]:
    output = tmp_path / "alerts.jsonl"
    return replay_pack(events, output, *extra), output


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_default_depth_export_is_refused_naming_the_field_the_rule_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    events = [it_admins_added(f"64930a6d00466f31842811{i:02x}", T0 + i * 10**9) for i in range(3)]
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(events), encoding="utf-8")
    code, output = replay(whole, tmp_path, "--jobs", jobs)
    assert code == 0
    assert [a["rule"] for a in map(jsonutil.loads, output.read_text().splitlines())] == [
        "privileged-group-member-added"
    ]
    output.unlink()
    capsys.readouterr()

    code, output = replay(powershell_export(events, tmp_path / "ps.json"), tmp_path, "--jobs", jobs)
    err = capsys.readouterr().err
    assert code != 0
    assert not output.exists()  # no "no alerts" file to mistake for an answer
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in err
    assert str(tmp_path / "ps.json") in lines[0]
    assert "event 1 (id 64930a6d00466f3184281100)" in lines[0]
    assert "field 'association.connection' is the text '@{from=; to=}'" in lines[0]
    assert "rule privileged-group-member-added reads association.connection." in lines[0]
    assert "ConvertTo-Json -Depth 100" in lines[0]


def test_an_export_cut_per_event_is_refused_at_the_depth_it_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `ForEach-Object { $_ | ConvertTo-Json -Compress }`: one event a line, cut two levels
    # below each event, so one level deeper than the array form.
    lines = [
        jsonutil.dumps(powershell_cut(it_admins_added(f"ab{i:022x}", T0 + i * 10**9), 2))
        for i in range(2)
    ]
    path = tmp_path / "per-event.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, output = replay(path, tmp_path)
    assert code != 0
    assert not output.exists()
    err = capsys.readouterr().err
    # cut one level deeper than the array form; long text shortened in the message
    assert "field 'association.connection.from' is the text '@{name=IT Admins; type=" in err
    assert "object_id=6447f8a7caa1...'" in err


def test_a_cut_no_replayed_rule_reads_below_replays_as_the_whole_export(tmp_path: Path) -> None:
    # A RADIUS password-guessing burst and an SSO failure: the cut takes the SSO event's
    # auth_context.system (text "@{hostname=...}"). failed-login-burst reads two levels
    # at most, so replayed alone it gives what the whole export gives; the pack has a
    # rule reading four levels (privileged-group-member-added), so it is refused.
    events = [shaped(SSO_FAILURE, "cd0000000000000000000000", T0)]
    events += [shaped(RADIUS_FAILURE, f"cd{i:022x}", T0 + i * 20 * 10**9) for i in range(1, 13)]
    cut = powershell_cut(events, 2)
    assert cut[0]["auth_context"]["system"].startswith("@{hostname=")  # type: ignore[index]
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(events), encoding="utf-8")
    exported = powershell_export(events, tmp_path / "ps.json")
    code, alerts = replay(whole, tmp_path, "--rule", "failed-login-burst")
    assert code == 0
    expected = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [a["rule"] for a in expected] == ["failed-login-burst"]
    alerts.unlink()

    code, alerts = replay(exported, tmp_path, "--rule", "failed-login-burst")
    assert code == 0
    got = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [(a["rule"], a["group"], a["count"]) for a in got] == [
        (a["rule"], a["group"], a["count"]) for a in expected
    ]
    alerts.unlink()
    code, alerts = replay(exported, tmp_path)
    assert code != 0
    assert not alerts.exists()


def test_text_that_is_not_powershells_is_left_to_the_rules() -> None:
    # A field DI sends as an object may be text in an event type nobody sampled.
    rules = load_rules([REPO / "rules"])
    raw = it_admins_added("ef0000000000000000000000", T0)
    raw["association"]["connection"] = "n/a"
    check_export([Event.from_raw(raw)], rules, "x.json")  # no error
    raw["association"]["connection"] = "System.Collections.Hashtable"
    with pytest.raises(
        TruncatedExportError, match=r"x\.json: event 1 .*'System\.Collections\.Hashtable'"
    ):
        check_export([Event.from_raw(raw)], rules, "x.json")


def service_config(tmp_path: Path, rules: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
source: {{kind: file, path: events.json}}
state: {{path: state/alerting.db}}
rules: {{paths: [{rules}]}}
templates: {{path: {REPO / "templates"}}}
channels:
  archive: {{type: file, path: state/alerts.jsonl}}
routes:
  - channels: [archive]
server: {{listen: "127.0.0.1:0"}}
"""
    )
    return config


def test_the_service_refuses_such_an_export_as_its_file_source(tmp_path: Path) -> None:
    events = [it_admins_added(f"64930a6d00466f31842811{i:02x}", T0 + i * 10**9) for i in range(3)]
    powershell_export(events, tmp_path / "events.json")
    config = service_config(tmp_path, REPO / "rules")
    with pytest.raises(TruncatedExportError, match=r"events\.json: event 1 .*ConvertTo-Json"):
        Service.from_config(load_config(config), clock=ManualClock(T0 / 1e9))
    # the state lock was let go: the same config starts once the file is exported whole
    (tmp_path / "events.json").write_text(json.dumps(events), encoding="utf-8")
    service = Service.from_config(load_config(config), clock=ManualClock(T0 / 1e9))
    service.close()


def test_a_reload_that_adds_a_rule_reading_below_the_cut_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = [it_admins_added(f"64930a6d00466f31842811{i:02x}", T0 + i * 10**9) for i in range(3)]
    powershell_export(events, tmp_path / "events.json")
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(REPO / "rules" / "failed-login-burst.yaml", rules)  # reads two levels
    service = Service.from_config(
        load_config(service_config(tmp_path, rules)), clock=ManualClock(T0 / 1e9)
    )
    try:
        shutil.copy(REPO / "rules" / "privileged-group-member-added.yaml", rules)
        with caplog.at_level(logging.ERROR, logger="alerting.service"):
            assert service.reload() is False
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(
            "events.json: event 1" in m and "rule privileged-group-member-added reads" in m
            for m in errors
        ), errors
    finally:
        service.close()

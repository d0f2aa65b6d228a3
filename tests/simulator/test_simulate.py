"""`alerting simulate` and the EmbeddedSimulator: export, serving, live traffic, errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerting import cli
from alerting.clock import ManualClock
from alerting.errors import AlertingError
from alerting.events import format_timestamp, parse_timestamp
from alerting.simulator.di_api import API_PREFIX, DEMO_API_KEY
from alerting.simulator.embedded import EmbeddedSimulator, resolve_scenarios
from alerting.simulator.traffic import HOUR_NS, MINUTE_NS, SCENARIOS

# Thursday 15:00 UTC: working hours in the US and in Europe.
START = datetime(2026, 11, 19, 15, 0, tzinfo=UTC).timestamp()


def page_all(url: str, start_ns: int, end_ns: int, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Read [start, end] the way a client does: full pages, then search_after."""
    body: dict[str, Any] = {
        "service": ["all"],
        "start_time": format_timestamp(start_ns),
        "end_time": format_timestamp(end_ns),
        "limit": limit,
        "sort": "ASC",
    }
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers={"x-api-key": DEMO_API_KEY}, timeout=10) as http:
        while True:
            r = http.post(f"{API_PREFIX}/events", json=body)
            assert r.status_code == 200, r.text
            page = r.json()
            events += page
            if int(r.headers["X-Result-Count"]) < int(r.headers["X-Limit"]):
                return events
            body["search_after"] = json.loads(r.headers["X-Search_after"])


# ----------------------------------------------------------------------- export


def test_export_writes_jsonl_and_ground_truth(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "events.jsonl"
    code = cli.main(["simulate", "--export", str(out), "--hours", "3", "--seed", "4"])
    assert code == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) > 100  # wall-clock time: a quiet Sunday night still has service traffic
    ids = {e["id"] for e in events}
    assert len(ids) == len(events)
    truth = json.loads((tmp_path / "events.jsonl.truth.json").read_text())
    # a short export still holds every scenario once
    assert {a["scenario"] for a in truth} == set(SCENARIOS)
    for attack in truth:
        assert attack["rule"] == SCENARIOS[attack["scenario"]]
        assert set(attack["event_ids"]) <= ids
    said = capsys.readouterr().out
    assert f"to {out}" in said
    assert "ground truth of" in said


def test_export_to_a_gz_name_writes_real_gzip(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl.gz"
    assert cli.main(["simulate", "--export", str(out), "--hours", "2", "--users", "8"]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    with gzip.open(out, "rt", encoding="utf-8") as fh:  # what zcat reads
        events = [json.loads(line) for line in fh]
    assert len(events) > 50
    truth = json.loads((tmp_path / "events.jsonl.gz.truth.json").read_text())
    assert truth
    assert all(a["entity"] for a in truth if a["scenario"] != "password-spray")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.jsonl.gz",
        "events.jsonl.gz.truth.json",
    ]


def test_export_without_attacks(tmp_path: Path) -> None:
    out = tmp_path / "quiet.jsonl"
    assert cli.main(["simulate", "--export", str(out), "--hours", "2", "--scenario", "none"]) == 0
    assert out.read_text().count("\n") > 100
    assert json.loads((tmp_path / "quiet.jsonl.truth.json").read_text()) == []


def test_export_of_an_org_mid_rollout(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "rollout.jsonl"
    args = ["simulate", "--export", str(out), "--hours", "30", "--scenario", "none"]
    assert cli.main([*args, "--unenrolled-mfa", "0.5"]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    logins = [e for e in events if e["event_type"] == "user_login_attempt" and e["success"]]
    assert any(e["mfa"] is False for e in logins)
    assert cli.main([*args, "--unenrolled-mfa", "1.5"]) == 1
    assert "--unenrolled-mfa must be a share from 0 up to 1" in capsys.readouterr().err


def test_unknown_scenario_is_a_one_line_error_with_a_suggestion(
    tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "x.jsonl"
    code = cli.main(["simulate", "--scenario", "pasword-spray", "--export", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown scenario 'pasword-spray' (did you mean 'password-spray'?)" in err
    assert "impossible-travel" in err  # the list of known names
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_scenario_names_resolve() -> None:
    assert resolve_scenarios(None) is None
    assert resolve_scenarios(["all"]) is None
    assert resolve_scenarios(["none"]) == []
    assert resolve_scenarios(["password-spray,mfa-disabled", "password-spray"]) == [
        "password-spray",
        "mfa-disabled",
    ]
    with pytest.raises(AlertingError, match="cannot be combined"):
        resolve_scenarios(["none", "mfa-disabled"])


# ----------------------------------------------------------------------- serving


def test_serves_history_with_every_attack_in_the_last_hour() -> None:
    clock = ManualClock(START)
    now = int(START) * 1_000_000_000
    with EmbeddedSimulator(clock=clock, seed=9, history_ns=2 * HOUR_NS) as sim:
        events = page_all(sim.url, now - 2 * HOUR_NS, now)
        assert len(events) > 1000
        ids = [e["id"] for e in events]
        assert len(set(ids)) == len(ids)
        served = set(ids)
        # every scenario complete inside the last hour, before a poll with the default
        # 2-minute lag stops reading (now - 2m): the first poll of a new service alerts
        ready = [
            a
            for a in sim.attacks
            if a.start_ns >= now - HOUR_NS and a.end_ns <= now - 2 * MINUTE_NS
        ]
        assert {a.scenario for a in ready} == set(SCENARIOS)
        for attack in sim.attacks:
            if attack.end_ns <= now:  # the newest one may still be under way
                assert set(attack.event_ids) <= served


def test_an_org_mid_rollout_serves_portal_logins_without_mfa() -> None:
    clock = ManualClock(START)
    now = int(START) * 1_000_000_000
    with EmbeddedSimulator(
        clock=clock, seed=9, history_ns=24 * HOUR_NS, scenarios=["none"], unenrolled_mfa=0.1
    ) as sim:
        events = page_all(sim.url, now - 24 * HOUR_NS, now)
    logins = [e for e in events if e["event_type"] == "user_login_attempt" and e["success"]]
    without = {e["initiated_by"]["username"] for e in logins if e["mfa"] is False}
    assert 1 <= len(without) <= 6  # 10% of 60 people, those who logged in that day
    assert all(e["mfa_meta"] == {"type": "none"} for e in logins if e["mfa"] is False)
    assert any(e["mfa"] is True for e in logins)


def test_live_mode_extends_traffic_and_keeps_attacking() -> None:
    clock = ManualClock(START)
    now = int(START) * 1_000_000_000
    with EmbeddedSimulator(clock=clock, seed=9, history_ns=HOUR_NS) as sim:
        first = page_all(sim.url, now - HOUR_NS, now)
        before = len(sim.attacks)
        clock.advance(30 * 60)
        later = now + 30 * MINUTE_NS
        fresh = page_all(sim.url, now + 1_000_000, later)  # the API filters by millisecond
        assert len(fresh) > 200
        assert all(now < parse_timestamp(e["timestamp"]) <= later for e in fresh)
        assert not {e["id"] for e in fresh} & {e["id"] for e in first}
        new_attacks = sim.attacks[before:]
        assert len(new_attacks) >= 5  # one scenario every few minutes
        served = {e["id"] for e in fresh}
        assert all(set(a.event_ids) <= served for a in new_attacks if a.end_ns <= later)


def test_faults_are_passed_to_the_server() -> None:
    with EmbeddedSimulator(
        clock=ManualClock(START), history_ns=HOUR_NS, scenarios=["none"], faults=["unauthorized"]
    ) as sim:
        r = httpx.post(
            f"{sim.url}{API_PREFIX}/events",
            headers={"x-api-key": DEMO_API_KEY},
            json={"service": ["all"], "start_time": format_timestamp(int(START - 600) * 10**9)},
        )
        assert r.status_code == 401
        assert sim.attacks == []


def test_simulate_command_serves_until_ctrl_c() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alerting.cli", "simulate", "--port", "0", "--hours", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop" in line:
                break
        said = "".join(lines)
        url = said.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert f"API key: {DEMO_API_KEY}" in said
        assert "curl " in said
        assert "x-api-key" in said
        r = httpx.post(
            f"{url}{API_PREFIX}/events",
            headers={"x-api-key": DEMO_API_KEY},
            json={"service": ["all"], "start_time": "2000-01-01T00:00:00Z", "limit": 5},
        )
        assert r.status_code == 200
        assert len(r.json()) == 5
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err

"""The service and a backtest agree: polling the DI API every two minutes, restarted now and
then, with events arriving late and repeated across pages, the service delivers exactly
the alerts ``alerting replay`` finds in an export of the same events, field for field.

That is what makes a backtest honest (what it shows is what on-call would have got) and
what "never miss or double an alert" means over a day and a half of real-shaped traffic
and the whole shipped pack, not a hand-made burst.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerting import cli, jsonutil
from alerting.clock import ManualClock
from alerting.simulator.di_api import DIApiServer
from alerting.simulator.traffic.generator import TrafficGenerator
from tests.support.service import API_KEY, Receiver, open_service, write_config

REPO = Path(__file__).resolve().parents[2]
HOUR_NS = 3600 * 10**9
START_NS = 1_780_000_000 * 10**9  # the traffic's first hour
HOURS = 40  # well past the pack's one-day learning periods, so the baselines alert too
POLL_S = 120
RESTART_EVERY = 120  # polls: every four hours


def _traffic() -> list[dict[str, Any]]:
    """Portal-login-heavy traffic with an attack every two hours (seeded)."""
    generator = TrafficGenerator(
        seed=4, users=40, attack_slot_ns=2 * HOUR_NS, attack_anchor_ns=START_NS, mix="portal"
    )
    return generator.generate(START_NS, START_NS + HOURS * HOUR_NS)


def _without_incident(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert less its incident id: the service's own grouping (a backtest opens none)."""
    return {k: v for k, v in alert.items() if k != "incident"}


@pytest.mark.usefixtures("restore_logging")
def test_the_service_delivers_what_the_backtest_finds(tmp_path: Path) -> None:
    events = _traffic()
    export = tmp_path / "export.jsonl"
    export.write_text("".join(jsonutil.dumps(e) + "\n" for e in events), encoding="utf-8")
    end_s = (START_NS + HOURS * HOUR_NS) / 1e9
    # The service starts an hour in and reads from two hours back: every event, live.
    clock = ManualClock(START_NS / 1e9 + 3600)
    with DIApiServer(events, api_key=API_KEY, clock=clock) as api, Receiver() as hook:
        api.faults.ingestion_delay = 120.0  # visible two minutes late: inside the overlap
        api.faults.duplicate_ids = True  # ids repeated across pages
        config = write_config(
            tmp_path,
            base_url=api.url,
            webhook_url=hook.url,
            start_from="2h",
            poll_interval=f"{POLL_S}s",
        )
        text = config.read_text()
        assert "rules: {paths: [rules]}" in text  # the helper's test rules: the pack instead
        config.write_text(
            text.replace("rules: {paths: [rules]}", f"rules: {{paths: [{REPO / 'rules'}]}}")
        )
        service = open_service(config, clock)
        polls = 0
        try:
            while clock.now < end_s + 15 * 60:  # until the last events have shown up
                assert service.poll_once().ok
                service.deliver_until_idle()
                polls += 1
                clock.advance(POLL_S)
                if polls % RESTART_EVERY == 0:  # windows rebuilt from the API, state kept
                    service.close()
                    service = open_service(config, clock)
            clock.advance(3600)  # past any incident's group wait
            service.deliver_until_idle()
        finally:
            service.close()
        delivered = [_without_incident(a) for a in hook.alerts()]

    found = tmp_path / "replay.jsonl"
    code = cli.main(
        ["replay", "--events", str(export), "--rules", str(REPO / "rules"), "--output", str(found), "--jobs", "1"]
    )  # fmt: skip
    assert code == 0
    backtest = [_without_incident(json.loads(line)) for line in found.read_text().splitlines()]

    rules = {a["rule"] for a in backtest}
    assert len(backtest) > 60
    assert len(rules) > 15  # most of the pack: thresholds, sequences, travel, digests
    assert {"failed-login-new-country", "unusual-geoip-login"} <= rules  # baselines too
    by_fingerprint = {a["fingerprint"]: a for a in delivered}
    assert len(by_fingerprint) == len(delivered)  # nothing delivered twice
    assert sorted(by_fingerprint) == sorted(a["fingerprint"] for a in backtest)
    for alert in backtest:
        assert by_fingerprint[alert["fingerprint"]] == alert

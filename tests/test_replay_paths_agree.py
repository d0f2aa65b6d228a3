"""A backtest's fast reader and the service's plain events agree, also on odd input.

``alerting replay`` reads a line's head first, decodes bodies only in the fields the
rules read, often once, at read time; the service builds each event from a parsed API
page. Both must raise the same alerts, byte for byte. The events here are the real
vendor samples (tests/data/real-events/), re-timed and re-assigned to a handful of users
so the pack's aggregations fire, with fields deleted or replaced by values of the wrong
type (null, "", "false", numbers, lists, objects, NUL, markup) the way a broken exporter
or an attacker-chosen value would put them: every path has to treat them alike.

One divergence is left out on purpose: integers beyond 64 bits, which orjson reads as
floats and the projection decoder exactly (DI sends none).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from alerting import jsonutil
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, format_timestamp, parse_timestamp
from alerting.replay import replay_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "real-events"
ODD_VALUES: list[Any] = [
    None, "", "false", "true", 0, 1, -1, 1.5, 2**62, True, False,
    [], {}, ["a", "b"], {"x": 1}, "\u0000", "ñ\u2028<b>*_~`&",
]  # fmt: skip
USERS = ["amy", "bob", "cat", "dan", "eve"]
COUNTRIES = ["US", "FR", "KP", "RU", "BR"]


def _samples() -> list[dict[str, Any]]:
    out = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _spoil(value: Any, rng: random.Random) -> None:
    """Delete or replace some of the fields of ``value``, at every depth."""
    if isinstance(value, dict):
        for key in list(value):
            roll = rng.random()
            if roll < 0.04:
                del value[key]
            elif roll < 0.08:
                value[key] = copy.deepcopy(rng.choice(ODD_VALUES))
            else:
                _spoil(value[key], rng)
    elif isinstance(value, list):
        for item in value:
            _spoil(item, rng)


def _odd_traffic(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    samples = _samples()
    t = 1_780_000_000 * 10**9
    events = []
    for i in range(count):
        event = copy.deepcopy(rng.choice(samples))
        if rng.random() < 0.8:  # a few users, so that bursts, sequences and baselines fire
            if isinstance(event.get("initiated_by"), dict):
                event["initiated_by"]["username"] = rng.choice(USERS)
            event["username"] = rng.choice(USERS)
        if rng.random() < 0.5:
            event["success"] = rng.random() < 0.3
        geoip = event.get("geoip")
        if isinstance(geoip, dict) and rng.random() < 0.5:  # travel and countries
            geoip["latitude"] = rng.uniform(-80, 80)
            geoip["longitude"] = rng.uniform(-170, 170)
            geoip["country_code"] = rng.choice(COUNTRIES)
        _spoil(event, rng)
        t += rng.randrange(0, 20 * 10**9)
        event["timestamp"] = format_timestamp(t)
        event["id"] = f"{i:024x}"
        events.append(event)
    return events  # in time order


@pytest.mark.parametrize("seed", [1, 2])
def test_replay_and_the_services_events_raise_the_same_alerts(tmp_path: Path, seed: int) -> None:
    events = _odd_traffic(seed, 4000)
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    rules = load_rules([ROOT / "rules"])

    backtest: list[str] = []
    replay_file(
        path,
        lambda: Engine(rules),
        on_skip=pytest.fail,
        on_alert=None,
        on_alert_json=backtest.append,
    )

    engine = Engine(rules)  # as the service: each event parsed whole, then evaluated
    live: list[str] = []
    for line in path.read_bytes().splitlines():
        live += [a.to_json() for a in engine.process(Event.from_raw(jsonutil.loads(line)))]
    live += [a.to_json() for a in engine.due(parse_timestamp(events[-1]["timestamp"]))]

    assert len(backtest) > 150
    assert len({json.loads(a)["rule"] for a in backtest}) >= 5
    assert backtest == live
    assert all(stats.errors == 0 for stats in engine.stats.values())

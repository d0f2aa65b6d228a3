"""``alerting export`` against the project's DI simulator server: paging past 10,000
events, a 429 and a 503 mid-export retried, and failures that leave no file behind."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from alerting import cli
from alerting.clock import ManualClock
from alerting.commands.export import run as export
from alerting.errors import AlertingError
from alerting.events import parse_timestamp
from alerting.simulator.di_api import DIApiServer, Faults
from alerting.simulator.di_api.constants import DEMO_API_KEY
from alerting.simulator.traffic import TrafficGenerator

NOW = 1_780_000_000  # 2026-05-28T20:26:40Z, a Thursday: a busy working day
NS = 1_000_000_000
HOUR = 3600 * NS
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def traffic() -> list[dict]:
    """A day and a bit of simulated DI traffic (about 30,000 events, 60 people)."""
    now = NOW * NS
    generator = TrafficGenerator(seed=3, users=60, attack_anchor_ns=now - 30 * HOUR)
    return generator.generate(now - 26 * HOUR, now)


def write_config(directory: Path, url: str, api_key: str = DEMO_API_KEY) -> Path:
    path = directory / "config.yaml"
    path.write_text(
        f"""\
source:
  kind: jumpcloud
  base_url: {url}
  api_key: {api_key}
  max_retries: 3
state: {{path: state/alerting.db}}
rules: {{paths: [{REPO / "rules"}]}}
templates: {{path: {REPO / "templates"}}}
channels: {{out: {{type: console}}}}
routes: [{{channels: [out]}}]
"""
    )
    return path


def in_range(events: list[dict], hours: int) -> list[dict]:
    start = (NOW - hours * 3600) * NS
    return [e for e in events if start <= parse_timestamp(e["timestamp"]) <= NOW * NS]


def test_export_pages_past_ten_thousand_events_through_a_429_and_a_503(
    tmp_path: Path, traffic: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(float(NOW))
    faults = Faults(rate_limit_every=3, retry_after=2, error_every=4)  # 429s and 503s
    with DIApiServer(traffic, clock=clock, faults=faults) as api:
        config = write_config(tmp_path, api.url)
        output = tmp_path / "day.jsonl.gz"
        stderr = io.StringIO()
        assert (
            export(
                config_path=str(config),
                since="24h",
                until=None,
                services=None,
                output=str(output),
                clock=clock,
                progress=stderr,
            )
            == 0
        )
        statuses = [r.status for r in api.requests if r.path.endswith("/events")]
    expected = in_range(traffic, 24)
    assert len(expected) > 20_000  # more than two pages of 10,000
    with gzip.open(output, "rt", encoding="utf-8") as fh:  # real gzip
        written = [json.loads(line) for line in fh]
    assert sorted(e["id"] for e in written) == sorted(e["id"] for e in expected)
    ms = [parse_timestamp(e["timestamp"]) // 1_000_000 for e in written]
    assert ms == sorted(ms)  # the API's order: oldest first, to the millisecond
    assert statuses.count(200) >= 3
    assert 429 in statuses
    assert 503 in statuses
    assert statuses.index(429) > 0
    assert statuses.index(503) > statuses.index(200)
    assert stderr.getvalue() == ""  # no progress line when stderr is not a terminal
    out = capsys.readouterr().out
    assert f"wrote {len(expected):,} events" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "day.jsonl.gz"]


def test_export_services_and_until_narrow_the_range(tmp_path: Path, traffic: list[dict]) -> None:
    clock = ManualClock(float(NOW))
    with DIApiServer(in_range(traffic, 13), clock=clock) as api:
        config = write_config(tmp_path, api.url)
        output = tmp_path / "sso.jsonl"
        export(
            config_path=str(config),
            since="12h",
            until="2h",
            services=["sso"],
            output=str(output),
            clock=clock,
        )
    start, end = (NOW - 12 * 3600) * NS, (NOW - 2 * 3600) * NS
    expected = {
        e["id"]
        for e in traffic
        if e.get("service") == "sso" and start <= parse_timestamp(e["timestamp"]) <= end
    }
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert expected
    assert {e["id"] for e in written} == expected


def test_a_wrong_key_is_one_clear_line_and_leaves_no_file(
    tmp_path: Path, traffic: list[dict], capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(float(NOW))
    with DIApiServer(traffic[:100], clock=clock) as api:
        config = write_config(tmp_path, api.url, api_key="jc_wrong_key_000000000000000000000000")
        code = cli.main(
            ["export", "--config", str(config), "--since", "7d", "--output", "week.jsonl.gz"]
        )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "alerting export: error: JumpCloud rejected the API key (401 Unauthorized): "
        "check source.api_key / JUMPCLOUD_API_KEY"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    assert not Path("week.jsonl.gz").exists()


def test_an_outage_mid_export_stops_with_one_line_and_no_half_written_file(
    tmp_path: Path, traffic: list[dict]
) -> None:
    clock = ManualClock(float(NOW))
    requests = [0]

    def after_the_first_page(_now_ns: int) -> None:
        requests[0] += 1
        if requests[0] == 2:
            api.faults.error_every = 1  # every request from the second page on: 503

    with DIApiServer(traffic, clock=clock, event_feed=after_the_first_page) as api:
        config = write_config(tmp_path, api.url)
        with pytest.raises(AlertingError) as caught:
            export(
                config_path=str(config),
                since="24h",
                until=None,
                services=None,
                output=str(tmp_path / "day.jsonl"),
                clock=clock,
            )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("export stopped, nothing written to ")
    assert "HTTP 503" in message
    assert message.endswith("run it again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_output_to_stdout_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    assert cli.main(["export", "--config", str(config), "--since", "1d", "--output", "-"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--output -: name a file" in err[0]


@pytest.mark.parametrize(
    ("since", "fragment"),
    [("soon", "--since 'soon': use a duration"), ("2026-13-40", "not a time")],
)
def test_a_bad_since_is_one_line_naming_the_flag(
    tmp_path: Path, since: str, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    code = cli.main(["export", "--config", str(config), "--since", since, "--output", "x.jsonl"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert fragment in err[0]

"""``alerting run --dry-run``: a real poll and evaluation, nothing sent, state untouched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from alerting import cli
from alerting.clock import SystemClock
from alerting.simulator.di_api import DIApiServer
from tests.support.service import API_KEY, Receiver, login, write_config


def state_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.usefixtures("restore_logging")
def test_dry_run_sends_nothing_and_leaves_the_state_database_byte_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    first = [login(now - 3000, "bob")]
    with (
        DIApiServer(first, api_key=API_KEY, clock=SystemClock()) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        # A real first run: the state now has a cursor, seen ids and a sent alert.
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        assert len(hook.alerts()) == 1
        # late arrivals inside the overlap: new to the service, so the next poll reads them
        api.add_events([login(now - 120 + i * 20, "alice") for i in range(3)])
        state = tmp_path / "state"
        before = state_files(state)
        capsys.readouterr()

        assert cli.main(["run", "--dry-run", "--config", str(config)]) == 0

        out = capsys.readouterr().out
        assert state_files(state) == before
        assert len(hook.alerts()) == 1  # nothing more reached the webhook
        assert "nothing sent, nothing queued, no cursor moved" in out
        assert "polled " in out
        assert "3 new events, 4 alerts" in out
        lines = [line for line in out.splitlines() if line.startswith("  [")]
        assert len(lines) == 4
        assert all(line.endswith("-> siem") for line in lines)
        assert any(line.startswith("  [critical] test-failed-burst:") for line in lines)
        # The dry run moved nothing: a real run still finds (and sends) the same alerts.
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        assert len(hook.alerts()) == 5


@pytest.mark.usefixtures("restore_logging")
def test_dry_run_before_any_real_run_creates_no_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    with (
        DIApiServer([login(now - 600, "bob")], api_key=API_KEY, clock=SystemClock()) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        assert cli.main(["run", "--dry-run", "--config", str(config)]) == 0
        assert hook.alerts() == []
    out = capsys.readouterr().out
    assert "on empty state (no state yet)" in out
    assert "-> siem" in out
    assert not (tmp_path / "state" / "alerting.db").exists()


def test_dry_run_with_once_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path, base_url="http://127.0.0.1:9", webhook_url="http://127.0.0.1:9/h"
    )
    assert cli.main(["run", "--dry-run", "--once", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["alerting run: error: --dry-run already polls once: drop --once"]

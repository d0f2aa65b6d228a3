"""Silences as data against a running service: add holds back the next matching alert,
expire lets the next one through, list counts what each held back.

The service runs in-process on a ManualClock with the project's DI API server and a real
webhook receiver; ``alerting silence ...`` goes through the real command line and writes
to the same state database the running service reads on every poll.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerting import cli
from alerting.clock import ManualClock
from alerting.notify.silences import iso
from alerting.simulator.di_api import DIApiServer
from alerting.store import Store
from tests.support.service import (
    API_KEY,
    START,
    Receiver,
    login,
    open_service,
    write_config,
)

RULE = "test-failed-login"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _users(hook: Receiver) -> list[str]:
    return [a["group"]["initiated_by.username"] for a in hook.alerts() if a["rule"] == RULE]


def test_silence_add_holds_back_the_next_alert_and_expire_lets_the_next_through(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        DIApiServer([login(START - 600, "alice")], api_key=API_KEY, clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        service = open_service(config, clock)
        try:
            service.poll_once()
            service.deliver_until_idle()
            assert _users(hook) == ["alice"]

            # On-call runs the line the message ended with (until: in the service's time).
            until = iso(START + 3600)
            code, out, err = _cli(
                capsys,
                "silence",
                "add",
                "--rule",
                RULE,
                "--group",
                "initiated_by.username=alice",
                "--until",
                until,
                "--reason",
                "pen test SEC-42",
                "--config",  # global options work after the command too
                str(config),
                "--owner",
                "bob",
            )
            assert code == 0, err
            silence_id = out.strip()
            assert silence_id.isdigit()
            assert f"alerting silence expire {silence_id}" in err

            # The running service applies it from its next poll: alice is held, bob is not.
            clock.advance(120)
            api.add_events([login(clock.time() - 200, "alice"), login(clock.time() - 190, "bob")])
            service.poll_once()
            service.deliver_until_idle()
            assert _users(hook) == ["alice", "bob"]

            code, out, _ = _cli(capsys, "--config", str(config), "silence", "list")
            assert code == 0
            row = next(line for line in out.splitlines() if line.startswith(silence_id + " "))
            assert row.split()[:5] == [silence_id, "cli", "active", until, "1"]  # held 1
            assert "bob" in row
            assert "pen test SEC-42" in row
            assert f"{RULE} initiated_by.username=alice" in row

            code, out, _ = _cli(capsys, "silence", "expire", silence_id, "--config", str(config))
            assert code == 0
            assert f"silence {silence_id} expired" in out
            clock.advance(120)
            api.add_events([login(clock.time() - 100, "alice")])
            service.poll_once()
            service.deliver_until_idle()
            assert _users(hook) == ["alice", "bob", "alice"]  # the next one went through

            code, _, err = _cli(capsys, "silence", "expire", silence_id, "--config", str(config))
            assert code == 1
            assert f"silence {silence_id} already ended" in err
            assert "Traceback" not in err
        finally:
            service.close()


def test_config_silences_are_listed_as_such_with_their_count(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        DIApiServer([login(START - 600, "svc-scan")], api_key=API_KEY, clock=clock) as api,
        Receiver() as hook,
    ):
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        text = config.read_text().replace(
            "routes:",
            "silences:\n"
            "  - match: {rule: test-failed-*, group: {initiated_by.username: svc-*}}\n"
            f"    until: {iso(START + 86400)}\n"
            "    reason: scanner account\n"
            "    owner: carol\n"
            "routes:",
        )
        config.write_text(text)
        service = open_service(config, clock)
        try:
            service.poll_once()
            service.deliver_until_idle()
        finally:
            service.close()
        assert hook.alerts() == []
    code, out, _ = _cli(capsys, "silence", "list", "--config", str(config))
    assert code == 0
    [row] = [line for line in out.splitlines() if "carol" in line]
    line = config.read_text().splitlines().index("silences:") + 2
    assert row.split()[:5] == ["-", f"config.yaml:{line}", "active", iso(START + 86400), "1"]


def test_silence_add_rejects_what_would_hold_nothing_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, base_url="http://127.0.0.1:9", webhook_url="http://x")
    base = ["silence", "add", "--config", str(config), "--reason", "r", "--owner", "o"]
    cases = {
        ("--rule", "test-faild-login", "--for", "1h"): "did you mean 'test-failed-login'",
        ("--rule", RULE, "--group", "user=alice", "--for", "1h"): "groups by initiated_by.username",
        ("--rule", RULE, "--group", "alice", "--for", "1h"): "write KEY=VALUE",
        ("--rule", RULE, "--for", "6M"): "180d",
        ("--rule", RULE, "--until", "2020-01-01T00:00:00Z"): "in the past",
        ("--rule", RULE, "--until", "2030-01-01T00:00:00"): "needs a time zone",
    }
    for extra, message in cases.items():
        code, out, err = _cli(capsys, *base, *extra)
        assert code == 1, extra
        assert message in err, (extra, err)
        assert len(err.strip().splitlines()) == 1
        assert out == ""
    # Nothing was stored by the refused commands.
    assert (
        not (tmp_path / "state" / "alerting.db").exists()
        or not Store(tmp_path / "state" / "alerting.db").silences()
    )


def test_a_database_from_before_silences_upgrades_in_place_and_keeps_its_state(
    tmp_path: Path,
) -> None:
    db = tmp_path / "alerting.db"
    store = Store(db)
    store.set_cursor("jumpcloud", 123, 1.0)
    store.close()
    # What a database written before silences existed looks like (the silence tables are
    # additive: no schema version of their own).
    conn = sqlite3.connect(db)
    conn.executescript("DROP TABLE silences; DROP TABLE silence_holds;")
    conn.close()

    store = Store(db)
    try:
        assert store.get_cursor("jumpcloud") == 123
        silence_id = store.add_silence(
            rule="r", match_group="{}", until=10.0, reason="x", owner="y", now=1.0
        )
        assert [s.id for s in store.silences(since=5.0)] == [silence_id]
        assert store.silences(since=10.0) == []
        assert store.expire_silence(silence_id, 2.0)
        assert store.silences(since=5.0) == []
    finally:
        store.close()

"""The durable outbox: restarts, local channels, and `alerting outbox list|retry`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from alerting import cli
from alerting.clock import ManualClock
from alerting.commands.outbox import list_command, retry_command
from alerting.errors import AlertingError
from alerting.notify.channels.file import FileSender
from alerting.store import Store
from tests.support.notify import START, closed_port, delivery, make_alert, make_notifier, states


class Crash(BaseException):
    """Stands in for the process dying mid-send (not an Exception: nothing catches it)."""


def test_restart_mid_delivery_delivers_what_was_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, out = tmp_path / "state.db", tmp_path / "alerts.jsonl"
    channels = {"file": {"type": "file", "path": str(out)}}
    alerts = [make_alert(username=f"u{i}") for i in range(3)]
    clock = ManualClock(START)
    first_store = Store(db)
    first = make_notifier(first_store, clock, channels)
    first.enqueue(alerts)

    real_send = FileSender.send
    calls = {"n": 0}

    def crash_on_second(self: FileSender, batch: Any, incident: Any = None) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        real_send(self, batch, incident)

    monkeypatch.setattr(FileSender, "send", crash_on_second)
    with pytest.raises(Crash):
        first.deliver_due()
    first_store.close()
    monkeypatch.setattr(FileSender, "send", real_send)

    second_store = Store(db)
    assert states(second_store) == {"pending": 2, "sent": 1, "dead": 0, "held": 0}
    second = make_notifier(second_store, clock, channels)
    assert second.deliver_due().sent == 2
    assert states(second_store) == {"pending": 0, "sent": 3, "dead": 0, "held": 0}
    written = [json.loads(line)["fingerprint"] for line in out.read_text().splitlines()]
    assert sorted(written) == sorted(a.fingerprint for a in alerts)
    second_store.close()


def test_file_channel_appends_one_alert_per_line(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    out = tmp_path / "sub" / "alerts.jsonl"
    notifier = make_notifier(
        store,
        clock,
        {"file": {"type": "file", "path": str(out)}},
        delivery_config=delivery(group_wait="10s"),
    )
    alerts = [make_alert(username=f"u{i}") for i in range(3)]
    notifier.enqueue(alerts[:2])
    notifier.deliver_due()
    notifier.enqueue(alerts[2:])
    notifier.deliver_due()
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [a.to_dict() for a in alerts]


def test_file_channel_unwritable_path_dead_letters(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    notifier = make_notifier(
        store, clock, {"file": {"type": "file", "path": str(tmp_path / "dir.jsonl")}}
    )
    notifier.enqueue([make_alert()])
    assert notifier.deliver_due().dead == 1


def test_console_channel_colours_only_on_request(store: Store, clock: ManualClock) -> None:
    stream = io.StringIO()
    notifier = make_notifier(
        store, clock, {"tty": {"type": "console", "color": "always"}}, stdout=stream
    )
    notifier.enqueue([make_alert(username="eve\x1b[2Jx")])
    notifier.deliver_due()
    text = stream.getvalue()
    assert text.startswith("\x1b[31m[HIGH] Failed login burst")
    assert "\x1b[2J" not in text
    assert "eve\\x1b[2Jx" in text
    plain = io.StringIO()  # color: auto on a non-terminal
    other = make_notifier(store, clock, {"out": {"type": "console"}}, stdout=plain)
    other.enqueue([make_alert()])
    other.deliver_due()
    assert "\x1b" not in plain.getvalue()


def test_delivery_to_a_channel_no_longer_configured_is_dead_not_lost(
    store: Store, clock: ManualClock
) -> None:
    make_notifier(store, clock, {"gone": {"type": "console"}}).enqueue([make_alert()])
    # Restarted with a config where the channel was removed.
    notifier = make_notifier(store, clock, {"other": {"type": "console"}})
    assert notifier.deliver_due().dead == 1
    (row,) = store.list_deliveries(("dead",))
    assert row.last_error == "channel 'gone' is not configured"


# ---------------------------------------------------------------------------- CLI


def _config(tmp_path: Path, port: int) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "source: {kind: simulator}\n"
        "state: {path: state/alerting.db}\n"
        "channels:\n"
        f"  siem: {{type: webhook, url: 'http://127.0.0.1:{port}/hook'}}\n"
        "routes:\n"
        "  - {channels: [siem]}\n"
    )
    return cfg


def _outbox(cfg: Path, *args: str) -> int:
    return cli.main(["outbox", "--config", str(cfg), *args])


def _fill(tmp_path: Path, port: int) -> tuple[int, int]:
    """One dead delivery (refused, max_attempts 1) and one pending: their ids."""
    db = Store(tmp_path / "state" / "alerting.db")
    clock = ManualClock(START)
    channels = {"siem": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}}
    notifier = make_notifier(db, clock, channels, delivery_config=delivery(max_attempts=1))
    notifier.enqueue([make_alert(rule="dead-rule")])
    notifier.deliver_due()
    notifier.enqueue([make_alert(rule="waiting-rule")])
    notifier.close()
    ids = {d.rule: d.id for d in db.list_deliveries(("pending", "dead"))}
    db.close()
    return ids["dead-rule"], ids["waiting-rule"]


def test_outbox_list_shows_pending_and_dead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    cfg = _config(tmp_path, port)
    assert _outbox(cfg, "list") == 0
    db_path = tmp_path / "state" / "alerting.db"
    assert capsys.readouterr().out == f"outbox is empty: no state database at {db_path} yet\n"
    assert not db_path.exists()
    Store(db_path).close()
    assert _outbox(cfg, "list") == 0
    assert capsys.readouterr().out == "outbox is empty: nothing pending, nothing dead-lettered\n"
    dead_id, pending_id = _fill(tmp_path, port)
    assert _outbox(cfg, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "CHANNEL",
        "RULE",
        "ATTEMPTS",
        "NEXT",
        "ATTEMPT",
        "LAST",
        "ERROR",
    ]
    dead = lines[1].split()
    assert dead[:6] == [str(dead_id), "dead", "siem", "dead-rule", "1", "-"]
    assert "cannot reach webhook" in lines[1]
    pending = lines[2].split()
    assert pending[:5] == [str(pending_id), "pending", "siem", "waiting-rule", "0"]
    assert "2027-01-15 08:00:00Z" in lines[2]  # START as UTC: the time it is due
    assert lines[3].startswith("1 pending, 1 dead")


def test_outbox_retry_requeues_dead_and_reports_unknown_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    cfg = _config(tmp_path, port)
    dead_id, _ = _fill(tmp_path, port)
    assert _outbox(cfg, "retry", "999") == 1
    err = capsys.readouterr().err
    assert "no delivery with id 999" in err
    assert "Traceback" not in err
    assert _outbox(cfg, "retry", str(dead_id)) == 0
    assert f"re-queued delivery {dead_id} (siem, rule dead-rule)" in capsys.readouterr().out
    db = Store(tmp_path / "state" / "alerting.db")
    assert db.outbox_counts() == {"pending": 2, "sent": 0, "dead": 0, "held": 0}
    (row,) = [d for d in db.list_deliveries(("pending",)) if d.id == dead_id]
    assert row.attempts == 0
    db.close()
    assert _outbox(cfg, "retry") == 0
    assert capsys.readouterr().out == "nothing to retry: no dead-lettered deliveries\n"


def test_outbox_retry_all_dead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    cfg = _config(tmp_path, port)
    dead_id, _ = _fill(tmp_path, port)
    assert _outbox(cfg, "retry") == 0
    out = capsys.readouterr().out
    assert f"re-queued delivery {dead_id} (siem, rule dead-rule)" in out
    assert "re-queued 1 dead deliveries" in out


def test_outbox_bad_config_is_one_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _outbox(tmp_path / "missing.yaml", "list") == 1
    err = capsys.readouterr().err
    assert "config file not found" in err
    assert "Traceback" not in err


def test_outbox_retry_refuses_a_sent_delivery(tmp_path: Path) -> None:
    db = Store(tmp_path / "state.db")
    alert = make_alert()
    assert db.enqueue_alert(alert.fingerprint, alert.rule, alert.to_json(), ["siem"], START)
    (row,) = db.list_deliveries(("pending",))
    db.mark_sent(row.id, START)
    with pytest.raises(AlertingError, match=f"delivery {row.id} was already sent"):
        retry_command(db, row.id, ManualClock(START), io.StringIO())
    assert db.outbox_counts() == {"pending": 0, "sent": 1, "dead": 0, "held": 0}
    db.close()


def test_outbox_lists_held_alerts_and_refuses_to_retry_them(tmp_path: Path) -> None:
    db = Store(tmp_path / "state.db")
    alert = make_alert(severity="medium")
    assert db.enqueue_alert(alert.fingerprint, alert.rule, alert.to_json(), ["oncall"], START)
    (row,) = db.list_deliveries(("pending",))
    db.mark_held(row.id, START, "held: incident inc-1 already sent a higher-severity alert")
    out = io.StringIO()
    list_command(db, out)
    assert out.getvalue() == (
        "outbox is empty: nothing pending, nothing dead-lettered; "
        "1 held (an incident's higher-severity message covered them)\n"
    )
    with pytest.raises(AlertingError, match=f"delivery {row.id} was held: held: incident inc-1"):
        retry_command(db, row.id, ManualClock(START), io.StringIO())
    assert db.outbox_counts() == {"pending": 0, "sent": 0, "dead": 0, "held": 1}
    db.close()

"""``run --once`` exits honestly: 0 when everything went out, 3 when a delivery of the run
was dead-lettered (cron monitors the exit code), 1 when the poll failed; and every alert
raised and every delivery outcome has an INFO (or louder) log line."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerting import cli
from alerting.clock import SystemClock
from alerting.service.app import EXIT_DEAD_LETTERED
from alerting.simulator.di_api import DIApiServer
from tests.support.service import API_KEY, Receiver, login, write_config


class Refusing:
    """A webhook receiver that answers every POST with 410 Gone (a permanent error)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(410)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Refusing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


@pytest.mark.usefixtures("restore_logging")
def test_once_exits_3_when_a_delivery_was_dead_lettered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [login(time.time() - 600, "alice")]
    with DIApiServer(events, api_key=API_KEY, clock=SystemClock()) as api, Refusing() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        assert cli.main(["run", "--once", "--config", str(config)]) == EXIT_DEAD_LETTERED == 3
        # A second run has nothing new to deliver: the dead letter is not this run's.
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
    records = _json_lines(capsys.readouterr().err)
    dead = [r for r in records if "dead-lettered" in r["message"]]
    assert any(r["level"] == "error" and "delivery" in r["message"] for r in dead)
    assert any("`alerting outbox list`" in r["message"] for r in dead)
    raised = [r for r in records if r["message"] == "alert raised"]
    assert [(r["rule"], r["group"], r["channels"], r["level"]) for r in raised] == [
        ("test-failed-login", {"initiated_by.username": "alice"}, ["siem"], "info")
    ]
    assert raised[0]["fingerprint"]


@pytest.mark.usefixtures("restore_logging")
def test_once_exits_0_and_logs_each_alert_and_each_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    events = [login(now - 600, "alice"), login(now - 500, "bob")]
    with DIApiServer(events, api_key=API_KEY, clock=SystemClock()) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        assert cli.main(["run", "--once", "--config", str(config)]) == 0
        assert len(hook.alerts()) == 2
    records = _json_lines(capsys.readouterr().err)
    raised = {r["fingerprint"] for r in records if r["message"] == "alert raised"}
    sent = {fp for r in records if r["message"] == "delivery sent" for fp in r["fingerprints"]}
    assert raised == sent == {a["fingerprint"] for a in hook.alerts()}
    assert all(r["level"] == "info" for r in records if r["message"] == "delivery sent")


@pytest.mark.usefixtures("restore_logging")
def test_log_level_flags_override_the_config_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [login(time.time() - 600, "alice")]
    with DIApiServer(events, api_key=API_KEY, clock=SystemClock()) as api, Receiver() as hook:
        config = write_config(tmp_path, base_url=api.url, webhook_url=hook.url)
        assert cli.main(["-q", "run", "--once", "--config", str(config)]) == 0
        quiet = _json_lines(capsys.readouterr().err)
        assert quiet == []  # nothing at warning or above went wrong
        api.add_events([login(time.time() - 300, "bob")])
        assert cli.main(["run", "--once", "--config", str(config), "--log-level", "debug"]) == 0
        loud = _json_lines(capsys.readouterr().err)
        assert any(r["level"] == "debug" for r in loud)
        assert len(hook.alerts()) == 2

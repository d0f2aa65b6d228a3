"""What the service tests share: two rules, DI login events, a config on the local fake
DI API, a webhook receiver, the alerts one uninterrupted pass raises, and ``alerting run``
as a child process with its output collected as it comes."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event, format_timestamp, sort_key
from alerting.service import Service

API_KEY = "jc_test_key_for_the_service_0123456789ab"
WEBHOOK_SECRET = "whsec_test_5ecret_value"
NS = 1_000_000_000
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z, the ManualClock's start

FAILED_LOGIN_RULE = """\
id: test-failed-login
title: Failed login
severity: high
detection:
  failed:
    event_type: user_login_attempt
    success: false
  condition: failed
by: [initiated_by.username]
"""
FAILED_BURST_RULE = """\
id: test-failed-burst
title: Burst of failed logins
severity: critical
detection:
  failed:
    event_type: user_login_attempt
    success: false
  condition: failed
threshold: {count: 3, within: 10m, by: [initiated_by.username]}
"""


def write_rules(directory: Path) -> Path:
    rules = directory / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "failed-login.yml").write_text(FAILED_LOGIN_RULE)
    (rules / "failed-burst.yml").write_text(FAILED_BURST_RULE)
    return rules


_ids = iter(range(1, 10**9))


def login(at: float, user: str, *, success: bool = False) -> dict[str, Any]:
    """A directory login event as DI returns it, at epoch seconds ``at``."""
    n = next(_ids)
    return {
        "id": f"{0x6500_0000 + n:08x}{n:016x}",
        "timestamp": format_timestamp(round(at * NS)),
        "event_type": "user_login_attempt",
        "service": "directory",
        "organization": "5f0c0c0c0c0c0c0c0c0c0c0c",
        "success": success,
        "mfa": True,
        "client_ip": "203.0.113.7",
        "initiated_by": {"type": "user", "username": user, "id": f"u-{user}"},
        "geoip": {"country_code": "DE"},
    }


def expected_fingerprints(rules_dir: Path, events: list[dict[str, Any]]) -> set[str]:
    """What one uninterrupted pass of the engine over all events raises."""
    engine = Engine(load_rules([rules_dir]))
    parsed = sorted((Event.from_raw(e) for e in events), key=sort_key)
    return {a.fingerprint for a in engine.process_many(parsed)}


def write_config(
    directory: Path,
    *,
    base_url: str,
    webhook_url: str,
    api_key: str = API_KEY,
    poll_interval: str = "60s",
    lag: str = "0s",
    overlap: str = "5m",
    start_from: str = "1h",
    max_retries: int = 1,
    delivery_interval: str = "1s",
    health_max_age: str | None = None,
) -> Path:
    write_rules(directory)
    text = f"""\
source:
  kind: jumpcloud
  base_url: {base_url}
  api_key: {api_key}
  poll_interval: {poll_interval}
  lag: {lag}
  overlap: {overlap}
  start_from: {start_from}
  max_retries: {max_retries}
  timeout: 5s
state: {{path: state/alerting.db}}
rules: {{paths: [rules]}}
templates: {{path: {Path(__file__).resolve().parents[2] / "templates"}}}
channels:
  siem: {{type: webhook, url: "{webhook_url}", secret: {WEBHOOK_SECRET}}}
routes:
  - channels: [siem]
delivery: {{max_attempts: 5, initial_backoff: 1s, max_backoff: 2s, interval: {delivery_interval}}}
server:
  listen: 127.0.0.1:0
{f"  health_max_age: {health_max_age}" if health_max_age else ""}
logging: {{level: info, format: json}}
"""
    path = directory / "config.yaml"
    path.write_text(text)
    return path


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every POST.

    With ``block_first``, the first request is held (no answer) until ``release`` is set,
    so a test can kill the sender between its send and its "sent" mark.
    """

    def __init__(self, *, block_first: bool = False) -> None:
        self.bodies: list[bytes] = []
        self.signatures: list[str | None] = []
        self.block_first = block_first
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    first = not receiver.bodies
                    receiver.bodies.append(body)
                    receiver.signatures.append(self.headers.get("X-Alerting-Signature"))
                if first and receiver.block_first:
                    receiver.first_arrived.set()
                    receiver.release.wait(30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender was killed while we held its request

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(b) for b in self.bodies]

    def fingerprints(self) -> list[str]:
        return [a["fingerprint"] for a in self.alerts()]

    def verify_signatures(self, secret: str = WEBHOOK_SECRET) -> None:
        with self._lock:
            pairs = list(zip(self.bodies, self.signatures, strict=True))
        for body, signature in pairs:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert signature == f"sha256={digest}"


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, series: str) -> float:
    """The value of one exact series (``name`` or ``name{label="v"}``) in /metrics text."""
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
    raise AssertionError(f"{series} not in /metrics")


def open_service(config_path: Path, clock: ManualClock) -> Service:
    """The service from a config file, opened in-process on the test's clock."""
    service = Service.from_config(load_config(config_path), clock=clock)
    service.open()
    return service


def run_alerting(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``alerting run`` as a child process in the config's directory (no stray failpoint)."""
    child_env = {k: v for k, v in os.environ.items() if k != "ALERTING_FAILPOINT"}
    child_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "alerting.cli", "run", "--config", str(config), *args],
        cwd=config.parent,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """Collects a child's output lines in a thread as they come, so a test can wait for one."""

    def __init__(self, pipe: IO[str] | None) -> None:
        assert pipe is not None
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log records so far."""
        return [json.loads(line) for line in list(self.lines) if line.startswith("{")]

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            time.sleep(0.05)
        return None

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        self.join(5)
        return "".join(self.lines)

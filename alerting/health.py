"""``GET /healthz`` and ``GET /metrics`` on a small loopback HTTP server.

Health means "detection is working": the last successful poll is younger than
``max_age`` seconds. Before the first poll the service reports ``starting`` (200) for a
grace period of ``max_age``. A source error that retrying cannot fix (a rejected API key,
a plan without Directory Insights) turns health red at once, because it needs a person;
a transient outage only does once polls have been failing for longer than ``max_age``,
so one 503 from the API does not page anyone. So does a fault of the state database
(disk full, read-only, locked, corrupt...): the reason names the file and the cause.
The JSON body always says why.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerting import jsonutil
from alerting.clock import Clock
from alerting.config import parse_listen
from alerting.durations import NS
from alerting.errors import AlertingError
from alerting.events import format_timestamp
from alerting.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)


def _parse_listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise AlertingError(f"server.{exc} (port 0 = any free port)") from None


def _iso(ts: float) -> str:
    return format_timestamp(int(ts) * NS)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What ``/healthz`` answers: an HTTP status and a JSON body."""

    status_code: int
    body: dict[str, Any]

    @property
    def healthy(self) -> bool:
        return self.status_code == 200


class Health:
    """Thread-safe record of poll outcomes; ``report()`` turns it into a verdict."""

    def __init__(self, clock: Clock, max_age_s: float, grace_s: float | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.max_age_s = max_age_s
        self.grace_s = max_age_s if grace_s is None else grace_s
        self._started = clock.time()
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._fatal = False
        self._stopping = False
        self._storage_fault: Callable[[], str | None] = lambda: None

    def track_storage(self, fault: Callable[[], str | None]) -> None:
        """Ask ``fault`` at every report: a state database fault turns health red at once
        (alerts cannot be queued, the cursor cannot move) until a write works again."""
        self._storage_fault = fault

    def poll_succeeded(self) -> None:
        with self._lock:
            self._last_success = self._clock.time()
            self._last_error = None
            self._fatal = False

    def poll_failed(self, message: str, *, fatal: bool) -> None:
        """Record a failed poll; ``fatal`` = it will keep failing until someone acts."""
        with self._lock:
            self._last_error = message
            self._fatal = fatal

    def stopping(self) -> None:
        with self._lock:
            self._stopping = True

    def report(self) -> HealthReport:
        with self._lock:
            now = self._clock.time()
            body: dict[str, Any] = {"max_age_seconds": self.max_age_s}
            if self._last_success is not None:
                age = max(0.0, now - self._last_success)
                body["last_poll_success"] = _iso(self._last_success)
                body["age_seconds"] = round(age, 3)
            if self._last_error is not None:
                body["last_error"] = self._last_error
            if self._stopping:
                return HealthReport(
                    503, {"status": "stopping", "reason": "the service is shutting down", **body}
                )
            storage = self._storage_fault()
            if storage is not None:
                return HealthReport(503, {"status": "error", "reason": storage, **body})
            if self._fatal and self._last_error is not None:
                return HealthReport(503, {"status": "error", "reason": self._last_error, **body})
            if self._last_success is None:
                uptime = now - self._started
                if uptime <= self.grace_s:
                    return HealthReport(
                        200, {"status": "starting", "uptime_seconds": round(uptime, 3), **body}
                    )
                reason = f"no successful poll since the start {uptime:.0f}s ago"
                if self._last_error:
                    reason += f"; last error: {self._last_error}"
                return HealthReport(503, {"status": "stale", "reason": reason, **body})
            age = now - self._last_success
            if age <= self.max_age_s:
                return HealthReport(200, {"status": "ok", **body})
            reason = f"last successful poll was {age:.0f}s ago (max {self.max_age_s:g}s)"
            if self._last_error:
                reason += f"; last error: {self._last_error}"
            return HealthReport(503, {"status": "stale", "reason": reason, **body})


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "jc-alerting"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                report = self.server.health.report()
                body = jsonutil.dumps(report.body).encode() + b"\n"
                self._send(report.status_code, "application/json", body, send_body)
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE, self.server.metrics.exposition(), send_body)
            else:
                self._send(
                    404,
                    "text/plain; charset=utf-8",
                    b"not found: try /healthz or /metrics\n",
                    send_body,
                )
        except Exception:
            log.exception("health server: error answering %s", path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n", send_body)

    def _send(self, code: int, ctype: str, body: bytes, send_body: bool) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the poll lines; stay quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], health: Health, metrics: Metrics) -> None:
        self.health = health
        self.metrics = metrics
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


class HealthServer:
    """Serves ``/healthz`` and ``/metrics`` from a daemon thread until ``stop()``."""

    def __init__(self, listen: str, health: Health, metrics: Metrics) -> None:
        host, port = _parse_listen(listen)
        try:
            self._server = _Server((host, port), health, metrics)
        except OSError as exc:
            raise AlertingError(
                f"server.listen {listen}: cannot listen ({exc.strerror or exc}); "
                "set server.listen to a free port (e.g. 127.0.0.1:0 for any)"
            ) from None
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how fast stop() returns
            name="health-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

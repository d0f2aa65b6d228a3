"""The HTTP side of the DI API: listening, authentication, faults, request records.

``DIApiServer`` owns the socket and the thread, checks the API key (or Bearer token and
``x-org-id``), applies the request faults (forced statuses, rate limits, errors, slow
responses), routes to the endpoints and writes Go-style JSON with the API's headers.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerting.clock import Clock, time_ns
from alerting.errors import AlertingError
from alerting.simulator.di_api.constants import (
    API_PREFIX,
    AUTH_MESSAGES,
    DEMO_API_KEY,
    MAX_BODY,
    MAX_RECORDED,
    RETENTION_DAYS,
    SERVICES,
    STATUS_MESSAGES,
)
from alerting.simulator.di_api.endpoints import Endpoints, Response
from alerting.simulator.di_api.faults import Faults
from alerting.simulator.di_api.index import EventIndex
from alerting.simulator.di_api.query import BadRequest

# the package's name, as before the split: log levels and filters set on it still apply
log = logging.getLogger("alerting.simulator.di_api")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the server received it, and the status it answered."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    request_id: str

    def header(self, name: str) -> str | None:
        """The first value of a header, case-insensitively."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def json(self) -> Any:
        return json.loads(self.body)


def go_json(obj: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: DIApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is normal (timeouts): no traceback on stderr."""
        log.debug("DI API simulator: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls
    server: _HTTPServer
    server_version = "jc-alerting-di-simulator"
    sys_version = ""

    def do_POST(self) -> None:
        self.server.api._handle(self)

    def do_GET(self) -> None:
        self.server.api._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("di-api %s", format % args)


class DIApiServer(Endpoints):
    """The DI API on 127.0.0.1, serving the events it is given.

    Thread-safe: ``add_events`` and ``faults`` may be changed while requests are served.
    ``requests`` records each request (path, headers, body, status) for assertions; only
    the newest ``MAX_RECORDED`` are kept.
    """

    def __init__(
        self,
        events: Iterable[dict[str, Any]] = (),
        *,
        api_key: str = DEMO_API_KEY,
        clock: Clock,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        org_id: str | None = None,
        services: Sequence[str] = SERVICES,
        retention_days: float = RETENTION_DAYS,
        event_feed: Callable[[int], None] | None = None,
    ) -> None:
        self.api_key = api_key
        self.clock = clock
        self.faults = faults if faults is not None else Faults()
        self.host = host
        self.port = port
        self.org_id = org_id
        self.services = tuple(services)
        self.retention_days = retention_days
        self.event_feed = event_feed
        self.requests: list[RequestRecord] = []
        self._lock = threading.RLock()
        self._index = EventIndex(self._lock)
        self._request_count = 0
        self._served = 0
        self._malformed = 0
        self._continuations = 0
        self._last_served: Any = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.add_events(events)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8089`` (valid once started)."""
        if self._httpd is None:
            raise RuntimeError("DIApiServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> DIApiServer:
        if self._httpd is not None:
            return self
        try:
            httpd = _HTTPServer((self.host, self.port), _Handler)
        except OSError as exc:
            raise AlertingError(
                f"cannot serve the DI API on {self.host}:{self.port} ({exc.strerror}): "
                "choose another --port (0 = any free port)"
            ) from None
        httpd.api = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
            name="di-api-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` (for the ``simulate`` command)."""
        self.start()
        assert self._thread is not None
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> DIApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ events

    def add_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Add raw events (kept as given); returns how many. Raises on an unusable event."""
        return self._index.add(events)

    def __len__(self) -> int:
        return len(self._index)

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle(self, handler: _Handler) -> None:
        request_id = str(uuid.uuid4())
        path = handler.path.split("?", 1)[0]
        extra: dict[str, str]
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            status, extra = 413, {}
            data = go_json({"message": "request body too large"})
            body = b""
            handler.close_connection = True
        else:
            body = handler.rfile.read(length) if length else b""
            try:
                status, payload, extra = self._respond(handler, path, body)
                data = go_json(payload)
            except Exception:  # a bug (or a feed hook) must not kill the server
                log.exception("DI API simulator failed to answer %s", path)
                status, extra = 500, {}
                data = go_json({"message": STATUS_MESSAGES[500]})
        headers = tuple((k, v) for k, v in handler.headers.items())
        with self._lock:
            if len(self.requests) >= MAX_RECORDED:
                del self.requests[: MAX_RECORDED // 2]
            self.requests.append(
                RequestRecord(handler.command, path, headers, body, status, request_id)
            )
            slow = self.faults.slow_seconds
            trickle = self.faults.trickle_seconds
        if slow > 0:
            self._stopping.wait(slow)  # the one real wait: a slow API
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("X-Request-Id", request_id)
            for key, value in extra.items():
                handler.send_header(key, value)
            handler.end_headers()
            if trickle > 0:
                self._trickle(handler, data, trickle)
            else:
                handler.wfile.write(data)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. its timeout)

    def _trickle(self, handler: _Handler, data: bytes, seconds: float) -> None:
        """Send ``data`` in ~20 pieces spread over ``seconds`` (each read is quick)."""
        pieces = max(1, min(20, len(data)))
        step = -(-len(data) // pieces)
        for offset in range(0, len(data), step):
            handler.wfile.write(data[offset : offset + step])
            handler.wfile.flush()
            if self._stopping.wait(seconds / pieces):
                return

    def _respond(self, handler: _Handler, path: str, body: bytes) -> Response:
        now_ns = time_ns(self.clock)
        if self.event_feed is not None:
            self.event_feed(now_ns)
        with self._lock:
            self._request_count += 1
            n = self._request_count
            faults = self.faults
            forced = faults.fail_next.pop(0) if faults.fail_next else None
        if faults.status is not None:
            return faults.status, {"message": AUTH_MESSAGES.get(faults.status, "error")}, {}
        orgs, auth_error = self._authenticate(handler)
        if auth_error is not None:
            return auth_error
        if forced is not None:
            return self._fault_response(forced)
        if faults.rate_limit_every and n % faults.rate_limit_every == 0:
            return self._fault_response(429)
        if faults.error_every and n % faults.error_every == 0:
            return self._fault_response(faults.error_status)
        if handler.command != "POST":
            return 405, {"message": "Method Not Allowed"}, {"Allow": "POST"}
        endpoint = {
            f"{API_PREFIX}/events": self._events,
            f"{API_PREFIX}/events/count": self._count,
            f"{API_PREFIX}/events/distinct": self._distinct,
            f"{API_PREFIX}/events/interval": self._interval,
        }.get(path.rstrip("/"))
        if endpoint is None:
            return 404, {"message": "Not Found"}, {}
        try:
            try:
                query = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("Invalid/unknown query JSON body") from None
            if not isinstance(query, dict):
                raise BadRequest("Invalid/unknown query JSON body: expected a JSON object")
            return endpoint(query, orgs, now_ns)
        except BadRequest as exc:
            return 400, {"message": str(exc)}, {}

    def _fault_response(self, status: int) -> Response:
        headers: dict[str, str] = {}
        if status == 429 and self.faults.retry_after is not None:
            after = self.faults.retry_after
            headers["Retry-After"] = str(int(after)) if float(after).is_integer() else str(after)
        message = AUTH_MESSAGES.get(status) or STATUS_MESSAGES.get(status, "error")
        return status, {"message": message}, headers

    def _authenticate(self, handler: _Handler) -> tuple[frozenset[str] | None, Response | None]:
        """The org ids to serve (None = all) or the error response."""
        unauthorized: Response = (401, {"message": AUTH_MESSAGES[401]}, {})
        org_ids = frozenset(
            v.strip() for v in (handler.headers.get_all("x-org-id") or []) if v.strip()
        )
        key = handler.headers.get("x-api-key")
        auth = handler.headers.get("Authorization") or ""
        if key is not None:
            if not hmac.compare_digest(key.encode(), self.api_key.encode()):
                return None, unauthorized
        elif auth[:7].lower() == "bearer ":
            if not hmac.compare_digest(auth[7:].strip().encode(), self.api_key.encode()):
                return None, unauthorized
            if not org_ids:
                return None, (
                    400,
                    {"message": "x-org-id header is required with Bearer authentication"},
                    {},
                )
        else:
            return None, unauthorized
        if org_ids:
            return org_ids, None
        return (frozenset({self.org_id}) if self.org_id else None), None

"""A real local HTTP server that speaks the JumpCloud Directory Insights API.

It serves whatever raw events it is given, the way the real API does (reference §6 of
``jumpcloud-di-api.md``): the four POST endpoints under ``/insights/directory/v1``, API key
or Bearer auth with repeated ``x-org-id``, the documented validation messages, paging by
``search_after`` with the ``X-*`` headers, ``fields`` projection, ``search_term`` filters
and a set of injectable faults. The client, the service and the ``simulate`` command are
all tested against it, so it must behave like the API, not like a convenient fake.

Choices where the real API is undocumented (all marked [?] in the reference):

- Time filtering is at millisecond precision, inclusive at both ends (the index stores
  ``timestamp`` as an Elasticsearch ``date``); ``start_time == end_time`` is allowed.
- ``limit`` above 10000 is clamped to 10000; anything that is not a positive integer
  gives the default 1000.
- Empty pages repeat the request's ``search_after`` in ``X-Search_after``, or omit the
  header when the request had none.
- Searching a non-searchable field (``changes``, ``useragent``, ``system_timestamp``) is a
  400 rather than a silent non-match, so a rule author learns about it at once.
- ``/events/distinct`` returns the top 10 buckets (the Elasticsearch ``terms`` default).
"""

from __future__ import annotations

import bisect
import hmac
import itertools
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerting.clock import Clock, time_ns
from alerting.errors import AlertingError, EventError
from alerting.events import Event, parse_timestamp
from alerting.yamlfile import suggest

__all__ = [
    "API_PREFIX",
    "DEMO_API_KEY",
    "SERVICES",
    "DIApiServer",
    "Faults",
    "RequestRecord",
    "parse_faults",
]

log = logging.getLogger(__name__)

API_PREFIX = "/insights/directory/v1"
#: The key the simulator accepts unless told otherwise (40 chars of [A-Za-z0-9_], the
#: shape JumpCloud's own tooling validates).
DEMO_API_KEY = "jcdemo_simulator_key_0123456789abcdefghi"

#: The ``service`` enum of the 2025-11 API spec.
SERVICES: tuple[str, ...] = (
    "alerts",
    "all",
    "directory",
    "ldap",
    "mdm",
    "notifications",
    "object_storage",
    "password_manager",
    "radius",
    "reports",
    "saas_app_management",
    "software",
    "sso",
    "systems",
    "access_management",
    "asset_management",
)

#: Fields every DI event may carry; ``fields`` entries are "known" if their first segment
#: is one of these or appears in a served event.
_BASE_FIELDS = frozenset(
    {
        "id", "timestamp", "event_type", "service", "organization", "@version", "provider",
        "initiated_by", "resource", "changes", "client_ip", "geoip", "useragent", "user_agent",
        "success", "mfa", "mfa_meta", "auth_method", "error_message", "auth_context",
        "correlation", "message_chain", "association", "application", "system",
        "target_resource", "username", "src_ip", "src_geoip", "system_timestamp",
    }
)  # fmt: skip
_NOT_SEARCHABLE = frozenset({"changes", "useragent", "system_timestamp"})

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
RETENTION_DAYS = 90.0
MAX_BODY = 1 << 20
MAX_RECORDED = 10_000  # ``requests`` keeps the newest records (a long ``simulate`` run)
_NS_PER_MS = 1_000_000
_NS = 1_000_000_000

_AUTH_MESSAGES = {
    401: "Unauthorized (Invalid API Key)",
    402: "Directory Insights is not enabled for your organization",
    403: "Forbidden: admin API key required",
}
_STATUS_MESSAGES = {
    429: "Too Many Requests",
    500: "Technical difficulties processing your request",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Faults:
    """Fault injection; everything is off by default and may be changed while serving.

    Counters are per request (``*_every``: the Nth, 2Nth, ... request of any endpoint) or
    per served event (``malformed_every``), so tests are deterministic.
    """

    rate_limit_every: int = 0
    retry_after: float | None = 1.0
    error_every: int = 0
    error_status: int = 503
    fail_next: list[int] = field(default_factory=list)
    slow_seconds: float = 0.0
    ingestion_delay: float = 0.0
    duplicate_ids: bool = False
    malformed_every: int = 0
    status: int | None = None


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


class _BadRequest(Exception):
    """A 400 with the API's ``{"message": ...}`` body."""


# A stored event: (timestamp ms, id, timestamp ns, raw, organization, service)
_Row = tuple[int, str, int, dict[str, Any], Any, Any]


def _row_key(row: _Row) -> tuple[int, str]:
    return (row[0], row[1])


def go_json(obj: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


# ---------------------------------------------------------------------------- field access


def _values_at(obj: Any, parts: Sequence[str]) -> list[Any]:
    """All leaf values at a dotted path; lists along the way fan out (``changes.field``)."""
    nodes = [obj]
    for part in parts:
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and part in node:
                value = node[part]
                if isinstance(value, list):
                    nxt.extend(value)
                else:
                    nxt.append(value)
            elif isinstance(node, list):
                nxt.extend(v[part] for v in node if isinstance(v, dict) and part in v)
        nodes = nxt
        if not nodes:
            break
    return [v for node in nodes for v in (node if isinstance(node, list) else [node])]


def _term_text(value: Any) -> str | None:
    """A value as the lower-cased keyword the index stores; None for null/objects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def _project(raw: dict[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """Keep only the requested (dotted) fields, nested as in the event."""
    out: dict[str, Any] = {}
    for parts in paths:
        node: Any = raw
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            target = out
            for part in parts[:-1]:
                nested = target.get(part)
                if not isinstance(nested, dict):
                    nested = target[part] = {}
                target = nested
            target[parts[-1]] = node
    return out


# ---------------------------------------------------------------------------- search_term

_Predicate = Callable[[dict[str, Any]], bool]
_CONJUNCTIONS = ("and", "or", "not")


def compile_search_term(term: Any) -> _Predicate:
    """Compile a ``search_term`` into a predicate; raises ``_BadRequest`` when invalid."""
    if not isinstance(term, dict) or not term:
        raise _BadRequest("search_term must be an object with an 'and', 'or' or 'not' key")
    preds = [_compile_conjunction(op, value) for op, value in term.items()]
    return lambda raw: all(p(raw) for p in preds)


def _compile_conjunction(op: str, value: Any) -> _Predicate:
    if op not in _CONJUNCTIONS:
        raise _BadRequest(
            f"search_term: unknown operator {op!r}; use one of 'and', 'or', 'not'"
            + suggest(op, _CONJUNCTIONS)
        )
    items = value if isinstance(value, list) else [value]
    criteria: list[_Predicate] = []
    for item in items:
        if not isinstance(item, dict):
            raise _BadRequest(f"search_term.{op}: expected a map or a list of maps")
        for key, expected in item.items():
            if key in _CONJUNCTIONS:
                criteria.append(_compile_conjunction(key, expected))
            else:
                criteria.append(_compile_field(key, expected))
    if op == "and":
        return lambda raw: all(c(raw) for c in criteria)
    if op == "or":
        return lambda raw: any(c(raw) for c in criteria)
    return lambda raw: not any(c(raw) for c in criteria)


def _compile_field(path: str, expected: Any) -> _Predicate:
    parts = tuple(path.split("."))
    if not path or "" in parts:
        raise _BadRequest(f"search_term: invalid field name {path!r}")
    if parts[0] in _NOT_SEARCHABLE:
        raise _BadRequest(f"search_term: field {parts[0]!r} is not searchable")
    wanted_raw = expected if isinstance(expected, list) else [expected]
    wanted = {t for t in (_term_text(v) for v in wanted_raw) if t is not None}
    if not wanted:
        raise _BadRequest(f"search_term: field {path!r} needs a string, number or boolean value")

    def match(raw: dict[str, Any]) -> bool:
        return any(_term_text(v) in wanted for v in _values_at(raw, parts))

    return match


# ---------------------------------------------------------------------------- the server


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


_Response = tuple[int, Any, dict[str, str]]


class DIApiServer:
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
        self._rows: list[_Row] = []
        self._sorted = True
        self._known_fields: set[str] = set(_BASE_FIELDS)
        self._request_count = 0
        self._served = 0
        self._malformed = 0
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
        new: list[_Row] = []
        for raw in events:
            try:
                event = Event.from_raw(raw)
            except EventError as exc:
                raise AlertingError(f"simulator event {raw!r:.120}: {exc}") from None
            ns = event.time_ns
            new.append(
                (ns // _NS_PER_MS, event.id, ns, raw, raw.get("organization"), raw.get("service"))
            )
        if not new:
            return 0
        with self._lock:
            last = _row_key(self._rows[-1]) if self._rows else None
            in_order = all(_row_key(a) <= _row_key(b) for a, b in itertools.pairwise(new))
            if not (in_order and (last is None or last <= _row_key(new[0]))):
                self._sorted = False
            self._rows.extend(new)
            for row in new:
                self._known_fields.update(row[3])
        return len(new)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def _ensure_sorted(self) -> None:
        if not self._sorted:
            self._rows.sort(key=_row_key)
            self._sorted = True

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
                data = go_json({"message": _STATUS_MESSAGES[500]})
        headers = tuple((k, v) for k, v in handler.headers.items())
        with self._lock:
            if len(self.requests) >= MAX_RECORDED:
                del self.requests[: MAX_RECORDED // 2]
            self.requests.append(
                RequestRecord(handler.command, path, headers, body, status, request_id)
            )
            slow = self.faults.slow_seconds
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
            handler.wfile.write(data)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. its timeout)

    def _respond(self, handler: _Handler, path: str, body: bytes) -> _Response:
        now_ns = time_ns(self.clock)
        if self.event_feed is not None:
            self.event_feed(now_ns)
        with self._lock:
            self._request_count += 1
            n = self._request_count
            faults = self.faults
            forced = faults.fail_next.pop(0) if faults.fail_next else None
        if faults.status is not None:
            return faults.status, {"message": _AUTH_MESSAGES.get(faults.status, "error")}, {}
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
                raise _BadRequest("Invalid/unknown query JSON body") from None
            if not isinstance(query, dict):
                raise _BadRequest("Invalid/unknown query JSON body: expected a JSON object")
            return endpoint(query, orgs, now_ns)
        except _BadRequest as exc:
            return 400, {"message": str(exc)}, {}

    def _fault_response(self, status: int) -> _Response:
        headers: dict[str, str] = {}
        if status == 429 and self.faults.retry_after is not None:
            after = self.faults.retry_after
            headers["Retry-After"] = str(int(after)) if float(after).is_integer() else str(after)
        message = _AUTH_MESSAGES.get(status) or _STATUS_MESSAGES.get(status, "error")
        return status, {"message": message}, headers

    def _authenticate(self, handler: _Handler) -> tuple[frozenset[str] | None, _Response | None]:
        """The org ids to serve (None = all) or the error response."""
        unauthorized: _Response = (401, {"message": _AUTH_MESSAGES[401]}, {})
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

    # ------------------------------------------------------------------ query parsing

    def _parse_common(
        self, query: dict[str, Any], now_ns: int
    ) -> tuple[frozenset[str] | None, int, int | None]:
        services = query.get("service")
        if services is None or services == []:
            raise _BadRequest("service is required; supported values: " + ", ".join(self.services))
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise _BadRequest('service must be a list of strings, e.g. ["all"]')
        for name in services:
            if name not in self.services:
                raise _BadRequest(
                    f"unknown service {name!r}{suggest(name, self.services)}; supported values: "
                    + ", ".join(self.services)
                )
        start_text = query.get("start_time")
        if start_text is None or start_text == "":
            raise _BadRequest("start_time is required (RFC 3339, e.g. 2026-01-26T09:00:00Z)")
        start_ns = self._parse_time("start_time", start_text)
        if start_ns > now_ns:
            raise _BadRequest(f"Start Time is in the future {start_text}")
        end_ns: int | None = None
        end_text = query.get("end_time")
        if end_text is not None and end_text != "":
            end_ns = self._parse_time("end_time", end_text)
            if start_ns > end_ns:
                raise _BadRequest(f"Start Time not after End Time {start_text} > {end_text}")
        wanted = None if "all" in services else frozenset(services)
        return wanted, start_ns, end_ns

    @staticmethod
    def _parse_time(name: str, text: Any) -> int:
        if not isinstance(text, str):
            raise _BadRequest(f"invalid {name}: expected an RFC 3339 string")
        try:
            return parse_timestamp(text)
        except ValueError:
            raise _BadRequest(
                f"invalid {name} {text!r}: expected RFC 3339, e.g. 2026-01-26T09:00:00Z"
            ) from None

    @staticmethod
    def _parse_search_after(value: Any) -> tuple[int, str] | None:
        if value is None:
            return None
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[1], str)
            and not isinstance(value[0], bool)
        ):
            first = value[0]
            if isinstance(first, int):
                return first, value[1]
            if isinstance(first, str) and first.strip().lstrip("-").isdigit():
                return int(first), value[1]
        raise _BadRequest(
            'invalid search_after: expected [<epoch ms>, "<id>"] as returned in X-Search_after'
        )

    def _parse_fields(self, value: Any) -> list[tuple[str, ...]] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise _BadRequest("fields must be a non-empty list of known field names")
        with self._lock:
            known = set(self._known_fields)
        paths = [tuple(f.split(".")) for f in value if isinstance(f, str) and f]
        known_paths = [p for p in paths if p[0] in known]
        if not known_paths:
            raise _BadRequest("fields lists no known field: " + ", ".join(str(f) for f in value))
        return known_paths

    @staticmethod
    def _parse_limit(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return DEFAULT_LIMIT
        return min(value, MAX_LIMIT)

    # ------------------------------------------------------------------ selection

    def _select(
        self,
        query: dict[str, Any],
        orgs: frozenset[str] | None,
        now_ns: int,
        *,
        descending: bool = False,
        after: tuple[int, str] | None = None,
    ) -> Iterator[_Row]:
        """Matching rows in API order (``(ms, id)``, reversed for DESC), after ``after``."""
        services, start_ns, end_ns = self._parse_common(query, now_ns)
        term = query.get("search_term")
        predicate = compile_search_term(term) if term is not None else None
        delay_ns = int(self.faults.ingestion_delay * _NS)
        oldest_ns = now_ns - int(self.retention_days * 86400 * _NS)
        start_ms = max(start_ns, oldest_ns) // _NS_PER_MS
        end_ms = None if end_ns is None else end_ns // _NS_PER_MS
        with self._lock:
            self._ensure_sorted()
            rows = self._rows
            lo = bisect.bisect_left(rows, (start_ms, ""), key=_row_key)
            hi = (
                len(rows)
                if end_ms is None
                else bisect.bisect_left(rows, (end_ms + 1, ""), key=_row_key)
            )
            if after is not None:
                if descending:
                    hi = min(hi, bisect.bisect_left(rows, after, key=_row_key))
                else:
                    lo = max(lo, bisect.bisect_right(rows, after, key=_row_key))
            selected = rows[lo:hi] if lo < hi else []
        if descending:
            selected.reverse()
        return self._filter(selected, orgs, services, predicate, delay_ns, now_ns)

    @staticmethod
    def _filter(
        selected: list[_Row],
        orgs: frozenset[str] | None,
        services: frozenset[str] | None,
        predicate: _Predicate | None,
        delay_ns: int,
        now_ns: int,
    ) -> Iterator[_Row]:
        for row in selected:
            if delay_ns and row[2] + delay_ns > now_ns:
                continue  # not ingested yet
            if orgs is not None and row[4] not in orgs:
                continue
            if services is not None and row[5] not in services:
                continue
            if predicate is not None and not predicate(row[3]):
                continue
            yield row

    # ------------------------------------------------------------------ endpoints

    def _events(self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int) -> _Response:
        sort_value = query.get("sort")
        descending = isinstance(sort_value, str) and sort_value.strip().upper() == "DESC"
        limit = self._parse_limit(query.get("limit"))
        after = self._parse_search_after(query.get("search_after"))
        fields = self._parse_fields(query.get("fields"))
        skip = query.get("skip", 0)
        if skip is None:
            skip = 0
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise _BadRequest("skip must be a non-negative integer")
        page: list[_Row] = []
        for row in self._select(query, orgs, now_ns, descending=descending, after=after):
            if skip:
                skip -= 1
                continue
            page.append(row)
            if len(page) >= limit:
                break
        body: list[Any] = [
            _project(row[3], fields) if fields is not None else row[3] for row in page
        ]
        with self._lock:
            faults = self.faults
            if faults.malformed_every:
                for i in range(len(body)):
                    self._served += 1
                    if self._served % faults.malformed_every == 0:
                        body[i] = self._malformed_variant(body[i])
            else:
                self._served += len(body)
            if faults.duplicate_ids and body:
                previous, self._last_served = self._last_served, body[-1]
                if previous is not None:
                    body.insert(0, previous)
        headers = {
            "X-Result-Count": str(len(body)),
            "X-Limit": str(limit),
            "X-Sort": "DESC" if descending else "ASC",
        }
        if page:
            headers["X-Search_after"] = json.dumps(
                [page[-1][0], page[-1][1]], separators=(",", ":")
            )
        elif after is not None:
            headers["X-Search_after"] = json.dumps(list(after), separators=(",", ":"))
        return 200, body, headers

    def _malformed_variant(self, raw: Any) -> Any:
        """Rotate through the malformed shapes real pipelines have produced."""
        self._malformed += 1
        kind = self._malformed % 3
        if kind == 1 and isinstance(raw, dict):
            return {k: v for k, v in raw.items() if k != "timestamp"}
        if kind == 2 and isinstance(raw, dict):
            return {**raw, "timestamp": "not-a-timestamp"}
        return "event could not be serialized"

    def _count(self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int) -> _Response:
        return 200, {"count": sum(1 for _ in self._select(query, orgs, now_ns))}, {}

    def _distinct(
        self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int
    ) -> _Response:
        name = query.get("field")
        if not isinstance(name, str) or not name:
            raise _BadRequest('field is required, e.g. "event_type"')
        parts = tuple(name.split("."))
        counts: Counter[str] = Counter()
        for row in self._select(query, orgs, now_ns):
            for value in {_term_text(v) for v in _values_at(row[3], parts)} - {None}:
                counts[str(value)] += 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ranked[:10]
        return (
            200,
            {
                "buckets": [{"key": k, "doc_count": c} for k, c in top],
                "doc_count_error_upper_bound": 0,
                "sum_other_doc_count": sum(c for _, c in ranked[10:]),
            },
            {},
        )

    def _interval(
        self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int
    ) -> _Response:
        unit = query.get("interval_unit")
        widths = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        if unit not in widths:
            raise _BadRequest("interval_unit is required: one of s, m, h, d, w")
        raw_value = query.get("interval_value", "1")
        try:
            value = int(str(raw_value))
        except ValueError:
            value = 0
        if value <= 0:
            raise _BadRequest(f"invalid interval_value {raw_value!r}: expected a positive integer")
        tz_text = query.get("timezone") or "+0000"
        tz = _parse_tz(tz_text)
        offset = int(tz.utcoffset(None).total_seconds())
        width = widths[unit] * value
        monday = 4 * 86400 if unit == "w" else 0  # 1970-01-05 was a Monday
        counts: Counter[int] = Counter()
        for row in self._select(query, orgs, now_ns):
            local = row[2] // _NS + offset - monday
            counts[(local // width) * width + monday - offset] += 1
        buckets = []
        if counts:
            first, last = min(counts), max(counts)
            for start in range(first, last + 1, width):
                stamp = datetime.fromtimestamp(start, UTC).astimezone(tz)
                buckets.append(
                    {
                        "key": start * 1000,
                        "key_as_string": stamp.isoformat(timespec="milliseconds"),
                        "doc_count": counts.get(start, 0),
                    }
                )
        return 200, {"buckets": buckets}, {}


def _parse_tz(text: Any) -> timezone:
    value = str(text).strip().replace(":", "")
    if value.upper() in ("Z", "UTC"):
        return UTC
    if len(value) == 5 and value[0] in "+-" and value[1:].isdigit():
        minutes = int(value[1:3]) * 60 + int(value[3:])
        return timezone((-1 if value[0] == "-" else 1) * timedelta(minutes=minutes))
    raise _BadRequest(f"invalid timezone {text!r}: expected an offset such as -0500")


# ---------------------------------------------------------------------------- fault names

_FAULT_NAMES = (
    "rate-limit",
    "rate-limit-no-retry-after",
    "errors",
    "slow",
    "ingestion-delay",
    "duplicates",
    "malformed",
    "unauthorized",
    "no-plan",
    "forbidden",
)


def parse_faults(names: Sequence[str]) -> Faults:
    """Faults from command-line names, each optionally ``name=value``.

    Defaults: ``rate-limit`` every 5th request (Retry-After 1 s; ``=N`` sets the period),
    ``errors`` a 503 every 7th request, ``slow`` 1.5 s per response, ``ingestion-delay``
    180 s (longer than the default 2 m lag, shorter than lag + overlap, so the overlap is
    what recovers late events), ``malformed`` every 50th event.
    """
    faults = Faults()
    for spec in names:
        name, _, value = str(spec).strip().partition("=")
        name = name.strip().lower()

        def number(default: float, spec: str = spec, value: str = value) -> float:
            if not value:
                return default
            try:
                result = float(value)
            except ValueError:
                result = -1.0
            if result <= 0:
                raise AlertingError(
                    f"--fault {spec}: the value must be a positive number"
                ) from None
            return result

        if name == "rate-limit":
            faults.rate_limit_every = max(1, int(number(5)))
        elif name == "rate-limit-no-retry-after":
            faults.rate_limit_every = max(1, int(number(5)))
            faults.retry_after = None
        elif name == "errors":
            faults.error_every = max(1, int(number(7)))
            faults.error_status = 503
        elif name == "slow":
            faults.slow_seconds = number(1.5)
        elif name == "ingestion-delay":
            faults.ingestion_delay = number(180)
        elif name == "duplicates":
            faults.duplicate_ids = True
        elif name == "malformed":
            faults.malformed_every = max(1, int(number(50)))
        elif name == "unauthorized":
            faults.status = 401
        elif name == "no-plan":
            faults.status = 402
        elif name == "forbidden":
            faults.status = 403
        else:
            raise AlertingError(
                f"--fault {spec}: unknown fault{suggest(name, _FAULT_NAMES)}; known faults: "
                + ", ".join(_FAULT_NAMES)
            )
    return faults

"""The JumpCloud Directory Insights client and the incremental poller.

``DIClient`` speaks the API: paging by ``search_after``, a token-bucket rate limit and
retries with exponential backoff and full jitter on 429/5xx/network errors, honouring
``Retry-After``. Every wait goes through the injected ``Clock``, so tests never sleep.
Errors retrying cannot fix (401/402/403/400) stop with a one-line message naming the fix.

``Poller`` turns the API into an exactly-once stream (DESIGN §3, reference §5.4): each
poll reads ``[cursor - overlap, now - lag]``, drops ids it has already seen, and only
``commit()`` (inside the caller's store transaction, next to the alerts it enqueues)
moves the cursor. A crash between poll and commit re-reads the window; nothing is lost
and the seen ids keep anything from being processed twice.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from alerting import __version__, jsonutil
from alerting.clock import Clock, time_ns
from alerting.durations import MINUTE_NS, MS, ms_floor
from alerting.errors import AlertingError, EventError, SourceError
from alerting.events import Event, format_timestamp, sort_key
from alerting.netutil import is_loopback_host, retry_after_seconds
from alerting.source.base import PollBatch
from alerting.store import Store

__all__ = [
    "EVENTS_PATH",
    "DIClient",
    "Page",
    "PollBatch",
    "Poller",
    "SourceAuthError",
    "SourceRequestError",
    "SourceUnavailable",
]

log = logging.getLogger(__name__)

EVENTS_PATH = "/insights/directory/v1/events"
COUNT_PATH = "/insights/directory/v1/events/count"
RETRYABLE = frozenset({429, 500, 502, 503, 504})
_HISTORY_WINDOW_NS = 10 * MINUTE_NS  # history() keeps ids at least this long
_HISTORY_SWEEP = 100_000  # ids held before history() forgets the old ones
# A window that reads fewer events than /events/count says is read again this often.
MAX_REREADS = 2


class SourceAuthError(SourceError):
    """401/402/403: the key, the plan or the key's role is wrong; retrying cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SourceRequestError(SourceError):
    """The API refused the query itself (400, 404, ...): a configuration problem."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SourceUnavailable(SourceError):
    """Retries ran out (5xx, 429, network, timeouts); the next poll tries again."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of ``/events``: the raw items as parsed, and the response metadata."""

    events: list[Any]
    request_id: str
    result_count: int
    limit: int
    search_after: list[Any] | None = None


class _TokenBucket:
    """At most ``rate`` requests per second on average, bursts up to ``rate``."""

    def __init__(self, rate: float | None, clock: Clock) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.clock = clock
        self.capacity = max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self.stamp = clock.time()

    def acquire(self) -> None:
        if self.rate is None:
            return
        self._refill(self.rate)
        if self.tokens < 1.0:
            self.clock.sleep((1.0 - self.tokens) / self.rate)
            self._refill(self.rate)
        self.tokens = max(0.0, self.tokens - 1.0)

    def _refill(self, rate: float) -> None:
        """Add the tokens earned since the last look, up to ``capacity``."""
        now = self.clock.time()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now


class DIClient:
    """A Directory Insights API client (one per source; thread-safe enough for one poller).

    ``base_url`` is the region's API root (``https://api.jumpcloud.com``); plain ``http``
    is refused except on loopback, so a key is never sent in the clear.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        bearer_token: str | None = None,
        org_ids: Sequence[str] = (),
        services: Sequence[str] = ("all",),
        page_limit: int = 10000,
        rate_limit: float | None = 10.0,
        timeout: float = 30.0,
        deadline: float | None = None,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(
                f"source.base_url {base_url!r} is not an http(s) URL: use e.g. "
                "https://api.jumpcloud.com"
            )
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise SourceError(
                f"source.base_url {base_url!r} uses plain http: the API key would travel "
                "unencrypted; use https"
            )
        if bool(api_key) == bool(bearer_token):
            raise SourceError(
                "source: set exactly one of source.api_key (JUMPCLOUD_API_KEY) or a bearer "
                "token for the DI API"
            )
        self._org_ids = [o for o in org_ids if o]
        if bearer_token and not self._org_ids:
            raise SourceError(
                "source.org_id is required with bearer-token (service account) authentication"
            )
        if not services:
            raise SourceError("source.services is empty: use [all] or a list such as [sso]")
        self.base_url = base_url.rstrip("/")
        self.services = list(services)
        self.page_limit = page_limit
        self.timeout = timeout
        self.deadline = timeout if deadline is None else deadline
        self._explicit_deadline = deadline is not None
        if self.deadline <= 0:
            raise SourceError("source.request_deadline must be > 0: use e.g. 30s")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock
        self.requests = 0
        self.retries = 0
        self.last_request_id: str | None = None
        self._bearer = bool(bearer_token)
        self._secret = (api_key or bearer_token or "").strip()
        self._random = random.Random(seed)
        self._bucket = _TokenBucket(rate_limit, clock)
        headers: list[tuple[str, str]] = [
            ("User-Agent", f"jc-alerting/{__version__}"),
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ]
        if self._bearer:
            headers.append(("Authorization", f"Bearer {self._secret}"))
        else:
            headers.append(("x-api-key", self._secret))
        headers.extend(("x-org-id", org) for org in self._org_ids)
        # Each phase has the timeout, the whole request the deadline (_Deadline's
        # watchdog); one connection, so the watchdog knows which socket a request uses.
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            verify=True,
            transport=transport,
            follow_redirects=False,
        )
        self._stream: Any = None  # the network stream of the connection in use

    # ------------------------------------------------------------------ public API

    def iter_pages(self, start_ns: int, end_ns: int) -> Iterator[Page]:
        """All events in ``[start, end]``, page by page in API order (ASC)."""
        query: dict[str, Any] = {
            "service": self.services,
            "start_time": format_timestamp(start_ns),
            "end_time": format_timestamp(end_ns),
            "sort": "ASC",
            "limit": self.page_limit,
        }
        search_after: list[Any] | None = None
        while True:
            if search_after is not None:
                query["search_after"] = search_after
            response = self._post(EVENTS_PATH, query)
            request_id = response.headers.get("x-request-id", "?")
            try:
                events = jsonutil.loads(response.content)
            except jsonutil.JSONDecodeError:
                events = None
            if not isinstance(events, list):
                raise SourceUnavailable(
                    f"JumpCloud DI API returned a page that is not a JSON array (request id "
                    f"{request_id}); the next poll retries"
                )
            result_count = _int_header(response, "x-result-count", len(events))
            limit = _int_header(response, "x-limit", self.page_limit)
            next_after = _search_after(response, events)
            yield Page(events, request_id, result_count, limit, next_after)
            if not events or result_count < limit:
                return
            if next_after is None or next_after == search_after:
                raise SourceUnavailable(
                    f"JumpCloud DI API paging did not advance (request id {request_id}); "
                    "the next poll retries"
                )
            search_after = next_after

    def count(self, start_ns: int, end_ns: int) -> int:
        """How many events ``[start, end]`` holds (``/events/count``)."""
        query = {
            "service": self.services,
            "start_time": format_timestamp(start_ns),
            "end_time": format_timestamp(end_ns),
        }
        response = self._post(COUNT_PATH, query)
        try:
            return int(jsonutil.loads(response.content)["count"])
        except (jsonutil.JSONDecodeError, KeyError, TypeError, ValueError):
            raise SourceUnavailable(
                "JumpCloud DI API returned an unreadable count (request id "
                f"{response.headers.get('x-request-id', '?')}); the next poll retries"
            ) from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _post(self, path: str, query: dict[str, Any]) -> httpx.Response:
        """POST with rate limiting and retries; returns a 200 or raises a SourceError."""
        url = self.base_url + path
        body = jsonutil.dumps(query).encode()
        attempt = 0
        while True:
            self._bucket.acquire()
            self.requests += 1
            retry_after: float | None = None
            deadline = _Deadline(self.deadline, self._stream)
            try:
                response = self._send(url, body, deadline)
            except httpx.TransportError as exc:
                if deadline.expired and self._explicit_deadline:
                    failure = (
                        f"no complete response within {self.deadline:g}s (source.request_deadline)"
                    )
                elif deadline.expired or isinstance(exc, httpx.TimeoutException):
                    failure = f"no response within {self.timeout:g}s (timeout)"
                else:
                    failure = f"network error ({type(exc).__name__}: {self._redact(str(exc))})"
            else:
                self.last_request_id = response.headers.get("x-request-id")
                status = response.status_code
                if status == 200:
                    return response
                if status not in RETRYABLE:
                    raise self._fatal(response)
                failure = f"HTTP {status}{self._describe(response)}"
                retry_after = retry_after_seconds(
                    response.headers.get("retry-after"), self.clock.time()
                )
            attempt += 1
            if attempt > self.max_retries:
                raise SourceUnavailable(
                    f"JumpCloud DI API unavailable: {failure} after {attempt} attempts; "
                    "the next poll retries"
                )
            if retry_after is not None and retry_after > self.backoff_max:
                raise SourceUnavailable(
                    f"JumpCloud DI API unavailable: {failure}, asked to wait {retry_after:g}s "
                    f"(more than {self.backoff_max:g}s); the next poll retries"
                )
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            self.retries += 1
            log.warning(
                "DI API %s: %s; retry %d/%d in %.2fs",
                path,
                failure,
                attempt,
                self.max_retries,
                wait,
            )
            self.clock.sleep(wait)

    def _send(self, url: str, body: bytes, deadline: _Deadline) -> httpx.Response:
        """One POST, read whole (connect, headers and body) before the deadline."""
        deadline.start()
        try:
            with self._http.stream(
                "POST", url, content=body, extensions={"trace": deadline.trace}
            ) as response:
                self._stream = response.extensions.get("network_stream", deadline.stream)
                response.read()
        finally:
            deadline.cancel()
        if deadline.expired:  # it fired while the last bytes arrived: not a complete answer
            raise httpx.ReadTimeout("request deadline")
        return response

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(max, base * 2^(n-1)))."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0.0, ceiling)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _api_message(self, response: httpx.Response) -> str:
        try:
            data = jsonutil.loads(response.content)
            message = data.get("message") if isinstance(data, dict) else None
        except jsonutil.JSONDecodeError:
            message = None
        if not isinstance(message, str) or not message:
            message = response.text[:200]
        return self._redact(" ".join(message.split()))

    def _describe(self, response: httpx.Response) -> str:
        message = self._api_message(response)
        rid = response.headers.get("x-request-id")
        parts = [message] if message else []
        if rid:
            parts.append(f"request id {rid}")
        return f" ({'; '.join(parts)})" if parts else ""

    def _fatal(self, response: httpx.Response) -> SourceError:
        status = response.status_code
        rid = response.headers.get("x-request-id", "?")
        if status == 401:
            if self._bearer:
                return SourceAuthError(
                    "JumpCloud rejected the bearer token (401 Unauthorized): check the "
                    "service account credentials and source.org_id",
                    401,
                )
            return SourceAuthError(
                "JumpCloud rejected the API key (401 Unauthorized): check source.api_key / "
                "JUMPCLOUD_API_KEY",
                401,
            )
        if status == 402:
            return SourceAuthError(
                "JumpCloud says Directory Insights is not enabled for this organization "
                "(402 Payment Required): the plan lacks Directory Insights; enable it or use "
                "an organization whose plan includes it",
                402,
            )
        if status == 403:
            return SourceAuthError(
                "JumpCloud refused the key (403 Forbidden): it is not an administrator's API "
                "key (command runner keys get 403); create the key as an administrator",
                403,
            )
        if status == 400:
            return SourceRequestError(
                f"JumpCloud refused the query (400): {self._api_message(response)} "
                f"(request id {rid})",
                400,
            )
        return SourceRequestError(
            f"JumpCloud DI API answered {status} for POST {response.request.url.path}: "
            f"{self._api_message(response)} (request id {rid}); check source.base_url",
            status,
        )


class _Deadline:
    """A whole-request deadline: at expiry it shuts the request's socket down.

    ``httpx`` timeouts bound each connect, write and read, so a server that trickles a
    byte at a time holds a request forever. A timer that shuts the socket makes the
    blocked read return at once, whatever phase it is in. The socket is the one the
    connect trace reports, or for a kept-alive connection the one the last response
    used (the client has one connection).
    """

    def __init__(self, seconds: float, stream: Any) -> None:
        self.seconds = seconds
        self.stream = stream
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: remember the stream of a new connection."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self.stream = info.get("return_value", self.stream)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            stream = self.stream
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: the request is over anyway


def _int_header(response: httpx.Response, name: str, default: int) -> int:
    try:
        return int(response.headers.get(name, ""))
    except ValueError:
        return default


def _search_after(response: httpx.Response, events: list[Any]) -> list[Any] | None:
    """The next page's cursor: ``X-Search_after`` if usable, else the last event's."""
    header = response.headers.get("x-search_after")
    if header:
        try:
            value = jsonutil.loads(header)
        except jsonutil.JSONDecodeError:
            value = None
        if isinstance(value, list) and value:
            return value
    for raw in reversed(events):
        try:
            event = Event.from_raw(raw)
        except EventError:
            continue
        if isinstance(raw.get("id"), str):
            return [event.time_ns // MS, event.id]
    return None


class Poller:
    """Exactly-once incremental reading of the DI API into ``PollBatch``es (DESIGN §3)."""

    def __init__(
        self,
        client: DIClient,
        store: Store,
        *,
        source_name: str,
        lag_ns: int,
        overlap_ns: int,
        start_from_ns: int,
        clock: Clock,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if lag_ns < 0 or overlap_ns < 0 or start_from_ns <= 0:
            raise AlertingError(
                "source.lag and source.overlap must be >= 0 and source.start_from > 0"
            )
        self.client = client
        self.store = store
        self.source_name = source_name
        self.lag_ns = lag_ns
        self.overlap_ns = overlap_ns
        self.start_from_ns = start_from_ns
        self.clock = clock
        self.last_batch: PollBatch | None = None
        self.skip_reason: str | None = None
        self.check_counts = True  # off once the API refuses /events/count (400/404)
        self._on_close = on_close

    @property
    def name(self) -> str:
        return self.source_name

    @property
    def retries(self) -> int:
        return self.client.retries

    @property
    def last_request_id(self) -> str | None:
        return self.client.last_request_id

    def close(self) -> None:
        """Close the client, then whatever serves it (the embedded simulator)."""
        self.client.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()

    def window(self) -> tuple[int, int, int]:
        """(start, end, now) of the next poll, in ns."""
        now = time_ns(self.clock)
        end = now - self.lag_ns
        cursor = self.store.get_cursor(self.source_name)
        start = now - self.start_from_ns if cursor is None else cursor - self.overlap_ns
        return start, end, now

    def poll(self) -> PollBatch | None:
        """Read the next window; None when there is nothing to read yet (start >= end).

        Raises ``SourceUnavailable`` (transient) or another ``SourceError`` (fatal); the
        cursor does not move either way.
        """
        start, end, now = self.window()
        if start >= end:
            self.skip_reason = (
                f"window start {format_timestamp(start)} is not before its end "
                f"{format_timestamp(end)} (now - lag); waiting for the next poll"
            )
            log.info("%s: poll skipped: %s", self.source_name, self.skip_reason)
            return None
        self.skip_reason = None
        requests, retries = self.client.requests, self.client.retries
        batch = PollBatch([], start, end, min(end, now))
        read = self._read_complete(start, end, batch)
        seen = self.store.load_seen(self.source_name, ms_floor(start))
        for event in read:
            if event.id in seen:
                batch.duplicates += 1
                continue
            batch.events.append(event)
        batch.events.sort(key=sort_key)
        batch.requests = self.client.requests - requests
        batch.retries = self.client.retries - retries
        self.last_batch = batch
        log.info(
            "%s: read %d new events in [%s, %s] (%d duplicates, %d skipped, %d requests)",
            self.source_name,
            len(batch.events),
            format_timestamp(start),
            format_timestamp(end),
            batch.duplicates,
            len(batch.skipped),
            batch.requests,
        )
        return batch

    def _read_complete(self, start: int, end: int, batch: PollBatch) -> list[Event]:
        """The window's events, read again while fewer than ``/events/count`` says.

        An empty page before the window's end breaks the API's contract and looks exactly
        like the end of the data; only the count shows it. Re-reads are bounded; after
        them the poll goes on with everything any read returned, and says so.
        """
        events: dict[str, Event] = {}
        request_ids: list[str] = []
        have = expected = 0
        for attempt in range(1 + MAX_REREADS):
            skipped: list[str] = []
            request_ids = []
            ids: set[str] = set()
            batch.duplicates = 0  # an id repeated within the read (e.g. across pages)
            for event in self._read(start, end, skipped, request_ids):
                if event.id in ids:
                    batch.duplicates += 1
                    continue
                ids.add(event.id)
                events.setdefault(event.id, event)
            batch.skipped = skipped
            counted = self._count(start, end)
            if counted is None:
                return list(events.values())
            expected = counted
            have = len(events) + len(skipped)
            if have >= expected:
                return list(events.values())
            if attempt < MAX_REREADS:
                log.info(
                    "%s: read %d of the %d events /events/count reports in [%s, %s]; "
                    "reading the window again",
                    self.source_name,
                    have,
                    expected,
                    format_timestamp(start),
                    format_timestamp(end),
                )
        batch.incomplete = (have, expected)
        shown = ", ".join(request_ids[:5]) + (
            f" and {len(request_ids) - 5} more" if len(request_ids) > 5 else ""
        )
        log.warning(
            "%s: the DI API returned %d events for [%s, %s] but /events/count reports %d, "
            "after %d reads; going on with the %d read, the rest are missing (page request "
            "ids %s; count request id %s)",
            self.source_name,
            have,
            format_timestamp(start),
            format_timestamp(end),
            expected,
            1 + MAX_REREADS,
            have,
            shown or "none",
            self.client.last_request_id or "?",
            extra={"events_read": have, "events_counted": expected},
        )
        return list(events.values())

    def _count(self, start: int, end: int) -> int | None:
        """``/events/count`` for the window; None when the API refuses the check itself."""
        if not self.check_counts:
            return None
        try:
            return self.client.count(start, end)
        except SourceRequestError as exc:
            self.check_counts = False
            log.warning(
                "%s: /events/count is refused (%s); polls go on without the completeness check",
                self.source_name,
                exc,
            )
            return None

    def commit(self, batch: PollBatch) -> None:
        """Advance the cursor and remember the batch's ids, atomically.

        Call it inside the ``store.transaction()`` that also enqueues the batch's alerts.
        """
        with self.store.transaction():
            self.store.set_cursor(self.source_name, batch.cursor_ns, self.clock.time())
            self.store.add_seen(self.source_name, ((e.id, e.time_ns) for e in batch.events))
            self.store.prune_seen(self.source_name, ms_floor(batch.cursor_ns - self.overlap_ns))

    def history(self, start_ns: int, end_ns: int) -> Iterator[Event]:
        """Every event in ``[start, end]`` (rebuilding windows, ``alerting export``), API
        order, no repeats. The API pages oldest first, so a repeat comes within the
        overlap of its first copy: ids older than that are forgotten in sweeps, and a
        week's export holds minutes of ids, not a week's."""
        if start_ns >= end_ns:
            return
        skipped: list[str] = []
        seen: dict[str, int] = {}
        window = max(self.overlap_ns, _HISTORY_WINDOW_NS)
        sweep_at = _HISTORY_SWEEP
        read = 0
        request_ids: list[str] = []
        for event in self._read(start_ns, end_ns, skipped, request_ids):
            if event.id in seen:
                continue
            seen[event.id] = event.time_ns
            read += 1
            if len(seen) >= sweep_at:
                horizon = event.time_ns - window
                seen = {i: t for i, t in seen.items() if t >= horizon}
                sweep_at = max(_HISTORY_SWEEP, 2 * len(seen))
            yield event
        # The events are handed on already (to the engine, to an export's file), so no
        # re-read: say it, never silently.
        counted = self._count(start_ns, end_ns)
        if counted is not None and read + len(skipped) < counted:
            log.warning(
                "%s: reading history (rule windows, or an export) got %d events for [%s, %s] "
                "but /events/count reports %d; it may miss the rest (page request ids "
                "%s; count request id %s)",
                self.source_name,
                read + len(skipped),
                format_timestamp(start_ns),
                format_timestamp(end_ns),
                counted,
                ", ".join(request_ids[:5]) or "none",
                self.client.last_request_id or "?",
            )

    def _read(
        self, start: int, end: int, skipped: list[str], request_ids: list[str]
    ) -> Iterator[Event]:
        for page in self.client.iter_pages(start, end):
            request_ids.append(page.request_id)
            for n, raw in enumerate(page.events, 1):
                try:
                    yield Event.from_raw(raw)
                except EventError as exc:
                    message = f"request {page.request_id}: event #{n}: {exc}"
                    skipped.append(message)
                    log.warning("%s: skipped a malformed event: %s", self.source_name, message)

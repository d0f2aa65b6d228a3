"""The answers of the four POST endpoints: events, count, distinct and interval.

They share one selection (service, time range, retention, ingestion delay, org and
``search_term``) so the four endpoints always agree on which events match; the event
faults (malformed events, duplicate ids) are applied here, on the served page.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from alerting.durations import MS as NS_PER_MS
from alerting.durations import NS
from alerting.simulator.di_api.faults import Faults
from alerting.simulator.di_api.index import EventIndex, Row
from alerting.simulator.di_api.query import (
    BadRequest,
    parse_common,
    parse_fields,
    parse_limit,
    parse_search_after,
    parse_tz,
)
from alerting.simulator.di_api.search import (
    Predicate,
    compile_search_term,
    project,
    term_text,
    values_at,
)

Response = tuple[int, Any, dict[str, str]]


class Endpoints:
    """The endpoint handlers of ``DIApiServer`` (a mixin): query in, ``Response`` out."""

    # set by DIApiServer
    faults: Faults
    services: tuple[str, ...]
    retention_days: float
    _lock: threading.RLock
    _index: EventIndex
    _served: int
    _malformed: int
    _continuations: int
    _last_served: Any

    # ------------------------------------------------------------------ selection

    def _select(
        self,
        query: dict[str, Any],
        orgs: frozenset[str] | None,
        now_ns: int,
        *,
        descending: bool = False,
        after: tuple[int, str] | None = None,
    ) -> Iterator[Row]:
        """Matching rows in API order (``(ms, id)``, reversed for DESC), after ``after``."""
        services, start_ns, end_ns = parse_common(query, now_ns, self.services)
        term = query.get("search_term")
        predicate = compile_search_term(term) if term is not None else None
        delay_ns = int(self.faults.ingestion_delay * NS)
        oldest_ns = now_ns - int(self.retention_days * 86400 * NS)
        start_ms = max(start_ns, oldest_ns) // NS_PER_MS
        end_ms = None if end_ns is None else end_ns // NS_PER_MS
        selected = self._index.between(start_ms, end_ms, descending=descending, after=after)
        return self._filter(selected, orgs, services, predicate, delay_ns, now_ns)

    @staticmethod
    def _filter(
        selected: list[Row],
        orgs: frozenset[str] | None,
        services: frozenset[str] | None,
        predicate: Predicate | None,
        delay_ns: int,
        now_ns: int,
    ) -> Iterator[Row]:
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

    def _events(self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int) -> Response:
        sort_value = query.get("sort")
        descending = isinstance(sort_value, str) and sort_value.strip().upper() == "DESC"
        limit = parse_limit(query.get("limit"))
        after = parse_search_after(query.get("search_after"))
        fields = parse_fields(query.get("fields"), self._index.known_fields)
        skip = query.get("skip", 0)
        if skip is None:
            skip = 0
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise BadRequest("skip must be a non-negative integer")
        page: list[Row] = []
        rows = self._select(query, orgs, now_ns, descending=descending, after=after)
        if after is not None and self._ends_window_early():
            rows = iter(())
        for row in rows:
            if skip:
                skip -= 1
                continue
            page.append(row)
            if len(page) >= limit:
                break
        body: list[Any] = [
            project(row[3], fields) if fields is not None else row[3] for row in page
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

    def _ends_window_early(self) -> bool:
        """The short-read fault: answer this continuation page with an empty one."""
        with self._lock:
            faults = self.faults
            if faults.empty_pages_next > 0:
                faults.empty_pages_next -= 1
                return True
            if faults.empty_page_every:
                self._continuations += 1
                return self._continuations % faults.empty_page_every == 0
        return False

    def _malformed_variant(self, raw: Any) -> Any:
        """Rotate through the malformed shapes real pipelines have produced."""
        self._malformed += 1
        kind = self._malformed % 3
        if kind == 1 and isinstance(raw, dict):
            return {k: v for k, v in raw.items() if k != "timestamp"}
        if kind == 2 and isinstance(raw, dict):
            return {**raw, "timestamp": "not-a-timestamp"}
        return "event could not be serialized"

    def _count(self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int) -> Response:
        return 200, {"count": sum(1 for _ in self._select(query, orgs, now_ns))}, {}

    def _distinct(
        self, query: dict[str, Any], orgs: frozenset[str] | None, now_ns: int
    ) -> Response:
        name = query.get("field")
        if not isinstance(name, str) or not name:
            raise BadRequest('field is required, e.g. "event_type"')
        parts = tuple(name.split("."))
        counts: Counter[str] = Counter()
        for row in self._select(query, orgs, now_ns):
            for value in {term_text(v) for v in values_at(row[3], parts)} - {None}:
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
    ) -> Response:
        unit = query.get("interval_unit")
        widths = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        if unit not in widths:
            raise BadRequest("interval_unit is required: one of s, m, h, d, w")
        raw_value = query.get("interval_value", "1")
        try:
            value = int(str(raw_value))
        except ValueError:
            value = 0
        if value <= 0:
            raise BadRequest(f"invalid interval_value {raw_value!r}: expected a positive integer")
        tz_text = query.get("timezone") or "+0000"
        tz = parse_tz(tz_text)
        offset = int(tz.utcoffset(None).total_seconds())
        width = widths[unit] * value
        monday = 4 * 86400 if unit == "w" else 0  # 1970-01-05 was a Monday
        counts: Counter[int] = Counter()
        for row in self._select(query, orgs, now_ns):
            local = row[2] // NS + offset - monday
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

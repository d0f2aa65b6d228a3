"""The served events, kept in API order so time ranges and pages are found by bisection.

Events arrive in batches (history, then live traffic) and are read by concurrent
requests; the index keeps them sorted by ``(ms, id)`` lazily, remembers which top-level
fields exist (for ``fields``), and shares the server's lock so that a request sees a
consistent snapshot.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Iterable
from typing import Any

from alerting.durations import MS as NS_PER_MS
from alerting.errors import AlertingError, EventError
from alerting.events import Event
from alerting.simulator.di_api.constants import BASE_FIELDS

# A stored event: (timestamp ms, id, timestamp ns, raw, organization, service)
Row = tuple[int, str, int, dict[str, Any], Any, Any]


def _row_key(row: Row) -> tuple[int, str]:
    return (row[0], row[1])


class EventIndex:
    """Raw events as rows, sorted by ``(ms, id)`` (lazily, after out-of-order adds)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._rows: list[Row] = []
        self._sorted = True
        self._known_fields: set[str] = set(BASE_FIELDS)

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Add raw events (kept as given); returns how many. Raises on an unusable event."""
        new: list[Row] = []
        for raw in events:
            try:
                event = Event.from_raw(raw)
            except EventError as exc:
                raise AlertingError(f"simulator event {raw!r:.120}: {exc}") from None
            ns = event.time_ns
            new.append(
                (ns // NS_PER_MS, event.id, ns, raw, raw.get("organization"), raw.get("service"))
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

    def known_fields(self) -> set[str]:
        """Top-level field names of the API and of every event added so far (a copy)."""
        with self._lock:
            return set(self._known_fields)

    def between(
        self,
        start_ms: int,
        end_ms: int | None,
        *,
        descending: bool = False,
        after: tuple[int, str] | None = None,
    ) -> list[Row]:
        """Rows with ``start_ms <= ms <= end_ms`` in API order, strictly after ``after``."""
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
        return selected

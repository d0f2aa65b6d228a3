"""An exported events file as a ``Source``: the same poll/commit shape as the DI poller."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from alerting.clock import Clock
from alerting.events import Event, sort_key
from alerting.source.base import PollBatch
from alerting.source.files import NoEventsError, SkipCounter, read_events
from alerting.store import Store

log = logging.getLogger(__name__)


class FileSource:
    """An exported events file as a source: the whole file once, then only what is new.

    The first poll reads the file; later polls re-read it only when it changed and yield
    events newer than the cursor (the last event time), so a restart does not replay it.
    """

    def __init__(self, path: str | Path, *, store: Store, source_name: str, clock: Clock) -> None:
        self.path = path
        self.store = store
        self.source_name = source_name
        self.clock = clock
        self.last_batch: PollBatch | None = None
        self._signature: tuple[int, int] | None = None

    # A file has no overlap, no network and nothing to release; say so for ``Source``.
    overlap_ns = 0
    skip_reason: str | None = None
    retries = 0
    last_request_id: str | None = None

    @property
    def name(self) -> str:
        return self.source_name

    def close(self) -> None:
        """Nothing to release: the file is opened and closed by each read."""

    def _stat(self) -> tuple[int, int] | None:
        if str(self.path) == "-":
            return None
        try:
            st = Path(self.path).stat()
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def poll(self) -> PollBatch | None:
        signature = self._stat()
        if self._signature is not None and (signature is None or signature == self._signature):
            return None
        first = self._signature is None
        cursor = self.store.get_cursor(self.source_name)
        skipped: list[str] = []
        events: list[Event] = []
        ids: set[str] = set()
        duplicates = 0
        try:
            for event in read_events(self.path, on_skip=skipped.append):
                if cursor is not None and event.time_ns <= cursor:
                    continue
                if event.id in ids:
                    duplicates += 1
                    continue
                ids.add(event.id)
                events.append(event)
        except NoEventsError:
            if first:
                raise
            self._signature = signature
            log.warning("%s: %s is now empty; keeping the cursor", self.source_name, self.path)
            return None
        self._signature = signature or (0, 0)
        for message in skipped:
            log.warning("%s: %s", self.source_name, message)
        events.sort(key=sort_key)
        start = events[0].time_ns if events else (cursor or 0)
        end = events[-1].time_ns if events else (cursor or 0)
        batch = PollBatch(events, start, end, end, skipped=skipped, duplicates=duplicates)
        self.last_batch = batch
        return batch

    def commit(self, batch: PollBatch) -> None:
        """Remember how far the file has been read (inside the caller's transaction)."""
        if not batch.events:
            return
        with self.store.transaction():
            self.store.set_cursor(self.source_name, batch.cursor_ns, self.clock.time())

    def history(self, start_ns: int, end_ns: int) -> Iterator[Event]:
        """The file's events in ``[start, end]``, in time order, without repeated ids."""
        selected: dict[str, Event] = {}
        for event in read_events(self.path, on_skip=SkipCounter()):
            if start_ns <= event.time_ns <= end_ns:
                selected.setdefault(event.id, event)
        yield from sorted(selected.values(), key=sort_key)

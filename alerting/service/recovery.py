"""Recovery: rebuilding rule windows after a restart, and forgetting a failed batch.

Both keep one promise: the engine has seen exactly the events whose alerts are
committed. A restart re-reads the longest rule window before the cursor (its alerts were
enqueued before the restart and are dropped); a batch that failed before its commit is
forgotten by going back to the stored state, exactly as after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alerting.durations import NS, ms_floor
from alerting.engine.engine import Engine
from alerting.events import Event, format_timestamp
from alerting.source.base import Source
from alerting.store import Store

__all__ = ["WARMUP_CHUNK", "forgetting_on_failure", "warm_up"]

log = logging.getLogger("alerting.service")

WARMUP_CHUNK = 5000


def iso_seconds(ns: int) -> str:
    """Whole-second UTC time for log records."""
    return format_timestamp(ns - ns % NS)


def warm_up(engine: Engine, source: Source, store: Store) -> int:
    """Rebuild the engine's windows from history before the cursor; returns events fed.

    Runs before the first poll (and again on the next poll if the source was down).
    Inside the overlap, only events the store remembers as processed are fed: a late
    event that arrived after the last poll has not raised its alerts yet, so the next
    poll must see it as new, not the warm-up.
    """
    cursor = store.get_cursor(source.name)
    longest = int(engine.longest_window_ns)
    if cursor is None or longest <= 0:
        return 0
    start = cursor - longest
    overlap_ns = source.overlap_ns
    unseen_from = cursor - overlap_ns
    seen = store.load_seen(source.name, ms_floor(unseen_from))
    count = held_back = 0
    chunk: list[Event] = []
    with engine.warmup():
        for event in source.history(start, cursor):
            if overlap_ns and event.time_ns >= unseen_from and event.id not in seen:
                held_back += 1
                continue
            chunk.append(event)
            if len(chunk) >= WARMUP_CHUNK:
                engine.process_many(chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            engine.process_many(chunk)
            count += len(chunk)
    log.info(
        "rebuilt rule windows from %d events between %s and %s",
        count,
        iso_seconds(start),
        iso_seconds(cursor),
        extra={"warmup_events": count, "late_events_left_for_the_poll": held_back},
    )
    return count


@contextmanager
def forgetting_on_failure(forget: Callable[[], None]) -> Iterator[None]:
    """Run ``forget`` (back to the stored state) when the block fails, then re-raise.

    Half-fed windows or realert marks of a batch that was never committed would count
    those events twice when the next poll reads them again.
    """
    try:
        yield
    except BaseException:
        forget()
        raise

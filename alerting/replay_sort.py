"""Any export in event-time order in bounded memory, and repeated event ids dropped.

A backtest's alerts must not depend on how the file was written. JumpCloud's own DI
exporters write newest first (one JSON array in a ``.json.gz``); re-exports overlap and
repeat events. ``replay`` streams through a reorder buffer while the input is in order
within its lateness; when an event arrives too late for that, the input is sorted here
instead: an external merge sort that spills sorted runs of at most ``run_bytes`` to a
private temporary directory and merges them with ``heapq.merge``, so memory stays flat
whatever the file's size. Ties (same time) sort by id, then by position in the file,
the order the reorder buffer releases them in, so both paths feed the engine the same
sequence.

``drop_duplicates`` drops an event whose id was seen within ``window_ns`` of event time
before it, as the service's poller does with its seen ids (kept from ``cursor - overlap``).
"""

from __future__ import annotations

import heapq
import marshal
import operator
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar

from alerting import jsonutil
from alerting.events import Event, JsonEvent, RecentIds

__all__ = [
    "RUN_BYTES",
    "DuplicateTally",
    "SortedRuns",
    "drop_duplicates",
    "sort_events",
]

RUN_BYTES = 64 << 20
"""Event bytes held in memory before a sorted run is spilled (about 50,000 DI events)."""
_RECORD_OVERHEAD = 200  # a held record's tuple, int, id and bytes objects, roughly
_BLOCK = 256  # records per marshal block: what one run holds in memory while merging
_NEWEST_FIRST = 0.9  # share of adjacent pairs going back in time to call a file newest-first

# (time ns, id, position in the input, the event's JSON)
_Record = tuple[int, str, int, bytes]


@dataclass(slots=True)
class DuplicateTally:
    """How many events ``drop_duplicates`` left out."""

    dropped: int = 0


@dataclass(slots=True)
class SortedRuns:
    """The sorted runs of one input, and what the sort found out about its order."""

    directory: Path
    paths: list[Path] = field(default_factory=list)
    events: int = 0
    backwards: int = 0  # adjacent pairs where time went back
    forwards: int = 0  # adjacent pairs where time went on
    duplicates: DuplicateTally = field(default_factory=lambda: DuplicateTally())

    @property
    def shape(self) -> str:
        """``newest-first``, ``oldest-first`` (but out of order somewhere), or ``unordered``."""
        pairs = self.backwards + self.forwards
        if pairs and self.backwards >= _NEWEST_FIRST * pairs:
            return "newest-first"
        if pairs and self.forwards >= _NEWEST_FIRST * pairs:
            return "mostly in time order"
        return "not in time order"

    def describe(self) -> str:
        """``input was newest-first: sorted 1,203,344 events in 4 runs``."""
        runs = len(self.paths)
        return (
            f"input was {self.shape}: sorted {self.events:,} events in "
            f"{runs} run{'' if runs == 1 else 's'}"
        )

    def lines(self, dedupe_ns: int | None = None) -> Iterator[bytes]:
        """Every event's JSON line (with its newline), in ``(time, id, position)`` order;
        ``dedupe_ns``: without repeated ids (``drop_duplicates``, counted in
        ``duplicates``), whether or not a rule reads the event."""
        records: Iterable[_Record] = heapq.merge(*(_read_run(path) for path in self.paths))
        if dedupe_ns is not None:
            records = drop_duplicates(records, dedupe_ns, self.duplicates, _record_identity)
        for record in records:
            yield record[3]


def sort_events(
    events: Iterable[Event],
    directory: str | Path | None = None,
    *,
    run_bytes: int = RUN_BYTES,
    progress: Callable[[int], None] | None = None,
) -> SortedRuns:
    """Spill ``events`` as sorted runs under ``directory`` (a new private temporary
    directory inside it); ``lines()`` of the result merges them. The caller removes
    ``directory`` when done (``runs.directory``)."""
    where = Path(tempfile.mkdtemp(prefix="sort-", dir=directory))
    runs = SortedRuns(where)
    held: list[_Record] = []
    size = 0
    n = 0
    backwards = forwards = 0
    previous: int | None = None
    dumps = jsonutil.dumps
    for event in events:
        t = event.time_ns
        if previous is not None:
            if t < previous:
                backwards += 1
            elif t > previous:
                forwards += 1
        previous = t
        if type(event) is JsonEvent:
            blob = event.blob.strip() + b"\n"
        else:
            blob = dumps(event.raw).encode() + b"\n"
        held.append((t, event.id, n, blob))
        n += 1
        size += len(blob) + _RECORD_OVERHEAD
        if size >= run_bytes:
            _spill(held, runs)
            held = []
            size = 0
        if progress is not None and n % 65536 == 0:
            progress(n)
    if held:
        _spill(held, runs)
    runs.events = n
    runs.backwards, runs.forwards = backwards, forwards
    return runs


def _spill(held: list[_Record], runs: SortedRuns) -> None:
    """Sort ``held`` and write it as the next run: marshal blocks of ``_BLOCK`` records,
    each after its length (our own data in our own 0700 directory: marshal is fast and
    runs no code)."""
    held.sort()
    path = runs.directory / f"run-{len(runs.paths):05d}"
    with open(path, "wb") as fh:
        for i in range(0, len(held), _BLOCK):
            block = marshal.dumps(held[i : i + _BLOCK])
            fh.write(len(block).to_bytes(4, "little"))
            fh.write(block)
    runs.paths.append(path)


def _read_run(path: Path) -> Iterator[_Record]:
    with open(path, "rb") as fh:
        yield from _blocks(fh)


def _blocks(fh: BinaryIO) -> Iterator[_Record]:
    """The records of a run, one block in memory at a time (a length, then the block:
    one read each, where ``marshal.load`` on the file would read object by object)."""
    while size := int.from_bytes(fh.read(4), "little"):
        block: list[_Record] = marshal.loads(fh.read(size))  # noqa: S302 - our own run file
        yield from block


_T = TypeVar("_T")
_event_identity = operator.attrgetter("id", "time_ns")
_record_identity = operator.itemgetter(1, 0)


def drop_duplicates(
    events: Iterable[_T],
    window_ns: int,
    tally: DuplicateTally,
    identity: Callable[[_T], tuple[str, int]] = _event_identity,
) -> Iterator[_T]:
    """``events`` (in time order) without the ones whose id was seen at most ``window_ns``
    of event time before: what the poller drops, since its seen ids reach back to
    ``cursor - overlap``. The first copy is kept (``RecentIds``: memory holds about one
    window of ids). ``identity`` gives an item's ``(id, time ns)`` (default: an
    ``Event``'s)."""
    recent = RecentIds(window_ns)
    for item in events:
        if recent.repeated(*identity(item)):
            tally.dropped += 1
            continue
        yield item

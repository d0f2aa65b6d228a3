"""The seam between a source and the service: the ``Source`` protocol and ``PollBatch``.

Every source (the DI API poller, the embedded simulator behind that poller, an events
file) reads in the same shape: ``poll()`` the next batch, and ``commit()`` it inside the
caller's store transaction, next to the alerts the batch raised, so a crash keeps both or
neither. ``history()`` re-reads the past to rebuild rule windows after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from alerting.events import Event

__all__ = ["PollBatch", "Source"]


@dataclass(slots=True)
class PollBatch:
    """What one poll read: the new events (sorted) and how to move the cursor."""

    events: list[Event]
    start_ns: int
    end_ns: int
    cursor_ns: int
    requests: int = 0
    retries: int = 0
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0
    # Set when the window still read fewer events than /events/count said after the
    # re-reads: (events read, events counted). The batch goes on with what was read.
    incomplete: tuple[int, int] | None = None


class Source(Protocol):
    """Where the service's events come from; the contract tests in tests/source/ run
    the same suite against every implementation."""

    @property
    def name(self) -> str:
        """The cursor's name in the store (``jumpcloud``, ``simulator``, ``file``)."""
        ...

    @property
    def overlap_ns(self) -> int:
        """How far each poll reaches back before the cursor (how late an event may be)."""
        ...

    @property
    def skip_reason(self) -> str | None:
        """Why the last ``poll()`` returned None, when it did for a reason worth logging."""
        ...

    @property
    def retries(self) -> int:
        """Cumulative retried requests (0 for a source without a network)."""
        ...

    @property
    def last_request_id(self) -> str | None:
        """The id of the last API response, for error messages (None without an API)."""
        ...

    def poll(self) -> PollBatch | None:
        """The next batch, or None when there is nothing to read yet; the cursor stays."""
        ...

    def commit(self, batch: PollBatch) -> None:
        """Move the cursor past ``batch``; call inside the caller's store transaction."""
        ...

    def history(self, start_ns: int, end_ns: int) -> Iterator[Event]:
        """Every event in ``[start, end]``, without repeated ids (for the warm-up)."""
        ...

    def close(self) -> None:
        """Release connections and servers; safe to call twice."""
        ...

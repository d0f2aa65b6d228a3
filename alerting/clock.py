"""Time, injected.

Everything that reads the wall clock or waits takes a ``Clock`` so tests can drive time
without sleeping. ``SystemClock`` is the real one; ``ManualClock`` is for tests and for
replays that must not wait.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait; a manual clock advances instead."""
        ...

    def wake(self) -> None:
        """Cut a ``sleep`` short (shutdown); a clock that never waits ignores it."""
        ...


class SystemClock:
    """The real clock. ``sleep`` can be interrupted by ``wake()`` for fast shutdown."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)

    def wake(self) -> None:
        self._wake.set()


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it and records the wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wake(self) -> None:
        """Nothing to cut short: ``sleep`` never waits."""


def time_ns(clock: Clock) -> int:
    """The clock's time as integer nanoseconds since the epoch."""
    return round(clock.time() * 1_000_000) * 1000

"""The one-line progress report the long commands (replay, export) keep on a terminal.

Not a command: the shared helper, so both throttle, overwrite and clear the line alike.
"""

from __future__ import annotations

import time
from typing import TextIO

# Seconds between two updates of the line.
INTERVAL_S = 0.5


class ProgressLine:
    """A line rewritten in place at most twice a second, and only on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0
        self.shown = False

    def due(self) -> bool:
        """Whether to write now (a terminal, and the last update long enough ago)."""
        if not self.enabled:
            return False
        now = time.monotonic()
        if now - self.last < INTERVAL_S:
            return False
        self.last = now
        return True

    def write(self, text: str) -> None:
        self.shown = True
        self.stream.write(f"\r{text} ")
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the line before the command prints its result."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

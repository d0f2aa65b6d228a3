"""Readable alerts on stdout; severity coloured on a terminal.

Colour codes come from here, never from values: the console template escapes control
characters in every value, so an event cannot inject ANSI sequences.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO

from alerting.alert import Alert
from alerting.notify.channels.errors import TemporaryError
from alerting.notify.incidents import IncidentView
from alerting.notify.render import MessageBuilder
from alerting.notify.settings import ConsoleChannel

_COLOURS = {
    "info": "\x1b[36m",
    "low": "\x1b[32m",
    "medium": "\x1b[33m",
    "high": "\x1b[31m",
    "critical": "\x1b[1;41;97m",
}
_RESET = "\x1b[0m"


class ConsoleSender:
    groups_bursts = True

    def __init__(
        self,
        name: str,
        config: ConsoleChannel,
        messages: MessageBuilder,
        stream: IO[str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.messages = messages
        self._stream = stream

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def _colour(self) -> bool:
        if self.config.color == "always":
            return True
        if self.config.color == "never":
            return False
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        text = self.messages.console(alerts, incident).rstrip("\n")
        if self._colour():
            first, _, rest = text.partition("\n")
            colour = _COLOURS.get(alerts[0].severity, "")
            text = f"{colour}{first}{_RESET}" + (f"\n{rest}" if rest else "")
        try:
            self.stream.write(text + "\n\n")
            self.stream.flush()
        except OSError as exc:
            raise TemporaryError(f"cannot write to the console: {exc}") from None

    def close(self) -> None:
        return None

"""Signals: every one the service receives is logged, and none ends it silently.

SIGTERM/SIGINT/SIGQUIT stop it cleanly (a second one exits at once), SIGHUP reloads
(``systemctl reload`` sends it through ``ExecReload``), SIGUSR1/SIGUSR2 are logged and
ignored: their default action would end the process without a word.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

__all__ = ["STOP_SIGNALS", "handle_signals"]

log = logging.getLogger("alerting.service")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class Controllable(Protocol):
    def request_stop(self) -> None: ...

    def request_reload(self) -> None: ...


@contextlib.contextmanager
def handle_signals(service: Controllable, *, reload: bool = True) -> Iterator[None]:
    """Install the handlers for the ``with`` block (main thread only; a no-op elsewhere).

    ``reload=False`` (``run --once``): SIGHUP is logged and ignored, the run is short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal stops
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            if reload:
                log.info("received SIGHUP: reloading", extra={"signal": name})
                service.request_reload()
            else:
                log.info("received SIGHUP: ignored by --once", extra={"signal": name})
            return
        if signum in IGNORED_SIGNALS:
            log.info(
                "received %s: ignored (SIGHUP reloads, SIGTERM stops)", name, extra={"signal": name}
            )
            return
        stops += 1
        if stops > 1:
            sys.stderr.write(f"alerting run: stopping now (second signal, {name})\n")
            os._exit(130)
        log.info("received %s: stopping", name, extra={"signal": name})
        service.request_stop()

    handled = (signal.SIGHUP, *STOP_SIGNALS, *IGNORED_SIGNALS)
    previous = {sig: signal.signal(sig, handle) for sig in handled}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

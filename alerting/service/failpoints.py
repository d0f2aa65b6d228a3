"""The crash hook that proves crash safety: ``ALERTING_FAILPOINT=<name>[:<n>]``.

Documented in docs/operations.md: the process SIGKILLs itself the n-th time (default 1st)
it reaches that point. Points: ``before_commit`` (alerts computed, nothing committed),
``after_commit`` (alerts enqueued and cursor advanced, nothing delivered).
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["FAILPOINT_ENV", "NO_FAILPOINTS", "Failpoints"]

FAILPOINT_ENV = "ALERTING_FAILPOINT"

log = logging.getLogger("alerting.service")


class Failpoints:
    """Kill the process at a named point; ``Failpoints(None)`` never does."""

    def __init__(self, spec: str | None) -> None:
        self.name: str | None = None
        self.remaining = 0
        if spec:
            name, _, count = spec.partition(":")
            self.name = name.strip()
            self.remaining = int(count) if count.strip().isdigit() else 1

    @classmethod
    def from_env(cls) -> Failpoints:
        return cls(os.environ.get(FAILPOINT_ENV))

    def hit(self, name: str) -> None:
        if name != self.name:
            return
        self.remaining -= 1
        if self.remaining == 0:
            log.warning("failpoint %s: killing the process (test hook %s)", name, FAILPOINT_ENV)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)


NO_FAILPOINTS = Failpoints(None)

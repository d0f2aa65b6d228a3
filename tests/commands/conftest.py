"""Fixtures for the command tests: the notification clock and a state store (for outbox),
and ``restore_logging`` for the commands that set up the service's logging."""

from tests.support.logs import restore_logging
from tests.support.notify import clock
from tests.support.store import store

__all__ = ["clock", "restore_logging", "store"]

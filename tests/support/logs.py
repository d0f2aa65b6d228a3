"""The ``restore_logging`` fixture: commands that run the service (``run``, ``run
--dry-run``) install their own log handlers on stderr and quieten some loggers; take the
handlers off and put the levels back after the test, or a later test logs into a closed
capture stream or misses records."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from alerting.logs import QUIET_LOGGERS

# The loggers setup_logging and the run command set a level on.
_QUIETENED = (*QUIET_LOGGERS, "alerting.source")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in _QUIETENED}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)

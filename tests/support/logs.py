"""The ``restore_logging`` fixture: commands that run the service (``run``, ``run
--dry-run``) install their own log handlers on stderr; take them off after the test, or
a later test logs into a closed capture stream."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)

"""Fixtures for the service tests (the shared config, rules and receiver helpers are in
test_service.py, which test_crash_restart.py imports)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``alerting run`` installs its own log handlers; take them off after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)

"""Fixtures for the service tests: the test clock, and ``restore_logging``; the shared
config, rules and receiver helpers are in tests/support/service.py."""

import pytest

from alerting.clock import ManualClock
from tests.support.logs import restore_logging
from tests.support.service import START

__all__ = ["restore_logging"]


@pytest.fixture
def clock() -> ManualClock:
    """A ManualClock at the helpers' START, shared by the fake API, retries and health."""
    return ManualClock(START)

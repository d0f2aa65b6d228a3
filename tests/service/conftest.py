"""Fixtures for the service tests (the shared config, rules and receiver helpers are in
test_service.py, which test_crash_restart.py imports)."""

from tests.support.logs import restore_logging

__all__ = ["restore_logging"]

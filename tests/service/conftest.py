"""Fixtures for the service tests (the shared config, rules and receiver helpers are in
tests/support/service.py)."""

from tests.support.logs import restore_logging

__all__ = ["restore_logging"]

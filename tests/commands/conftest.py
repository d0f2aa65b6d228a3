"""Fixtures for the command tests: the notification clock and a state store (for outbox)."""

from tests.support.notify import clock, store

__all__ = ["clock", "store"]

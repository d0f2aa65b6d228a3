"""Fixtures for the DI tests: a ManualClock at a fixed "now", the real local DI API and a
state database."""

from tests.support.di import clock, server
from tests.support.store import store

__all__ = ["clock", "server", "store"]

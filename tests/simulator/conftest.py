"""Fixtures for the DI tests: a ManualClock at a fixed "now" and the real local DI API."""

from tests.support.di import clock, server

__all__ = ["clock", "server"]

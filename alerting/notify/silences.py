"""Silences: mute matching alerts until a time, with a reason and an owner.

A silence whose ``until`` has passed is ignored (``validate`` reports it so it can be
removed); an active one drops the alert before routing, and the drop is logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC

from alerting.alert import Alert
from alerting.notify.routing import matches
from alerting.notify.settings import SilenceConfig
from alerting.timeintervals import TimeInterval, active_at


def _until(silence: SilenceConfig) -> float:
    return silence.until.timestamp()


def active_silence(
    silences: Sequence[SilenceConfig],
    alert: Alert,
    now: float,
    intervals: Mapping[str, Sequence[TimeInterval]] | None = None,
) -> SilenceConfig | None:
    """The first unexpired silence matching ``alert``, if any; a silence with
    ``active_time_intervals`` holds only while one of them does."""
    for silence in silences:
        if now < _until(silence) and matches(silence.match, alert):
            if silence.active_time_intervals and not active_at(
                silence.active_time_intervals, intervals or {}, int(now * 1e9)
            ):
                continue
            return silence
    return None


def expired_silences(silences: Sequence[SilenceConfig], now: float) -> list[SilenceConfig]:
    """Silences whose ``until`` has passed: ``validate`` reports them."""
    return [s for s in silences if _until(s) <= now]


def describe(silence: SilenceConfig) -> str:
    """``until 2026-12-01T00:00:00Z by alice: maintenance`` for logs and reports."""
    until = silence.until.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"until {until} by {silence.owner}: {silence.reason}"


__all__ = ["active_silence", "describe", "expired_silences"]

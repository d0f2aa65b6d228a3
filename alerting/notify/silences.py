"""Silences: mute matching alerts until a time, with a reason and an owner.

A silence whose ``until`` has passed is ignored (``validate`` reports it so it can be
removed); an active one drops the alert before routing, and the drop is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from alerting.alert import Alert
from alerting.notify.routing import matches
from alerting.notify.settings import SilenceConfig


def _until(silence: SilenceConfig) -> float:
    return silence.until.timestamp()


def active_silence(
    silences: Sequence[SilenceConfig], alert: Alert, now: float
) -> SilenceConfig | None:
    """The first unexpired silence matching ``alert``, if any."""
    for silence in silences:
        if now < _until(silence) and matches(silence.match, alert):
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

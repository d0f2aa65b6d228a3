"""What every channel is: ``send(alerts)`` and ``close()`` (errors: ``channels/errors.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from alerting.alert import Alert
from alerting.notify.incidents import IncidentView


class Channel(Protocol):
    name: str
    # Whether a burst of one rule's alerts may go out as one message (humans read it).
    groups_bursts: bool

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        """Deliver ``alerts`` as one message or raise ``DeliveryError``.

        ``incident`` is set for an incident message: ``alerts`` are its alerts sent now,
        highest severity first, and it names every rule of the incident so far.
        """
        ...

    def close(self) -> None: ...

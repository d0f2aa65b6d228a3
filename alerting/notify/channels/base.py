"""What every channel is: ``send(alerts)`` and ``close()`` (errors: ``channels/errors.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from alerting.alert import Alert


class Channel(Protocol):
    name: str
    # Whether a burst of one rule's alerts may go out as one message (humans read it).
    groups_bursts: bool

    def send(self, alerts: Sequence[Alert]) -> None:
        """Deliver ``alerts`` as one message or raise ``DeliveryError``."""
        ...

    def close(self) -> None: ...

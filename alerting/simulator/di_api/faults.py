"""Fault injection: what can go wrong on purpose, and the ``--fault`` names for it.

Apart from the server so that the ``simulate`` command can turn names into ``Faults``
without touching HTTP, and so that every fault the client must survive is listed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from alerting.errors import AlertingError
from alerting.yamlfile import suggest


@dataclass
class Faults:
    """Fault injection; everything is off by default and may be changed while serving.

    Counters are per request (``*_every``: the Nth, 2Nth, ... request of any endpoint) or
    per served event (``malformed_every``), so tests are deterministic.
    """

    rate_limit_every: int = 0
    retry_after: float | None = 1.0
    error_every: int = 0
    error_status: int = 503
    fail_next: list[int] = field(default_factory=list)
    slow_seconds: float = 0.0
    trickle_seconds: float = 0.0  # the body dribbles out over this long (headers at once)
    empty_page_every: int = 0  # every Nth page after the first of a window is empty
    empty_pages_next: int = 0  # the next N pages after the first of a window are empty
    ingestion_delay: float = 0.0
    duplicate_ids: bool = False
    malformed_every: int = 0
    status: int | None = None


_FAULT_NAMES = (
    "rate-limit",
    "rate-limit-no-retry-after",
    "errors",
    "slow",
    "trickle",
    "short-read",
    "ingestion-delay",
    "duplicates",
    "malformed",
    "unauthorized",
    "no-plan",
    "forbidden",
)


def parse_faults(names: Sequence[str]) -> Faults:
    """Faults from command-line names, each optionally ``name=value``.

    Defaults: ``rate-limit`` every 5th request (Retry-After 1 s; ``=N`` sets the period),
    ``errors`` a 503 every 7th request, ``slow`` 1.5 s per response, ``trickle`` each body
    over 10 s, ``short-read`` an empty page in place of every 2nd page after a window's
    first (a contract break that ends the window early), ``ingestion-delay``
    180 s (longer than the default 2 m lag, shorter than lag + overlap, so the overlap is
    what recovers late events), ``malformed`` every 50th event.
    """
    faults = Faults()
    for spec in names:
        name, _, value = str(spec).strip().partition("=")
        name = name.strip().lower()

        def number(default: float, spec: str = spec, value: str = value) -> float:
            if not value:
                return default
            try:
                result = float(value)
            except ValueError:
                result = -1.0
            if result <= 0:
                raise AlertingError(
                    f"--fault {spec}: the value must be a positive number"
                ) from None
            return result

        if name == "rate-limit":
            faults.rate_limit_every = max(1, int(number(5)))
        elif name == "rate-limit-no-retry-after":
            faults.rate_limit_every = max(1, int(number(5)))
            faults.retry_after = None
        elif name == "errors":
            faults.error_every = max(1, int(number(7)))
            faults.error_status = 503
        elif name == "slow":
            faults.slow_seconds = number(1.5)
        elif name == "trickle":
            faults.trickle_seconds = number(10)
        elif name == "short-read":
            faults.empty_page_every = max(1, int(number(2)))
        elif name == "ingestion-delay":
            faults.ingestion_delay = number(180)
        elif name == "duplicates":
            faults.duplicate_ids = True
        elif name == "malformed":
            faults.malformed_every = max(1, int(number(50)))
        elif name == "unauthorized":
            faults.status = 401
        elif name == "no-plan":
            faults.status = 402
        elif name == "forbidden":
            faults.status = 403
        else:
            raise AlertingError(
                f"--fault {spec}: unknown fault{suggest(name, _FAULT_NAMES)}; known faults: "
                + ", ".join(_FAULT_NAMES)
            )
    return faults

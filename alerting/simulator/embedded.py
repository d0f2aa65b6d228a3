"""The embedded DI simulator: fake DI API plus live traffic, in one object.

``EmbeddedSimulator`` puts realistic traffic (``traffic.TrafficGenerator``) behind the local
DI API server (``di_api.DIApiServer``): history is generated up front, and each request
extends the traffic lazily up to the clock's "now", so a long-running service keeps seeing
new events and new attacks. The attack schedule is anchored so that every enabled
scenario happens inside the last hour and ends before the usual 2-minute poll lag: a
service that starts with ``start_from: 1h`` alerts on its very first poll.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from alerting.clock import Clock, time_ns
from alerting.errors import AlertingError
from alerting.simulator.di_api import DEMO_API_KEY, DIApiServer, Faults, parse_faults
from alerting.simulator.traffic import (
    DEFAULT_ORG_ID,
    HOUR_NS,
    MINUTE_NS,
    SCENARIOS,
    InjectedAttack,
    TrafficGenerator,
)
from alerting.yamlfile import suggest

#: live attacks come at most this far apart (one scenario every few minutes)
LIVE_SLOT_NS = 5 * MINUTE_NS
#: every enabled scenario is placed within [now - 59m, now - 6m] of the simulator start
_LAST_HOUR_SPAN_NS = 54 * MINUTE_NS
_ANCHOR_BEFORE_NS = 59 * MINUTE_NS


def resolve_scenarios(names: Sequence[str] | None) -> list[str] | None:
    """CLI/config scenario names to the generator's list: None = all, ``none`` = no attacks.

    Accepts repeated names and comma-separated lists; an unknown name raises
    ``AlertingError`` with a did-you-mean and the list of known scenarios.
    """
    if names is None:
        return None
    flat = [part.strip() for name in names for part in str(name).split(",") if part.strip()]
    if not flat or [n.lower() for n in flat] == ["all"]:
        return None
    if any(n.lower() == "none" for n in flat):
        if len(flat) > 1:
            raise AlertingError("scenario 'none' cannot be combined with other scenarios")
        return []
    for name in flat:
        if name not in SCENARIOS:
            raise AlertingError(
                f"unknown scenario {name!r}{suggest(name, list(SCENARIOS))}; "
                f"known scenarios: {', '.join(SCENARIOS)}, or 'none'"
            )
    return list(dict.fromkeys(flat))


class EmbeddedSimulator:
    """A DI API on 127.0.0.1 serving realistic traffic that keeps coming as time passes.

    ``history_ns`` of traffic before ``clock`` now is generated on ``start()``; later
    requests extend it up to the clock's now (live mode), with one attack every few
    minutes. ``attacks`` is the ground truth of every attack generated so far.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int = 7,
        history_ns: int = 2 * HOUR_NS,
        scenarios: Sequence[str] | None = None,
        faults: Sequence[str] | Faults = (),
        users: int = 60,
        unenrolled_mfa: float = 0.0,
        rate: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEMO_API_KEY,
        org_id: str = DEFAULT_ORG_ID,
    ) -> None:
        if history_ns <= 0:
            raise AlertingError("simulator history must be positive, e.g. 2h")
        self.clock = clock
        self.history_ns = history_ns
        self.api_key = api_key
        self.org_id = org_id
        enabled = resolve_scenarios(scenarios)
        count = len(SCENARIOS) if enabled is None else len(enabled)
        slot = min(LIVE_SLOT_NS, _LAST_HOUR_SPAN_NS // max(1, count))
        self._start_ns = time_ns(clock)
        try:
            self.generator = TrafficGenerator(
                seed=seed,
                users=users,
                unenrolled_mfa=unenrolled_mfa,
                scenarios=enabled,
                org_id=org_id,
                rate=rate,
                attack_slot_ns=slot,
                attack_anchor_ns=self._start_ns - _ANCHOR_BEFORE_NS,
            )
        except ValueError as exc:
            raise AlertingError(f"simulator: {exc}") from None
        self.server = DIApiServer(
            api_key=api_key,
            clock=clock,
            faults=faults if isinstance(faults, Faults) else parse_faults(list(faults)),
            host=host,
            port=port,
            event_feed=self._feed,
        )
        self._lock = threading.Lock()
        self._fed_until: int | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def attacks(self) -> list[InjectedAttack]:
        with self._lock:
            return self.generator.attacks

    def start(self) -> EmbeddedSimulator:
        with self._lock:
            if self._fed_until is None:
                lo = self._start_ns - self.history_ns
                hi = max(self._start_ns, time_ns(self.clock)) + 1
                self.server.add_events(self.generator.generate(lo, hi))
                self._fed_until = hi
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def serve_forever(self) -> None:
        self.start()
        self.server.serve_forever()

    def __enter__(self) -> EmbeddedSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _feed(self, now_ns: int) -> None:
        """Called by the server at the start of each request: extend traffic up to now."""
        with self._lock:
            if self._fed_until is None or now_ns + 1 <= self._fed_until:
                return
            events = self.generator.generate(self._fed_until, now_ns + 1)
            self._fed_until = now_ns + 1
            if events:
                self.server.add_events(events)

"""``TrafficGenerator``: the schedule that puts normal behaviour and attacks together.

This is where the determinism guarantees live: the events of hour ``b`` come from an RNG
seeded with ``(seed, b)`` and each attack from one seeded with its slot, hours are cached
as sorted buckets, and ``generate`` merges the buckets a range touches (looking back
``SPILL_NS``), drops a victim's own events during an attack's blackout, and records the
ground truth of each attack whose first event it returned.
"""

from __future__ import annotations

import bisect
import operator
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alerting.durations import HOUR_NS, MINUTE_NS, MS
from alerting.simulator.traffic.constants import (
    DEFAULT_ATTACK_SLOT_NS,
    DEFAULT_ORG_ID,
    MAX_BLACKOUT_NS,
    SPILL_NS,
    Item,
)
from alerting.simulator.traffic.mixes import MIXES
from alerting.simulator.traffic.normal import NormalBehaviour
from alerting.simulator.traffic.places import Place
from alerting.simulator.traffic.population import build_population
from alerting.simulator.traffic.scenarios import (
    ALSO_EXPECTED,
    BUILDERS,
    SCENARIOS,
    AttackScenarios,
    InjectedAttack,
)

_ORDER = operator.itemgetter(0, 1)  # (time, id): unique, so the dicts are never compared


@dataclass(slots=True)
class _Plan:
    """One attack instance: its events, ground truth and the victim's quiet period."""

    events: list[Item]
    attack: InjectedAttack
    blackouts: list[tuple[int, int, int]]  # (person index, from ns, to ns)


class TrafficGenerator(NormalBehaviour, AttackScenarios):
    """Deterministic realistic DI traffic for a seed, with attacks on a fixed schedule.

    Attacks: slot ``m`` (``attack_slot_ns`` long, counted from ``attack_anchor_ns``) holds
    scenario ``enabled[m % len(enabled)]``, starting a little after the slot begins and
    ending well before the next one, so attacks never overlap and each scenario recurs
    every ``len(enabled) * attack_slot_ns``.
    """

    def __init__(
        self,
        *,
        seed: int,
        users: int = 60,
        scenarios: Sequence[str] | None = None,
        org_id: str = DEFAULT_ORG_ID,
        rate: float = 1.0,
        attack_slot_ns: int = DEFAULT_ATTACK_SLOT_NS,
        attack_anchor_ns: int = 0,
        unenrolled_mfa: float = 0.0,
        mix: str = "simulator",
    ) -> None:
        if users < 4:
            raise ValueError("users must be at least 4")
        if scenarios is None:
            enabled = list(SCENARIOS)
        else:
            unknown = [s for s in scenarios if s not in SCENARIOS]
            if unknown:
                raise ValueError(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
            enabled = [s for s in SCENARIOS if s in set(scenarios)]  # canonical order
        if not 0.0 <= unenrolled_mfa < 1.0:
            raise ValueError("unenrolled_mfa must be a fraction from 0 up to (not including) 1")
        if attack_slot_ns < 2 * MINUTE_NS:
            raise ValueError("attack_slot_ns must be at least two minutes")
        self.seed = seed
        self.org_id = org_id
        self.rate = rate
        if mix not in MIXES:
            raise ValueError(f"unknown traffic mix {mix!r}; known: {', '.join(MIXES)}")
        self.mix = MIXES[mix]
        self.scenarios: tuple[str, ...] = tuple(enabled)
        self.slot_ns = attack_slot_ns
        self.anchor_ns = attack_anchor_ns
        self._attacks: dict[int, InjectedAttack] = {}
        self._buckets: dict[int, tuple[list[int], list[Item]]] = {}
        self._plans: dict[int, _Plan] = {}
        self._minute_text: dict[int, str] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._trip_cache: dict[tuple[int, int], tuple[int, int, int, int, Place, str] | None] = {}
        population = build_population(seed, users)
        self.people = population.people
        self._by_name = population.by_name
        self._victim_order = population.victim_order
        self._pools = population.pools
        self.admins = population.admins
        self.automation = population.automation
        self.ldap_connection_ip = population.ldap_connection_ip
        self.apps = population.apps
        self.servers = population.servers
        self.server_ips = population.server_ips
        self.groups = population.groups
        self.sso_context = population.sso_context
        self._unenrol(unenrolled_mfa)

    def _unenrol(self, share: float) -> None:
        """An org mid-rollout: ``share`` of the people have no second factor yet. Never
        an admin, nor a victim whose attack needs their MFA history (login without MFA,
        brute force then success), so attacks keep their meaning."""
        keep = {a.person.index for a in self.admins if a.person is not None}
        keep |= set(self._pools[2]) | set(self._pools[3])
        candidates = sorted(
            (p for p in self.people if p.index not in keep),
            key=lambda p: random.Random(f"{self.seed}:mfa:{p.index}").random(),
        )
        for p in candidates[: round(share * len(self.people))]:
            p.mfa_enrolled = False

    # ----------------------------------------------------------------- public API

    @property
    def attacks(self) -> list[InjectedAttack]:
        """Ground truth of every attack whose first event was generated so far."""
        return [self._attacks[m] for m in sorted(self._attacks)]

    def generate(self, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Raw events with ``start_ns <= time < end_ns``, sorted by (time, id)."""
        if end_ns <= start_ns:
            return []
        chunks: list[list[Item]] = []
        for b in range((start_ns - SPILL_NS) // HOUR_NS, (end_ns - 1) // HOUR_NS + 1):
            times, items = self._bucket(b)
            lo = bisect.bisect_left(times, start_ns)
            hi = bisect.bisect_left(times, end_ns)
            if lo < hi:
                chunks.append(items[lo:hi])
        for m in self._slots_between(start_ns - self.slot_ns, end_ns):
            plan = self._plan(m)
            if plan is not None and start_ns <= plan.attack.start_ns < end_ns:
                self._attacks[m] = plan.attack
        if len(chunks) == 1:
            return [item[2] for item in chunks[0]]
        merged = [item for chunk in chunks for item in chunk]
        merged.sort(key=_ORDER)
        return [item[2] for item in merged]

    def stream(self, start_ns: int, end_ns: int) -> Iterator[dict[str, Any]]:
        """The same events as ``generate(start_ns, end_ns)``, an hour at a time.

        For benchmarks over millions of events: memory stays at one hour's worth.
        """
        t = start_ns
        while t < end_ns:
            step = min(end_ns, (t // HOUR_NS + 1) * HOUR_NS)
            yield from self.generate(t, step)
            t = step

    # ----------------------------------------------------------------- schedule

    def _slots_between(self, lo_ns: int, hi_ns: int) -> range:
        first = (lo_ns - self.anchor_ns) // self.slot_ns
        last = (hi_ns - self.anchor_ns) // self.slot_ns
        return range(first, last + 1)

    # ----------------------------------------------------------------- buckets

    def _bucket(self, b: int) -> tuple[list[int], list[Item]]:
        cached = self._buckets.get(b)
        if cached is not None:
            return cached
        t0 = b * HOUR_NS
        rng = random.Random(f"{self.seed}:hour:{b}")
        out: list[Item] = []
        quiet = self._blackouts(t0, t0 + HOUR_NS + SPILL_NS)
        for p in self.people:
            self._person_hour(rng, p, t0, out)
        for admin in self.admins:
            self._admin_hour(rng, admin, t0, out)
        self._automation_hour(rng, t0, out)
        self._service_hour(rng, t0, out)
        if quiet:
            out = [e for e in out if not _is_quiet(quiet, e)]
        for m in self._slots_between(t0 - self.slot_ns, t0 + HOUR_NS):
            plan = self._plan(m)
            if plan is not None and t0 <= plan.attack.start_ns < t0 + HOUR_NS:
                out.extend(plan.events)
        out.sort(key=_ORDER)
        result = ([e[0] for e in out], out)
        if len(self._buckets) >= 8:
            del self._buckets[min(self._buckets)]
        self._buckets[b] = result
        return result

    def _blackouts(self, lo: int, hi: int) -> dict[str, list[tuple[int, int]]]:
        """Username -> quiet intervals: a victim's own traffic must not blur an attack."""
        quiet: dict[str, list[tuple[int, int]]] = {}
        for m in self._slots_between(lo - MAX_BLACKOUT_NS, hi + MAX_BLACKOUT_NS):
            plan = self._plan(m)
            if plan is None:
                continue
            for index, start, end in plan.blackouts:
                if start < hi and end > lo:
                    quiet.setdefault(self.people[index].username, []).append((start, end))
                    # an admin is the same person at the console (identified by email)
                    for admin in self.admins:
                        if admin.person is not None and admin.person.index == index:
                            quiet.setdefault(admin.email, []).append((start, end))
        return quiet

    def _plan(self, m: int) -> _Plan | None:
        """The attack of slot ``m`` (built once, cached), or None when no scenario is on."""
        if not self.scenarios:
            return None
        plan = self._plans.get(m)
        if plan is None:
            if len(self._plans) > 8192:
                self._plans.clear()
            scenario = self.scenarios[m % len(self.scenarios)]
            cycle = m // len(self.scenarios)
            rng = random.Random(f"{self.seed}:attack:{m}")
            slot_start = self.anchor_ns + m * self.slot_ns
            start = slot_start + int(rng.uniform(0.03, 0.12) * self.slot_ns)
            start -= start % MS
            span = int(min(4 * MINUTE_NS, 0.7 * self.slot_ns))
            builder = BUILDERS[scenario]
            events, group, blackouts = builder(self, rng, cycle, start, span)
            events.sort(key=_ORDER)
            attack = InjectedAttack(
                scenario=scenario,
                rule=SCENARIOS[scenario],
                group=group,
                start_ns=events[0][0],
                end_ns=events[-1][0],
                event_ids=[e[1] for e in events if e[2].pop("_evidence", True)],
                also_rules=ALSO_EXPECTED.get(scenario, ()),
            )
            plan = _Plan(events, attack, blackouts)
            self._plans[m] = plan
        return plan


def _is_quiet(quiet: dict[str, list[tuple[int, int]]], item: Item) -> bool:
    event = item[2]
    who = event.get("initiated_by")
    if not isinstance(who, dict):
        who = event.get("resource") if event.get("event_type") == "admin_login_attempt" else None
    name = (who.get("username") or who.get("email")) if isinstance(who, dict) else None
    if name is None:
        return False
    spans = quiet.get(name)
    if not spans:
        return False
    t = item[0]
    return any(lo <= t < hi for lo, hi in spans)

"""The attack scenarios, and the ground truth of which rule must catch each one.

Each scenario builds the events of one attack instance (and the quiet period of its
victim's own traffic) from its own RNG, so attacks are reproducible on their own and
never disturb normal traffic; ``SCENARIOS`` maps each to the rule expected to alert and
``ALSO_EXPECTED`` lists the other rules it rightly trips.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from alerting.durations import HOUR_NS, MINUTE_NS, MS, NS
from alerting.events import format_timestamp
from alerting.simulator.traffic.constants import ADMIN_DOMAIN, MAX_BLACKOUT_NS, VICTIM_LANES, Item
from alerting.simulator.traffic.events import FAILED_CONTEXT, EventEmitter, _b64
from alerting.simulator.traffic.ids import oid
from alerting.simulator.traffic.places import (
    ATTACKER_PLACES,
    DATACENTER,
    HOLIDAYS,
    Place,
    flight_ns,
    km,
)
from alerting.simulator.traffic.population import (
    FIRST_NAMES,
    LAST_NAMES,
    UA_CURL,
    UA_GO,
    UA_MAC_CHROME,
    UA_PYTHON,
    UA_WIN_CHROME,
    Admin,
    Person,
)

# The default deny-list of denied-country-activity (comprehensively embargoed countries).
_DENIED = frozenset({"CU", "IR", "KP", "SY"})

#: attack scenario name (the CLI name) -> id of the rule expected to catch it
SCENARIOS: dict[str, str] = {
    "failed-login-burst": "failed-login-burst",
    "password-spray": "password-spray",
    "brute-force-success": "brute-force-success",
    "login-without-mfa": "login-without-mfa",
    "admin-old-api-key-attempt": "admin-old-api-key-attempt",
    "new-country-login": "unusual-geoip-login",
    "impossible-travel": "impossible-travel",
    "mfa-disabled": "mfa-disabled",
    "admin-privilege-granted": "admin-privilege-granted",
    "admin-created": "admin-created",
    "mass-user-deletion": "mass-user-deletion",
    "api-key-or-policy-change": "api-key-or-policy-change",
    "admin-login-without-mfa": "admin-login-without-mfa",
    "admin-brute-force": "admin-login-failure-burst",
    "admin-impossible-travel": "admin-impossible-travel",
    "radius-brute-force": "brute-force-success",
    "ldap-brute-force": "brute-force-success",
    "ldap-spray": "ldap-bind-failures",
    "brute-force-new-country": "brute-force-success",
    "failed-login-new-country": "failed-login-new-country",
    "denied-country": "denied-country-activity",
    "admin-deleted-or-org-changed": "admin-deleted-or-org-changed",
    "privileged-group-member-added": "privileged-group-member-added",
    "di-alert": "di-alert-raised",
    "mfa-exclusion-granted": "mfa-exclusion-granted",
}

# Attackers' failures come from abroad: a country new for the user, sometimes a denied
# one (KP, IR are attacker places).
_FROM_ABROAD = ("failed-login-new-country", "denied-country-activity")

#: other rules an attack legitimately trips as well (true positives, not noise)
ALSO_EXPECTED: dict[str, tuple[str, ...]] = {
    "failed-login-burst": _FROM_ABROAD,
    "password-spray": _FROM_ABROAD,
    "admin-old-api-key-attempt": ("denied-country-activity",),
    "brute-force-success": (
        "failed-login-burst",
        "unusual-geoip-login",
        "impossible-travel",
        *_FROM_ABROAD,
    ),
    "impossible-travel": ("unusual-geoip-login", "denied-country-activity"),
    "admin-brute-force": (
        "brute-force-success",
        "admin-impossible-travel",
        "denied-country-activity",
    ),
    # the incident of issue 15: one brute force from a new country, five rules
    "brute-force-new-country": (
        "failed-login-burst",
        "unusual-geoip-login",
        "impossible-travel",
        "failed-login-new-country",
    ),
    "failed-login-new-country": (),
    "denied-country": ("failed-login-new-country",),
}


@dataclass(slots=True)
class InjectedAttack:
    """Ground truth for one injected attack: which rule should alert, on what group.

    ``group`` maps the rule's ``by`` field paths to the expected values; it is empty for
    rules that alert on every matching event. ``also_rules`` are other rules the same
    events rightly trip (an attacker's success from abroad is also a new country).
    """

    scenario: str
    rule: str
    group: dict[str, str]
    start_ns: int
    end_ns: int
    event_ids: list[str]
    also_rules: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["also_rules"] = list(self.also_rules)
        data["start_time"] = format_timestamp(self.start_ns)
        data["end_time"] = format_timestamp(self.end_ns)
        return data


#: what a scenario builder returns: (events, expected alert group, blackouts)
_Built = tuple[list[Item], dict[str, str], list[tuple[int, int, int]]]


class AttackScenarios(EventEmitter):
    """One builder per scenario (a mixin of ``TrafficGenerator``).

    A builder gets the attack's RNG, its cycle (how many times the scenario came round
    before), its start and the span it may use; it returns the events, the expected
    alert group and the blackouts ``(person index, from ns, to ns)`` of its victims.
    """

    # set by TrafficGenerator
    people: list[Person]
    admins: list[Admin]
    groups: list[dict[str, Any]]
    servers: list[dict[str, Any]]
    _by_name: dict[str, Person]
    _victim_order: list[int]
    _pools: list[list[int]]

    def _victim(self, cycle: int, lane: int) -> Person:
        """A settled person (no trips) whose own logins are part of the attack.

        Each lane (brute force, new country, impossible travel, login without MFA) draws
        from its own pool of people, so attacks of different scenarios never land on the
        same person and blur each other; within a lane, victims rotate.
        """
        pool = self._pools[lane % VICTIM_LANES]
        return self.people[pool[cycle % len(pool)]]

    def _anyone(self, cycle: int, lane: int) -> Person:
        """A person targeted from outside (failures, admin changes about them)."""
        order = self._victim_order
        return self.people[order[(cycle * 4 + lane) % len(order)]]

    def _attacker(self, rng: random.Random) -> tuple[Place, str]:
        place = rng.choice(ATTACKER_PLACES)
        return place, place.ip(rng)

    def _failure(
        self,
        out: list[Any],
        rng: random.Random,
        t: int,
        username: str,
        place: Place,
        ip: str,
        ua: dict[str, Any],
    ) -> None:
        person = self._by_name.get(username)
        initiated = person.initiated_by if person else {"type": "user", "username": username}
        self._directory(out, rng, t, "user_login_attempt",
                        {"initiated_by": initiated, "resource": initiated, "success": False, "mfa": False,
                         "mfa_meta": {"type": "none"}, "client_ip": ip, "auth_context": FAILED_CONTEXT,
                         "geoip": place.geo, "useragent": ua, "error_message": "Invalid credentials"})  # fmt: skip

    def _a_burst(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._anyone(cycle, 0)
        out: list[Item] = []
        sources = [self._attacker(rng) for _ in range(rng.randrange(2, 4))]
        n = rng.randrange(12, 19)
        for i in range(n):
            place, ip = sources[i % len(sources)]
            self._failure(
                out,
                rng,
                start + i * span // n + rng.randrange(0, NS),
                victim.username,
                place,
                ip,
                UA_GO,
            )
        end = out[-1][0]
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 10 * MINUTE_NS, end + HOUR_NS)]

    def _a_spray(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        place, ip = self._attacker(rng)
        out: list[Item] = []
        names = [
            p.username
            for p in rng.sample(self.people, k=min(len(self.people), rng.randrange(12, 20)))
        ]
        names += ["admin", "test", "it.support", "helpdesk", "j.smith"][
            : max(0, 18 - len(names)) + 3
        ]
        ua = rng.choice((UA_PYTHON, UA_GO, UA_CURL))
        for i, name in enumerate(names):
            self._failure(
                out,
                rng,
                start + i * span // len(names) + rng.randrange(0, NS),
                name,
                place,
                ip,
                ua,
            )
        return out, {"client_ip": ip}, []

    def _a_brute_success(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._victim(cycle, 3)
        near = [pl for pl in ATTACKER_PLACES if km(victim.home, pl) < 8500] or ATTACKER_PLACES
        place = near[int(rng.random() * len(near))]
        ip = place.ip(rng)
        out: list[Item] = []
        n = rng.randrange(12, 16)
        for i in range(n):
            self._failure(
                out, rng, start + i * span // (n + 1), victim.username, place, ip, UA_MAC_CHROME
            )
        self._portal_login(out, rng, start + span, victim, place, ip, UA_MAC_CHROME, success=True)
        end = out[-1][0]
        # the victim's own logins resume once a flight back from the attacker could have
        # landed: the incident is one impossible journey, not two
        need = max(HOUR_NS, min(flight_ns(victim.home, place), MAX_BLACKOUT_NS - HOUR_NS))
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 10 * MINUTE_NS, end + need)]

    def _a_no_mfa(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """A user who signs in with MFA (an earlier login proves it) now signs in without."""
        out: list[Item] = []
        person = self._victim(cycle, 2)  # settled: never abroad, so home is where they are
        where = (person.home, person.home_ip, person.laptop.ua)
        self._portal_login(out, rng, start, person, *where, success=True, mfa=True)
        out[-1][2]["_evidence"] = False
        self._portal_login(out, rng, start + span, person, *where, success=True, mfa=False)
        group = {"initiated_by.username": person.username}
        return out, group, [(person.index, start - 10 * MINUTE_NS, start + span + HOUR_NS)]

    def _a_admin_no_mfa(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[(cycle + 2) % len(self.admins)]  # not admin-brute-force's
        out: list[Item] = []
        self._admin_login(out, rng, start, admin, mfa=False, legacy=cycle % 2 == 1)
        return out, {}, []

    def _admin_victim(self, cycle: int) -> Admin:
        return self.admins[cycle % len(self.admins)]

    def _a_admin_brute(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """Admin console passwords guessed from abroad, then a login (MFA fatigued)."""
        admin = self._admin_victim(cycle)
        place, ip = self._attacker(rng)
        out: list[Item] = []
        n = rng.randrange(7, 10)
        for i in range(n):
            t = start + i * span // (n + 1)
            self._directory(out, rng, t, "admin_login_attempt",
                            {"initiated_by": admin.initiated_by, "geoip": place.geo, "useragent": UA_GO,
                             "mfa": False, "success": False, "client_ip": ip})  # fmt: skip
        self._directory(out, rng, start + span, "admin_login_attempt",
                        {"initiated_by": admin.initiated_by, "geoip": place.geo, "useragent": UA_GO,
                         "mfa": True, "success": True, "client_ip": ip})  # fmt: skip
        assert admin.person is not None
        need = max(HOUR_NS, min(flight_ns(admin.place, place), MAX_BLACKOUT_NS - HOUR_NS))
        group = {"initiated_by.email": admin.email}
        return out, group, [(admin.person.index, start - 10 * MINUTE_NS, start + span + need)]

    def _a_admin_travel(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """An admin at home, then on the console from another continent minutes later."""
        admin = self._admin_victim(cycle + 1)
        far = max(
            (pl for pl in ATTACKER_PLACES if pl.country not in _DENIED),
            key=lambda pl: (4000 < km(admin.place, pl) < 8500, rng.random()),
        )
        ip = far.ip(rng)
        out: list[Item] = []
        self._directory(out, rng, start, "admin_login_attempt",
                        {"initiated_by": admin.initiated_by, "geoip": admin.place.geo, "useragent": admin.ua,
                         "mfa": True, "success": True, "client_ip": admin.ip})  # fmt: skip
        t = start + rng.randrange(60, max(61, span // NS)) * NS
        self._directory(out, rng, t, "admin_login_attempt",
                        {"initiated_by": admin.initiated_by, "geoip": far.geo, "useragent": UA_WIN_CHROME,
                         "mfa": True, "success": True, "client_ip": ip})  # fmt: skip
        assert admin.person is not None
        need = min(flight_ns(admin.place, far), MAX_BLACKOUT_NS - HOUR_NS)
        group = {"initiated_by.email": admin.email}
        return out, group, [(admin.person.index, start - 10 * MINUTE_NS, t + need)]

    def _a_radius_brute(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """Wi-Fi passwords guessed at the office (MS-CHAP failures), then a success."""
        victim = self._anyone(cycle, 1)
        office = self.people[0].home
        out: list[Item] = []
        n = rng.randrange(7, 10)
        for i in range(n):
            self._radius(out, rng, start + i * span // (n + 1), victim.username,
                         victim.radius_initiated_by, office, victim.office_ip, ok=False)  # fmt: skip
        self._radius(out, rng, start + span, victim.username, victim.radius_initiated_by,
                     office, victim.office_ip)  # fmt: skip
        group = {"initiated_by.username": victim.username, "username": victim.username}
        return out, group, [(victim.index, start - 10 * MINUTE_NS, start + span + HOUR_NS)]

    def _ldap_bind(self, out: list[Item], rng: random.Random, t: int, name: str, ok: bool) -> None:
        """A bind in the shape JumpCloud documents for LDAP: no client_ip, no initiated_by."""
        self._directory(out, rng, t, "ldap_bind",
                        {"connection_id": _b64(rng.getrandbits(256)), "operation_number": 0,
                         "dn": f"uid={name},ou=Users,o={self.org_id},dc=jumpcloud,dc=com",
                         "auth_method": "simple", "mech": "simple", "start_tls": False,
                         "tls_established": True, "username": name, "success": ok,
                         "error_code": 0 if ok else 49,
                         "error_message": "" if ok else "invalid credentials"})  # fmt: skip
        out[-1][2]["service"] = "ldap"
        del out[-1][2]["provider"]

    def _a_ldap_brute(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._anyone(cycle, 3)
        out: list[Item] = []
        n = 9  # the two-week corpus: 9 failed binds, then a success, unnoticed
        for i in range(n):
            self._ldap_bind(out, rng, start + i * span // (n + 1), victim.username, False)
        self._ldap_bind(out, rng, start + span, victim.username, True)
        return out, {"username": victim.username}, [(victim.index, start, start + span)]

    def _a_ldap_spray(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        out: list[Item] = []
        names = [p.username for p in rng.sample(self.people, k=min(len(self.people), 6))]
        names += ["admin", "ldapadmin", "backup"]
        for i, name in enumerate(names):
            self._ldap_bind(out, rng, start + i * span // len(names), name, False)
        return out, {}, []

    def _a_brute_new_country(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """Issue 15's incident: a portal login at home, then a brute force from a country
        new for the victim, far enough to be impossible travel, ending in a success."""
        pool = self._pools[3]
        victim = self.people[pool[(cycle + len(pool) // 2) % len(pool)]]
        # a country new for the victim each time round (attackers' places and holiday
        # countries of other continents, none of them denied), far enough for travel
        home = victim.home.geo["continent_code"]
        places = [pl for pl in ATTACKER_PLACES if pl.country not in _DENIED]
        places += [pl for c, holidays in HOLIDAYS.items() if c != home for pl in holidays]
        places = [pl for pl in places if km(victim.home, pl) > 1500]
        place = places[(cycle // len(pool)) % len(places)]
        ip = place.ip(rng)
        out: list[Item] = []
        home = (victim.home, victim.home_ip, victim.laptop.ua)
        self._portal_login(out, rng, start, victim, *home, success=True, mfa=True)
        out[-1][2]["_evidence"] = False
        t0 = start + 2 * MINUTE_NS
        n = rng.randrange(12, 16)
        for i in range(n):
            self._failure(out, rng, t0 + i * (span - 2 * MINUTE_NS) // (n + 1), victim.username,
                          place, ip, UA_MAC_CHROME)  # fmt: skip
        self._portal_login(out, rng, start + span, victim, place, ip, UA_MAC_CHROME,
                           success=True, mfa=True)  # fmt: skip
        need = max(HOUR_NS, min(flight_ns(victim.home, place), MAX_BLACKOUT_NS - HOUR_NS))
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 10 * MINUTE_NS, start + span + need)]

    def _a_failed_new_country(
        self, rng: random.Random, cycle: int, start: int, span: int
    ) -> _Built:
        """Two tries of a user's password from a country new for them: no burst."""
        victim = self._anyone(cycle, 2)
        # a holiday country of another continent: no attack, trip or holiday of this
        # victim's ever comes from there, so it stays new for them
        continent = "AS" if victim.home.geo["continent_code"] == "NA" else "NA"
        place = rng.choice(HOLIDAYS[continent])
        ip = place.ip(rng)
        out: list[Item] = []
        for i in range(2):
            self._failure(out, rng, start + i * span // 2, victim.username, place, ip, UA_GO)
        return out, {"initiated_by.username": victim.username}, []

    def _a_denied(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """One failed portal login from a denied country (North Korea or Iran)."""
        victim = self._anyone(cycle, 0)
        place = [pl for pl in ATTACKER_PLACES if pl.country in _DENIED][cycle % 2]
        ip = place.ip(rng)
        out: list[Item] = []
        self._failure(out, rng, start, victim.username, place, ip, UA_PYTHON)
        return out, {"geoip.country_code": place.country, "client_ip": ip}, []

    def _a_admin_org(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        out: list[Item] = []
        if cycle % 2 == 0:
            other = self.admins[(cycle + 1) % len(self.admins)]
            gone = {"resource": {"id": other.admin_id, "type": "admin", "email": other.email}}
            self._directory(out, rng, start, "admin_delete", self._admin_body(admin, gone))
        else:
            body: dict[str, Any] = {"resource": {"id": self.org_id, "type": "organization", "displayName": "Example Corp"},
                    "changes": [{"field": "settings.passwordPolicy",
                                 "from": {"enableMaxLoginAttempts": True, "maxLoginAttempts": 6},
                                 "to": {"enableMaxLoginAttempts": False, "maxLoginAttempts": 6}}]}  # fmt: skip
            self._directory(out, rng, start, "organization_update", self._admin_body(admin, body))
        return out, {"initiated_by.email": admin.email}, []

    def _a_privileged_group(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        target = self._anyone(cycle, 1)
        to = {"name": target.username, "type": "user", "object_id": target.user_id}
        if cycle % 2 == 0:
            frm = {"name": "IT Admins", "type": "user_group", "object_id": oid(rng, 1_600_000_000)}
            attributes = None
        else:
            server = self.servers[cycle % len(self.servers)]
            frm = {"name": server["hostname"], "type": "system", "object_id": server["id"]}
            attributes = {"sudo": {"enabled": True, "withoutPassword": False}}
        assoc = {"op": "add", "action_source": "manual", "connection": {"from": frm, "to": to},
                 "attributes": attributes}  # fmt: skip
        out: list[Item] = []
        self._directory(
            out, rng, start, "association_change", self._admin_body(admin, {"association": assoc})
        )
        return out, {"initiated_by.email": admin.email}, []

    def _a_di_alert(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        """JumpCloud's own alerting raises an alert (fields per the DI docs; no public sample)."""
        victim = self._anyone(cycle, 2)
        event_id = oid(rng, start // NS)
        ns = start - start % MS
        event: dict[str, Any] = {"id": event_id, "event_type": "alert_created", "service": "alerts", "@version": "1",
                 "organization": self.org_id, "timestamp": self._ts_ms(ns),
                 "category": "authentication", "severity": "high", "username": victim.username,
                 "correlation": {"id": oid(rng, start // NS)},
                 "resource": {"id": oid(rng, start // NS), "context": "user", "source_id": victim.user_id,
                              "source_type": "user", "reference_id": oid(rng, start // NS)}}  # fmt: skip
        return [(ns, event_id, event)], {}, []

    def _a_mfa_exclusion(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        target = self._anyone(cycle, 3)
        until = format_timestamp(start + 7 * 24 * HOUR_NS)
        body = {"resource": target.resource,
                "changes": [{"field": "mfa.exclusion", "from": False, "to": True},
                            {"field": "mfa.exclusionUntil", "from": None, "to": until}],
                "correlation": {}, "message_chain": {}}  # fmt: skip
        out: list[Item] = []
        self._directory(out, rng, start, "user_update", self._admin_body(admin, body))
        return out, {"initiated_by.email": admin.email}, []

    def _a_old_api_key(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        place, ip = (DATACENTER, DATACENTER.ip(rng)) if cycle % 2 else self._attacker(rng)
        out: list[Item] = []
        self._directory(out, rng, start, "admin_old_api_key_attempt",
                        {"initiated_by": admin.initiated_by, "geoip": place.geo, "useragent": UA_CURL,
                         "auth_method": "api key", "success": False, "client_ip": ip,
                         "resource": {"type": "api", "base_url": "https://console.jumpcloud.com/api/systemusers"},
                         "error_message": "API key has been regenerated; this key is no longer valid"})  # fmt: skip
        return out, {}, []

    def _a_new_country(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._victim(cycle, 0)
        pool = HOLIDAYS.get(victim.home.geo["continent_code"], HOLIDAYS["EU"])
        place = pool[(cycle // len(self._pools[0])) % len(pool)]  # new pair each time round
        ip = place.ip(rng)
        need = min(flight_ns(victim.home, place), MAX_BLACKOUT_NS - HOUR_NS)
        out: list[Item] = []
        self._portal_login(out, rng, start, victim, place, ip, victim.laptop.ua, success=True)
        t = start
        for _ in range(rng.randrange(1, 4)):
            t += rng.randrange(20, 90) * NS
            self._sso(out, rng, t, victim, place, ip, victim.laptop.ua)
            out[-1][2]["_evidence"] = False
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - need, t + need)]

    def _a_travel(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._victim(cycle, 1)
        # far enough to be impossible in minutes, near enough that the victim's quiet time
        # afterwards (a flight back) stays under half a day
        far = max(
            ATTACKER_PLACES,
            key=lambda pl: (
                4000 < km(victim.home, pl) < 8500,
                km(victim.home, pl) > 4000,
                rng.random(),
            ),
        )
        ip = far.ip(rng)
        out: list[Item] = []
        self._portal_login(
            out, rng, start, victim, victim.home, victim.home_ip, victim.laptop.ua, success=True
        )
        t = start + rng.randrange(60, max(61, span // NS)) * NS
        self._portal_login(out, rng, t, victim, far, ip, UA_WIN_CHROME, success=True)
        need = min(flight_ns(victim.home, far), MAX_BLACKOUT_NS - HOUR_NS)
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 5 * MINUTE_NS, t + need)]

    def _a_mfa_disabled(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        target = self._anyone(cycle, 2)
        out: list[Item] = []
        variant = cycle % 4
        body: dict[str, Any]
        if variant == 0:
            body = {"resource": {"id": admin.admin_id, "type": "admin", "email": admin.email}}
            self._directory(out, rng, start, "admin_totp_disable", self._admin_body(admin, body))
        elif variant == 1:
            self._directory(
                out,
                rng,
                start,
                "totp_delete_enrollment",
                self._admin_body(admin, {"resource": target.resource}),
            )
        else:
            change = (
                {"field": "enable_user_portal_multifactor", "from": True, "to": False}
                if variant == 2
                else {"field": "totp_enabled", "from": True, "to": False}
            )
            body = {
                "resource": target.resource,
                "changes": [change],
                "correlation": {},
                "message_chain": {},
            }
            self._directory(out, rng, start, "user_update", self._admin_body(admin, body))
        return out, {}, []

    def _a_privilege(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        target = self._anyone(cycle, 3)
        out: list[Item] = []
        if cycle % 2 == 0:
            self._directory(
                out,
                rng,
                start,
                "user_admin_granted",
                self._admin_body(admin, {"resource": target.resource}),
            )
        else:
            group = rng.choice(self.groups)
            body = {"resource": {"id": group["object_id"], "type": "user_group", "name": group["name"]},
                    "changes": [{"field": "admins", "to": [{"id": target.user_id, "username": target.username}]}]}  # fmt: skip
            self._directory(
                out, rng, start, "user_group_admin_grant", self._admin_body(admin, body)
            )
        return out, {}, []

    def _a_admin_created(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        email = f"{rng.choice(('support', 'it-ops', 'backup', 'sysadmin'))}{rng.randrange(2, 99)}@{ADMIN_DOMAIN}"
        new_id = oid(rng, start // NS)
        body = {"resource": {"id": new_id, "type": "admin", "email": email},
                "changes": [{"field": "email", "to": email}, {"field": "roleName", "to": "Administrator With Billing"},
                            {"field": "enableMultiFactor", "to": False}]}  # fmt: skip
        out: list[Item] = []
        self._directory(out, rng, start, "admin_create", self._admin_body(admin, body))
        return out, {}, []

    def _a_mass_delete(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        out: list[Item] = []
        n = rng.randrange(11, 18)
        for i in range(n):
            gone = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{rng.randrange(100, 999)}"
            body = {
                "resource": {
                    "id": oid(rng, start // NS - 10**7),
                    "type": "user",
                    "username": gone,
                }
            }
            body = self._admin_body(admin, body)
            del body["success"], body["useragent"]  # as in the real user_delete sample
            self._directory(out, rng, start + i * span // n, "user_delete", body)
        return out, {"initiated_by.email": admin.email}, []

    def _a_key_policy(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        out: list[Item] = []
        variant = cycle % 4
        if variant == 0:
            body = {"resource": {"id": oid(rng, start // NS), "type": "policy", "name": "Disk Encryption (macOS)"},
                    "changes": [{"field": "values", "from": [{"enabled": True}], "to": [{"enabled": False}]}]}  # fmt: skip
            self._directory(out, rng, start, "policy_update", self._admin_body(admin, body))
        elif variant == 1:
            body = {
                "resource": {
                    "id": oid(rng, start // NS),
                    "type": "authn_policy",
                    "name": "Require MFA outside office",
                }
            }
            self._directory(out, rng, start, "authnpolicy_delete", self._admin_body(admin, body))
        elif variant == 2:
            body = {"resource": {"id": oid(rng, start // NS), "type": "iplist", "name": "Office egress"},
                    "changes": [{"field": "ips", "from": ["192.0.2.0/24"], "to": ["192.0.2.0/24", "0.0.0.0/0"]}]}  # fmt: skip
            self._directory(out, rng, start, "iplist_update", self._admin_body(admin, body))
        else:
            body = {"resource": {"id": admin.admin_id, "type": "admin", "email": admin.email},
                    "changes": [{"field": "apiKey"}]}  # fmt: skip
            self._directory(out, rng, start, "admin_update", self._admin_body(admin, body))
        return out, {}, []


BUILDERS: dict[str, Callable[[AttackScenarios, random.Random, int, int, int], _Built]] = {
    "failed-login-burst": AttackScenarios._a_burst,
    "password-spray": AttackScenarios._a_spray,
    "brute-force-success": AttackScenarios._a_brute_success,
    "login-without-mfa": AttackScenarios._a_no_mfa,
    "admin-old-api-key-attempt": AttackScenarios._a_old_api_key,
    "new-country-login": AttackScenarios._a_new_country,
    "impossible-travel": AttackScenarios._a_travel,
    "mfa-disabled": AttackScenarios._a_mfa_disabled,
    "admin-privilege-granted": AttackScenarios._a_privilege,
    "admin-created": AttackScenarios._a_admin_created,
    "mass-user-deletion": AttackScenarios._a_mass_delete,
    "api-key-or-policy-change": AttackScenarios._a_key_policy,
    "admin-login-without-mfa": AttackScenarios._a_admin_no_mfa,
    "admin-brute-force": AttackScenarios._a_admin_brute,
    "admin-impossible-travel": AttackScenarios._a_admin_travel,
    "radius-brute-force": AttackScenarios._a_radius_brute,
    "ldap-brute-force": AttackScenarios._a_ldap_brute,
    "ldap-spray": AttackScenarios._a_ldap_spray,
    "brute-force-new-country": AttackScenarios._a_brute_new_country,
    "failed-login-new-country": AttackScenarios._a_failed_new_country,
    "denied-country": AttackScenarios._a_denied,
    "admin-deleted-or-org-changed": AttackScenarios._a_admin_org,
    "privileged-group-member-added": AttackScenarios._a_privileged_group,
    "di-alert": AttackScenarios._a_di_alert,
    "mfa-exclusion-granted": AttackScenarios._a_mfa_exclusion,
}

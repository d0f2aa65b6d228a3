"""Normal behaviour: what the org does when nobody attacks it.

People work their hours in their timezone, log in at the portal (sometimes after typos,
rarely into a lockout), launch SSO apps, join office Wi-Fi over RADIUS, ssh to servers and
fly abroad; admins make ordinary changes; a nightly HR sync updates users with an API
key; printers and an LDAP sync account bind all day without MFA. This is the traffic the
rule pack must stay quiet on, so it lives apart from the attacks.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from alerting.durations import DAY_NS, HOUR_NS, MINUTE_NS, MS, NS
from alerting.simulator.traffic.constants import ADMIN_DOMAIN, TRIP_EPOCH_NS, Item
from alerting.simulator.traffic.events import EventEmitter
from alerting.simulator.traffic.ids import oid
from alerting.simulator.traffic.mixes import TrafficMix
from alerting.simulator.traffic.places import DESTINATIONS, Place, flight_ns
from alerting.simulator.traffic.population import (
    DEPARTMENTS,
    FIRST_NAMES,
    JOB_TITLES,
    LAST_NAMES,
    UA_CURL,
    UA_PYTHON,
    Admin,
    Person,
)


def _unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the parts (no global RNG state)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class NormalBehaviour(EventEmitter):
    """An hour of everyone's ordinary activity (a mixin of ``TrafficGenerator``)."""

    # set by TrafficGenerator
    seed: int
    rate: float
    mix: TrafficMix
    admins: list[Admin]
    automation: Admin
    servers: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    ldap_connection_ip: str
    _trip_cache: dict[tuple[int, int], tuple[int, int, int, int, Place, str] | None]

    # ----------------------------------------------------------------- travel

    def _trip(self, p: Person, epoch: int) -> tuple[int, int, int, int, Place, str] | None:
        """(depart, arrive, leave, back, place, hotel ip) of a person's trip in a week."""
        key = (p.index, epoch)
        if key in self._trip_cache:
            return self._trip_cache[key]
        trip = None
        if p.traveller and _unit(self.seed, "trip", p.index, epoch) < 0.6:
            rng = random.Random(f"{self.seed}:trip:{p.index}:{epoch}")
            dest = DESTINATIONS[rng.choice(p.trips)]
            fly = flight_ns(p.home, dest)
            depart = epoch * TRIP_EPOCH_NS + int(rng.uniform(0.5, 2.5) * DAY_NS)
            arrive = depart + fly
            leave = arrive + int(rng.uniform(1.5, 3.0) * DAY_NS)
            trip = (depart, arrive, leave, leave + fly, dest, dest.ip(rng))
        if len(self._trip_cache) > 100_000:
            self._trip_cache.clear()
        self._trip_cache[key] = trip
        return trip

    def location(self, p: Person, ns: int) -> tuple[Place, str] | None:
        """Where a person is at ``ns`` and their public IP there; None while flying."""
        if p.traveller:
            trip = self._trip(p, ns // TRIP_EPOCH_NS)
            if trip is not None:
                depart, arrive, leave, back, place, ip = trip
                if depart <= ns < arrive or leave <= ns < back:
                    return None
                if arrive <= ns < leave:
                    return place, ip
        return p.home, p.home_ip

    # ----------------------------------------------------------------- people

    def _activity(self, p: Person, place: Place, t0: int) -> tuple[float, bool, int]:
        """(activity weight, is this the first working hour, local weekday)."""
        local = t0 // NS + self._offset(place.tz, t0)
        hour = local // 3600 % 24
        weekday = (local // 86400 + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        workday = weekday < 5
        if p.start_hour <= hour < p.end_hour:
            return (1.0 if workday else 0.1), (workday and hour == p.start_hour), weekday
        if 18 <= hour < 23 or hour in (6, 7):
            return 0.08, False, weekday
        return 0.01, False, weekday

    def _person_hour(self, rng: random.Random, p: Person, t0: int, out: list[Item]) -> None:
        here = self.location(p, t0 + HOUR_NS // 2)
        if here is None:
            return  # on a plane
        place, ip = here
        weight, day_start, weekday = self._activity(p, place, t0)
        if rng.random() >= min(1.0, weight * 2.5):
            return
        at_home_city = place is p.home
        day = (t0 // NS + self._offset(place.tz, t0)) // 86400
        in_office = (
            at_home_city
            and weekday < 5
            and _unit(self.seed, "office", p.index, day) < p.office_ratio
        )
        if in_office:
            ip = p.office_ip
        rate = self.rate

        def where(ns: int) -> bool:
            spot = self.location(p, ns)
            return spot is not None and spot[0] is place

        ua = p.laptop.ua
        if day_start:
            t = t0 + rng.randrange(0, 20 * MINUTE_NS)
            if where(t):
                self._system_login(out, rng, t, p, place, ip, ok=True)
                t += rng.randrange(30, 300) * NS
                self._day_login(rng, p, t, place, ip, ua, out)
                if rng.random() < 0.04:
                    self._password_change(
                        rng, p, t + rng.randrange(600, 3000) * NS, place, ip, ua, out
                    )
        mix = self.mix
        for _ in range(_poisson(rng, 0.25 * weight * rate * mix.portal)):
            t = t0 + int(rng.random() * HOUR_NS)
            if where(t):
                device = p.phone if p.phone is not None and rng.random() < 0.3 else p.laptop
                login_ip = ip if device is p.laptop else p.home_ip if at_home_city else ip
                if mix.typo_rate and rng.random() < mix.typo_rate:
                    for _ in range(rng.choice((1, 1, 2, 3))):
                        self._portal_login(
                            out, rng, t, p, place, login_ip, device.ua, success=False
                        )
                        t += rng.randrange(5, 18) * NS
                self._portal_login(out, rng, t, p, place, login_ip, device.ua, success=True)
        for _ in range(_poisson(rng, 36.0 * weight * rate * mix.sso)):
            t = t0 + int(rng.random() * HOUR_NS)
            if where(t):
                self._sso(out, rng, t, p, place, ip, ua, ok=rng.random() > 0.01)
        if in_office:
            for _ in range(_poisson(rng, 30.0 * weight * rate * mix.radius)):
                t = t0 + int(rng.random() * HOUR_NS)
                if where(t):
                    fail = rng.random() < 0.01
                    if fail:
                        self._radius(
                            out, rng, t, p.username, p.radius_initiated_by, place, ip, ok=False
                        )
                        t += rng.randrange(3, 20) * NS
                    self._radius(out, rng, t, p.username, p.radius_initiated_by, place, ip)
        if p.engineer:
            for _ in range(_poisson(rng, 2.0 * weight * rate)):
                t = t0 + int(rng.random() * HOUR_NS)
                if where(t):
                    server = rng.choice(self.servers)
                    if rng.random() < 0.03:
                        self._system_login(out, rng, t, p, place, ip, ok=False, server=server)
                        t += rng.randrange(5, 30) * NS
                    self._system_login(out, rng, t, p, place, ip, ok=True, server=server)

    def _day_login(
        self,
        rng: random.Random,
        p: Person,
        t: int,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        out: list[Item],
    ) -> None:
        """The morning portal login: sometimes typos first, rarely a lockout."""
        roll = rng.random()
        if roll < 0.003:
            for _ in range(4):
                self._portal_login(out, rng, t, p, place, ip, ua, success=False)
                t += rng.randrange(4, 25) * NS
            self._directory(out, rng, t + NS, "user_lockout",
                            {"initiated_by": p.initiated_by, "resource": p.resource, "success": True,
                             "client_ip": ip, "geoip": place.geo, "useragent": ua})  # fmt: skip
            t += rng.randrange(45, 110) * MINUTE_NS
            admin = self.admins[rng.randrange(len(self.admins))]
            self._directory(
                out, rng, t, "user_unlocked", self._admin_body(admin, {"resource": p.resource})
            )
            t += rng.randrange(2, 10) * MINUTE_NS
        elif roll < 0.09:
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                self._portal_login(out, rng, t, p, place, ip, ua, success=False)
                t += rng.randrange(5, 18) * NS
        self._portal_login(out, rng, t, p, place, ip, ua, success=True)
        t += rng.randrange(5, 60) * NS
        for _ in range(rng.randrange(2, 6)):
            self._sso(out, rng, t, p, place, ip, ua)
            t += rng.randrange(3, 120) * NS

    def _password_change(
        self,
        rng: random.Random,
        p: Person,
        t: int,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        out: list[Item],
    ) -> None:
        """A user changes their password on the portal; the laptop agent reports it too."""
        self._directory(out, rng, t, "user_password_change",
                        {"initiated_by": p.initiated_by, "resource": p.resource, "success": True,
                         "client_ip": ip, "geoip": place.geo, "useragent": ua,
                         "changes": [{"field": "password"}]})  # fmt: skip
        t += rng.randrange(60, 900) * NS
        t -= t % NS
        event_id = oid(rng, t // NS)
        drift = rng.random() < 0.4  # schema drift seen in the wild: an object, not a list
        out.append(
            (
                t,
                event_id,
                {
                    "id": event_id,
                    "event_type": "user_password_change",
                    "service": "systems",
                    "@version": "1",
                    "organization": self.org_id,
                    "timestamp": self._ts_s(t),
                    "system_timestamp": self._local_system_time(t, place.tz),
                    "system": p.system,
                    "initiated_by": p.systemuser,
                    "resource": {
                        "type": "systemuser",
                        "id": p.local_user_id,
                        "username": p.local_username,
                    },
                    "username": p.local_username,
                    "success": True,
                    "changes": {"field": "password"} if drift else [{"field": "password"}],
                    "client_ip": ip,
                },
            )
        )

    # ----------------------------------------------------------------- admins

    def _admin_hour(self, rng: random.Random, admin: Admin, t0: int, out: list[Item]) -> None:
        assert admin.person is not None
        weight, day_start, _weekday = self._activity(admin.person, admin.place, t0)
        if self.location(admin.person, t0 + HOUR_NS // 2) != (
            admin.person.home,
            admin.person.home_ip,
        ):
            return
        if day_start or rng.random() < 0.1 * weight:
            t = t0 + int(rng.random() * HOUR_NS)
            self._admin_login(out, rng, t, admin, mfa=True)
        for _ in range(_poisson(rng, 1.5 * weight * self.rate)):
            self._admin_change(rng, admin, t0 + int(rng.random() * HOUR_NS), out)

    def _admin_change(self, rng: random.Random, admin: Admin, t: int, out: list[Item]) -> None:
        """One ordinary administrative change (never an alert-worthy one)."""
        target = rng.choice(self.people)
        roll = rng.random()
        change: dict[str, Any]
        body: dict[str, Any]
        if roll < 0.42:
            field_name = rng.choice(
                ("jobTitle", "department", "location", "phoneNumbers", "manager", "employeeType")
            )
            if field_name == "department":
                change = {
                    "field": field_name,
                    "from": rng.choice(DEPARTMENTS),
                    "to": rng.choice(DEPARTMENTS),
                }
            elif field_name == "jobTitle":
                change = {
                    "field": field_name,
                    "from": rng.choice(JOB_TITLES),
                    "to": rng.choice(JOB_TITLES),
                }
            elif field_name == "phoneNumbers":
                change = {
                    "field": field_name,
                    "from": [],
                    "to": [{"type": "mobile", "number": f"+1 555 01{rng.randrange(10, 99)}"}],
                }
            elif field_name == "manager":
                change = {"field": field_name, "from": None, "to": rng.choice(self.people).user_id}
            elif field_name == "location":
                change = {
                    "field": field_name,
                    "from": target.home.city,
                    "to": target.home.city + " HQ",
                }
            else:
                change = {"field": field_name, "from": "contractor", "to": "full-time"}
            body = {
                "resource": target.resource,
                "changes": [change],
                "correlation": {},
                "message_chain": {},
            }
            self._directory(out, rng, t, "user_update", self._admin_body(admin, body))
        elif roll < 0.72:
            if rng.random() < 0.5:
                to = {"name": target.username, "type": "user", "object_id": target.user_id}
                frm = rng.choice(self.groups)
            else:
                frm = {
                    "name": target.system["hostname"],
                    "type": "system",
                    "object_id": target.system["id"],
                }
                to = {"name": target.username, "type": "user", "object_id": target.user_id}
            assoc = {"op": rng.choice(("add", "add", "remove")), "action_source": "manual",
                     "connection": {"from": frm, "to": to}, "attributes": None}  # fmt: skip
            self._directory(
                out, rng, t, "association_change", self._admin_body(admin, {"association": assoc})
            )
        elif roll < 0.8:
            group = rng.choice(self.groups)
            body = {"resource": {"id": group["object_id"], "type": "user_group", "name": group["name"]},
                    "changes": [{"field": "description", "from": "", "to": f"{group['name']} members"}]}  # fmt: skip
            self._directory(out, rng, t, "group_update", self._admin_body(admin, body))
        elif roll < 0.87:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            username = f"{first}.{last}{rng.randrange(2, 99)}"
            new_id = oid(rng, t // NS)
            body = {"resource": {"id": new_id, "type": "user", "username": username},
                    "changes": [{"field": "username", "to": username},
                                {"field": "email", "to": f"{username}@{ADMIN_DOMAIN}"},
                                {"field": "activated", "to": False}]}  # fmt: skip
            self._directory(out, rng, t, "user_create", self._admin_body(admin, body))
        elif roll < 0.93:
            self._directory(out, rng, t, "user_password_reset_request",
                            self._admin_body(admin, {"resource": target.resource}))  # fmt: skip
        elif roll < 0.975:
            server = rng.choice(self.servers)
            body = {"resource": {"id": server["id"], "type": "system", "displayName": server["displayName"]},
                    "changes": [{"field": "allowSshPasswordAuthentication", "from": True, "to": False}]}  # fmt: skip
            self._directory(out, rng, t, "system_update", self._admin_body(admin, body))
        else:
            gone = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{rng.randrange(2, 99)}"
            body = {"resource": {"id": oid(rng, t // NS - 10**7), "type": "user", "username": gone}}
            body = self._admin_body(admin, body)
            del body["success"], body["useragent"]  # as in the real user_delete sample
            self._directory(out, rng, t, "user_delete", body)

    def _automation_hour(self, rng: random.Random, t0: int, out: list[Item]) -> None:
        """Nightly HR sync at 02:00 New York time: user_update with an API key, curl/python."""
        local = t0 // NS + self._offset("America/New_York", t0)
        if local // 3600 % 24 != 2:
            return
        auto = self.automation
        t = t0 + rng.randrange(0, 5 * MINUTE_NS)
        ua = UA_PYTHON if (local // 86400) % 3 else UA_CURL
        for p in rng.sample(self.people, k=min(len(self.people), rng.randrange(20, 50))):
            t += rng.randrange(200, 3000) * MS
            change = rng.choice(
                (
                    {
                        "field": "employeeIdentifier",
                        "from": None,
                        "to": f"E{rng.randrange(10000, 99999)}",
                    },
                    {
                        "field": "costCenter",
                        "from": f"CC-{rng.randrange(100, 999)}",
                        "to": f"CC-{rng.randrange(100, 999)}",
                    },
                    {
                        "field": "attributes",
                        "from": [],
                        "to": [{"name": "badge", "value": str(rng.randrange(1000, 9999))}],
                    },
                )
            )
            body = self._admin_body(auto, {"resource": p.resource, "changes": [change],
                                           "correlation": {}, "message_chain": {}, "useragent": ua})  # fmt: skip
            self._directory(out, rng, t, "user_update", body)

    # ----------------------------------------------------------------- service accounts

    def _service_hour(self, rng: random.Random, t0: int, out: list[Item]) -> None:
        """LDAP sync every 5 minutes, printers and Wi-Fi devices on RADIUS: never any MFA."""
        office = self.people[0].home
        dc_ip = self.ldap_connection_ip
        base = f"ou=Users,o={self.org_id},dc=jumpcloud,dc=com"
        for minute in range(0, 60, 5):
            t = t0 + minute * MINUTE_NS + rng.randrange(0, 20 * NS)
            self._ldap_session(
                out, rng, t, "svc-ldap-sync", dc_ip, base, searches=rng.randrange(2, 5)
            )
        weight, _start, _wd = self._activity(self.people[0], office, t0)
        for printer in ("printer-2f-ricoh", "printer-3f-hp"):
            for _ in range(_poisson(rng, 2.0 * weight * self.rate)):
                t = t0 + int(rng.random() * HOUR_NS)
                self._ldap_session(out, rng, t, printer, dc_ip, base, searches=1)
            t = t0 + int(rng.random() * HOUR_NS)
            self._radius(
                out,
                rng,
                t,
                printer,
                {"type": "user", "username": printer},
                office,
                dc_ip,
                device=True,
            )
        for minute in range(0, 60, 10):
            t = t0 + minute * MINUTE_NS + rng.randrange(0, 60 * NS)
            self._radius(
                out,
                rng,
                t,
                "svc-wifi",
                {"type": "user", "username": "svc-wifi"},
                office,
                dc_ip,
                device=True,
            )

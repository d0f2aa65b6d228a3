"""The raw event builders: one per DI service, with its ids and timestamp precision.

Every event shape the generator emits is built here, so the field names, nesting, id
formats (ObjectIds, upper-case UUIDs, base64 connection ids) and timestamp precision of
each service (ms for directory/ldap, whole seconds for radius/systems, ns for sso) are
in one place and match the reference samples S1-S14, whatever behaviour asks for them.
"""

from __future__ import annotations

import base64
import functools
import random
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alerting.durations import HOUR_NS, MS, NS
from alerting.simulator.traffic.constants import Item
from alerting.simulator.traffic.ids import oid
from alerting.simulator.traffic.places import Place

if TYPE_CHECKING:
    from alerting.simulator.traffic.population import Admin, Person


def _b64(bits: int) -> str:
    return base64.b64encode(bits.to_bytes(32, "big")).decode()


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_MFA_CONTEXT = {
    kind: {
        "auth_methods": {"password": {"success": True}, kind: {"success": True}},
        "policies_applied": [
            {
                "id": "",
                "name": "Global Policy",
                "metadata": {"action": "ALLOW", "resource_type": "USER_PORTAL"},
            }
        ],
    }
    for kind in ("totp", "duo", "jumpcloud_protect", "webauthn")
}
FAILED_CONTEXT = {"auth_methods": {"password": {"success": False}}}
_NO_MFA_CONTEXT = {
    "auth_methods": {"password": {"success": True}},
    "policies_applied": [
        {
            "id": "",
            "name": "Global Policy",
            "metadata": {"action": "ALLOW", "resource_type": "USER_PORTAL"},
        }
    ],
}
_RADIUS_AUTH_META = {
    "user_password_enabled": True,
    "device_cert_enabled": False,
    "user_cert_enabled": False,
    "auth_idp": "JUMPCLOUD",
    "userid_type": "USERNAME",
}
_RADIUS_AUTH_META_BLANK = {
    "auth_idp": "",
    "userid_type": "USERNAME",
    "user_cert_enabled": False,
    "device_cert_enabled": False,
    "user_password_enabled": False,
}


class EventEmitter:
    """Builds raw events into a bucket's ``out`` list (a mixin of ``TrafficGenerator``).

    Caches the text of each minute and the UTC offset of each (timezone, hour) so that
    formatting stays fast at tens of thousands of events per second.
    """

    # set by TrafficGenerator
    org_id: str
    people: list[Person]
    apps: list[dict[str, Any]]
    server_ips: dict[str, str]
    sso_context: dict[int, dict[str, Any]]
    _minute_text: dict[int, str]
    _offsets: dict[tuple[str, int], int]

    # ----------------------------------------------------------------- timestamps

    def _sec_text(self, seconds: int) -> str:
        minute = seconds // 60
        prefix = self._minute_text.get(minute)
        if prefix is None:
            if len(self._minute_text) > 20_000:
                self._minute_text.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
            self._minute_text[minute] = prefix
        return f"{prefix}{seconds % 60:02d}"

    def _ts_ms(self, ns: int) -> str:
        return f"{self._sec_text(ns // NS)}.{ns // MS % 1000:03d}Z"

    def _ts_s(self, ns: int) -> str:
        return self._sec_text(ns // NS) + "Z"

    def _ts_nano(self, ns: int) -> str:
        return f"{self._sec_text(ns // NS)}.{ns % NS:09d}Z"

    def _offset(self, tz: str, ns: int) -> int:
        """UTC offset in seconds of ``tz`` at the hour containing ``ns`` (cached)."""
        hour = ns // HOUR_NS
        key = (tz, hour)
        offset = self._offsets.get(key)
        if offset is None:
            if len(self._offsets) > 50_000:
                self._offsets.clear()
            delta = datetime.fromtimestamp(hour * 3600, _zone(tz)).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self._offsets[key] = offset
        return offset

    def _local_system_time(self, ns: int, tz: str) -> str:
        offset = self._offset(tz, ns)
        sign = "+" if offset >= 0 else "-"
        hh, mm = divmod(abs(offset) // 60, 60)
        return f"{self._sec_text(ns // NS + offset)}{sign}{hh:02d}:{mm:02d}"

    # ----------------------------------------------------------------- emitters

    def _directory(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        event_type: str,
        body: dict[str, Any],
    ) -> Item:
        ns -= ns % MS
        event_id = oid(rng, ns // NS)
        event = {
            "id": event_id,
            "event_type": event_type,
            "service": "directory",
            "@version": "1",
            "organization": self.org_id,
            "provider": None,
            "timestamp": self._ts_ms(ns),
            **body,
        }
        item = (ns, event_id, event)
        out.append(item)
        return item

    def _portal_login(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        *,
        success: bool,
        mfa: bool | None = None,
    ) -> Item:
        if mfa is None:
            mfa = p.mfa_enrolled  # an org mid-rollout: not everyone has a second factor
        body: dict[str, Any] = {
            "initiated_by": p.initiated_by,
            "resource": p.resource,
            "success": success,
            "mfa": success and mfa,
            "mfa_meta": {"type": p.mfa_type if success and mfa else "none"},
            "client_ip": ip,
            "auth_context": (
                _MFA_CONTEXT[p.mfa_type]
                if success and mfa
                else _NO_MFA_CONTEXT
                if success
                else FAILED_CONTEXT
            ),
            "geoip": place.geo,
            "useragent": ua,
        }
        if not success:
            body["error_message"] = "Invalid credentials"
        return self._directory(out, rng, ns, "user_login_attempt", body)

    def _sso(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        *,
        ok: bool = True,
    ) -> None:
        # The SSO service writes 9 fraction digits, 8 when the last one is 0 (Sekoia's
        # samples); the newest shape (2026) has a whole-second timestamp plus a 9-digit
        # server_timestamp, timestamp_source, target_resource, initiated_by.administrator.
        shape = ns // 1000 % 10  # from the time, not the RNG: other events stay as they were
        server_ns = ns
        if shape < 2:
            ns -= ns % NS
        elif shape == 2:
            ns -= ns % 10
            if ns % 100 == 0:
                ns += 10
        elif ns % 10 == 0:
            ns += 7
        event_id = oid(rng, ns // NS)
        app = self.apps[int(rng.random() * len(self.apps))]
        if shape == 2:
            stamp = f"{self._sec_text(ns // NS)}.{ns % NS // 10:08d}Z"
        elif shape < 2:
            stamp = self._ts_s(ns)
        else:
            stamp = self._ts_nano(ns)
        out.append(
            (
                ns,
                event_id,
                {
                    "initiated_by": p.initiated_by if shape >= 2 else p.sso_initiated_by,
                    "error_message": ""
                    if ok
                    else rng.choice(("not authorized", "application unreachable")),
                    "geoip": place.geo,
                    "sso_token_success": ok,
                    "auth_context": self.sso_context[p.index],
                    "useragent": ua,
                    "mfa": False,
                    "event_type": "sso_auth",
                    "application": app,
                    "provider": "",
                    "service": "sso",
                    "organization": self.org_id,
                    "@version": "1",
                    "client_ip": ip,
                    "id": event_id,
                    "idp_initiated": rng.random() < 0.3,
                    "timestamp": stamp,
                },
            )
        )
        if shape < 2:
            out[-1][2].update(
                server_timestamp=self._ts_nano(server_ns),
                timestamp_source="server",
                target_resource={"type": "APPLICATION"},
            )

    def _radius(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        username: str,
        initiated_by: dict[str, Any],
        place: Place,
        ip: str,
        *,
        ok: bool = True,
        device: bool = False,
    ) -> None:
        ns -= ns % NS
        bits = rng.getrandbits(128)
        h = f"{bits:032X}"
        event_id = f"{h[:8]}-{h[8:12]}-3{h[13:16]}-{h[16:20]}-{h[20:]}"
        blank = device and rng.random() < 0.5  # older NAS firmware: S9's empty fields
        event: dict[str, Any] = {
            "error_message": None if ok else "mschap: MS-CHAP2-Response is incorrect",
            "initiated_by": initiated_by,
            "auth_type": "pap" if device else "eap",
            "nas_mfa_state": "" if blank else "DISABLED",
            "geoip": place.geo,
            "mfa": False,
            "mfa_meta": {"type": "" if blank else "none"},
            "auth_meta": _RADIUS_AUTH_META_BLANK if blank else _RADIUS_AUTH_META,
            "event_type": "radius_auth_attempt",
            "success": ok,
            "service": "radius",
            "organization": self.org_id,
            "@version": "1",
            "client_ip": ip,
            "id": event_id,
            "timestamp": self._ts_s(ns),
            "username": username,
        }
        if not device:
            s9 = ns // NS % 3 == 0  # Sekoia's S9: upper-case auth_type, outer.eap_type null
            event["eap_type"] = "MSCHAPv2"
            event["outer"] = {
                "error_message": None
                if ok
                else "eap_peap: The users session was previously rejected",
                "eap_type": None if s9 else "PEAP",
                "username": username,
            }
            if s9:
                event["auth_type"] = "EAP"
        out.append((ns, event_id, event))

    def _system_login(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        *,
        ok: bool,
        server: dict[str, Any] | None = None,
    ) -> None:
        ns -= ns % NS
        event_id = oid(rng, ns // NS)
        if server is not None:
            process, system, client_ip = "sshd", server, self.server_ips[server["hostname"]]
        else:
            process = {"mac": "loginwindow", "windows": "winlogon", "linux": "gdm-password"}[
                p.laptop.kind
            ]
            system, client_ip = p.system, ip
        verb = "logged in" if ok else "failed to login"
        event: dict[str, Any] = {
            "id": event_id,
            "event_type": "login_attempt",
            "service": "systems",
            "@version": "1",
            "organization": self.org_id,
            "timestamp": self._ts_s(ns),
            "system_timestamp": self._local_system_time(ns, place.tz),
            "system": system,
            "initiated_by": p.systemuser,
            "username": p.local_username,
            "process_name": process,
            "success": ok,
            "client_ip": client_ip,
        }
        if server is not None:
            event["message"] = f"User {p.local_username} {verb} from {ip}, process name: sshd"
            event["src_ip"] = ip
            event["src_geoip"] = {
                "country_code": place.country,
                "region_name": place.geo["region_name"],
                "timezone": place.tz,
                "continent_code": place.geo["continent_code"],
            }
        else:
            event["message"] = f"User {p.local_username} {verb}, process name: {process}"
            if p.laptop.kind == "windows":
                event["windows_meta"] = {"elevated": False, "logon_type": "2"}
        out.append((ns, event_id, event))

    def _admin_login(
        self,
        out: list[Item],
        rng: random.Random,
        ns: int,
        admin: Admin,
        *,
        mfa: bool,
        success: bool = True,
        place: Place | None = None,
        ip: str | None = None,
        legacy: bool | None = None,
    ) -> Item:
        """An admin console login. Real ones carry ``mfa`` but no ``mfa_meta``; one in
        five is in JumpCloud's documented 2020 shape: the admin in ``resource``, no
        ``initiated_by``, no ``service``, ``geoip.country_code2`` and no coordinates."""
        place = place or admin.place
        body: dict[str, Any] = {"success": success, "mfa": mfa, "client_ip": ip or admin.ip}
        if legacy or (legacy is None and ns // MS % 5 == 0):
            geo = {k: v for k, v in place.geo.items() if k not in ("latitude", "longitude")}
            geo["country_code2"] = geo.pop("country_code")
            body["resource"] = {"id": admin.admin_id, "type": "admin", "email": admin.email}
            body["geoip"] = geo
            body["useragent"] = {**admin.ua, "build": ""}
            item = self._directory(out, rng, ns, "admin_login_attempt", body)
            del item[2]["service"]
            return item
        body["initiated_by"] = admin.initiated_by
        body["geoip"] = place.geo
        body["useragent"] = admin.ua
        return self._directory(out, rng, ns, "admin_login_attempt", body)

    def _admin_body(self, admin: Admin, extra: dict[str, Any]) -> dict[str, Any]:
        """The fields every admin-initiated directory event carries, plus ``extra``."""
        return {
            "initiated_by": admin.initiated_by,
            "geoip": admin.place.geo,
            "useragent": admin.ua,
            "auth_method": "api key" if admin.automation else "session",
            "success": True,
            "client_ip": admin.ip,
            **extra,
        }

    def _ldap_session(
        self,
        out: list[Item],
        rng: random.Random,
        t: int,
        username: str,
        ip: str,
        base: str,
        *,
        searches: int,
    ) -> None:
        """An LDAP bind and its searches on one connection (one id, operations numbered).

        ``ip`` (where the client connects from) is not written: JumpCloud's LDAP attribute
        table and integrations written against live data have no client_ip for LDAP.
        """
        del ip
        connection = _b64(rng.getrandbits(256))
        t -= t % MS
        event_id = oid(rng, t // NS)
        out.append(
            (
                t,
                event_id,
                {
                    "id": event_id,
                    "event_type": "ldap_bind",
                    "service": "ldap",
                    "@version": "1",
                    "timestamp": self._ts_ms(t),
                    "organization": self.org_id,
                    "connection_id": connection,
                    "operation_number": 0,
                    "dn": f"uid={username},{base}",
                    "auth_method": "simple",
                    "mech": "simple",
                    "start_tls": False,
                    "tls_established": True,
                    "username": username,
                    "success": True,
                    "error_code": 0,
                    "error_message": "",
                    "initiated_by": {"type": "user", "username": username},
                    "auth_meta": {"auth_methods": {"password": {"success": True}}},
                },
            )
        )
        for op in range(1, searches + 1):
            t += rng.randrange(5, 400) * MS
            event_id = oid(rng, t // NS)
            out.append(
                (
                    t,
                    event_id,
                    {
                        "id": event_id,
                        "event_type": "ldap_search",
                        "service": "ldap",
                        "@version": "1",
                        "timestamp": self._ts_ms(t),
                        "organization": self.org_id,
                        "connection_id": connection,
                        "operation_number": op,
                        "base": base,
                        "scope": 2,
                        "deref": 0,
                        "filter": rng.choice(
                            (
                                "(objectClass=inetOrgPerson)",
                                "(&(objectClass=groupOfNames)(cn=*))",
                                "(&(objectClass=inetOrgPerson)(mail=*))",
                            )
                        ),
                        "attr": "uid mail cn memberOf",
                        "number_of_results": rng.randrange(1, len(self.people) + 1),
                        "success": True,
                        "error_code": 0,
                    },
                )
            )

"""Realistic Directory Insights traffic with injected attacks and their ground truth.

Rules are only as good as the traffic they were tuned on (DESIGN section 2), so the
generator reproduces the messy behaviour of a real org: SSO launches with ``mfa: false``
after MFA at the portal, RADIUS/LDAP service accounts that never do MFA, typos followed by
a success, lockouts, trips abroad by plane, nightly API-key automation, ``changes`` as an
object on some systems events. Every event has the field names, nesting, id formats and
timestamp precision of a real event of its service (reference samples S1-S14).

Generation is stateless per hour: the events of hour ``b`` come from an RNG seeded with
``(seed, b)``, and each attack from an RNG seeded with its slot number. So the same seed
always yields the same events, consecutive ``generate()`` ranges never repeat an id, and
``generate(a, c) == generate(a, b) + generate(b, c)``. Events of a session may spill up to
``SPILL_NS`` past the hour it started in; ``generate`` looks back that far.

Event dicts share read-only nested objects (geoip, useragent, auth_context) to stay fast
(>= 50k events/s); treat generated events as immutable.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import math
import operator
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerting import jsonutil
from alerting.events import format_timestamp

_NS = 1_000_000_000
_Item = tuple[int, str, dict[str, Any]]  # (time ns, id, raw event)
_MS = 1_000_000
MINUTE_NS = 60 * _NS
HOUR_NS = 3600 * _NS
DAY_NS = 24 * HOUR_NS
SPILL_NS = 3 * HOUR_NS  # a session/attack never lasts longer than this
_MAX_BLACKOUT_NS = 14 * HOUR_NS  # longest quiet period around an attack's victim
_TRIP_EPOCH_NS = 7 * DAY_NS
_VICTIM_LANES = 4  # attacks with the victim's own successful logins

DEFAULT_ORG_ID = "5f3c2a1b9d8e7f6a5b4c3d2e"
DEFAULT_ATTACK_SLOT_NS = 30 * MINUTE_NS
_ADMIN_DOMAIN = "example.com"

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
}

#: other rules an attack legitimately trips as well (true positives, not noise)
ALSO_EXPECTED: dict[str, tuple[str, ...]] = {
    "brute-force-success": ("failed-login-burst", "unusual-geoip-login", "impossible-travel"),
    "impossible-travel": ("unusual-geoip-login",),
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


def attacks_to_json(attacks: Iterable[InjectedAttack]) -> str:
    """The ground truth as a pretty JSON array (written beside exported events)."""
    return jsonutil.dumps([a.to_dict() for a in attacks], indent=True)


def export_jsonl(path: str | Path, events: Iterable[dict[str, Any]]) -> int:
    """Write events as JSON Lines; returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(jsonutil.dumps(event))
            fh.write("\n")
            count += 1
    return count


def _unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the parts (no global RNG state)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


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


def _km(a: Place, b: Place) -> float:
    """Great-circle distance in km (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _flight_ns(a: Place, b: Place) -> int:
    """Door-to-door time of a flight: 800 km/h plus two hours of airports."""
    return int((_km(a, b) / 800.0 + 2.0) * HOUR_NS)


# --------------------------------------------------------------------------- places


class Place:
    """A city with its real coordinates and timezone; ``geo`` is the DI geoip object."""

    __slots__ = ("city", "country", "geo", "ip_prefixes", "lat", "lon", "tz")

    def __init__(
        self,
        country: str,
        region_code: str,
        region_name: str,
        city: str,
        tz: str,
        lat: float,
        lon: float,
        continent: str,
        ip_prefixes: tuple[str, ...],
    ) -> None:
        self.country, self.city, self.tz = country, city, tz
        self.lat, self.lon, self.ip_prefixes = lat, lon, ip_prefixes
        self.geo: dict[str, Any] = {
            "country_code": country,
            "timezone": tz,
            "latitude": lat,
            "continent_code": continent,
            "region_name": region_name,
            "region_code": region_code,
            "longitude": lon,
        }

    def ip(self, rng: random.Random) -> str:
        """A public IP here: a /16 prefix gets two random octets, a /24 one."""
        prefix = rng.choice(self.ip_prefixes)
        if prefix.count(".") == 2:
            return f"{prefix}.{rng.randrange(1, 255)}"
        return f"{prefix}.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"

    def __repr__(self) -> str:
        return f"Place({self.city}, {self.country})"


# Real cities: key | country | region code | region name | city | timezone | lat | lon |
# continent | IP prefixes there (/16 residential; /24 documentation ranges for attackers).
_PLACE_TABLE = """
nyc | US | NY  | New York          | New York       | America/New_York    |  40.7128 |  -74.0060 | NA | 73.45 24.90 98.116
sfo | US | CA  | California        | San Francisco  | America/Los_Angeles |  37.7749 | -122.4194 | NA | 73.162 98.207 24.4
den | US | CO  | Colorado          | Denver         | America/Denver      |  39.7392 | -104.9903 | NA | 73.203 67.176
aus | US | TX  | Texas             | Austin         | America/Chicago     |  30.2672 |  -97.7431 | NA | 70.112 24.28
bos | US | MA  | Massachusetts     | Boston         | America/New_York    |  42.3601 |  -71.0589 | NA | 73.100 96.237
tor | CA | ON  | Ontario           | Toronto        | America/Toronto     |  43.6532 |  -79.3832 | NA | 99.224 174.112
lon | GB | ENG | England           | London         | Europe/London       |  51.5074 |   -0.1278 | EU | 81.130 86.145 82.21
dub | IE | L   | Leinster          | Dublin         | Europe/Dublin       |  53.3379 |   -6.2591 | EU | 89.101 86.40
par | FR | 75  | Paris             | Paris          | Europe/Paris        |  48.8323 |    2.4075 | EU | 90.12 176.161 82.64
ber | DE | BE  | Land Berlin       | Berlin         | Europe/Berlin       |  52.5200 |   13.4050 | EU | 84.190 91.64 87.123
blr | IN | KA  | Karnataka         | Bengaluru      | Asia/Kolkata        |  12.9716 |   77.5946 | AS | 49.207 106.51
ams | NL | NH  | North Holland     | Amsterdam      | Europe/Amsterdam    |  52.3676 |    4.9041 | EU | 84.241 77.166
mad | ES | MD  | Madrid            | Madrid         | Europe/Madrid       |  40.4168 |   -3.7038 | EU | 83.45 88.6
sin | SG | 01  | Central Singapore | Singapore      | Asia/Singapore      |   1.3521 |  103.8198 | AS | 116.14 175.156
tyo | JP | 13  | Tokyo             | Tokyo          | Asia/Tokyo          |  35.6762 |  139.6503 | AS | 126.22 60.56
mex | MX | CMX | Mexico City       | Mexico City    | America/Mexico_City |  19.4326 |  -99.1332 | NA | 187.190 201.141
sjo | CR | SJ  | San Jose          | San Jose       | America/Costa_Rica  |   9.9281 |  -84.0907 | NA | 186.15 201.198
sdq | DO | 01  | Distrito Nacional | Santo Domingo  | America/Santo_Domingo | 18.4861 | -69.9312 | NA | 152.166 190.166
nas | BS | NP  | New Providence    | Nassau         | America/Nassau      |  25.0443 |  -77.3504 | NA | 24.51 208.67
pty | PA | 8   | Panama            | Panama City    | America/Panama      |   8.9824 |  -79.5199 | NA | 181.197 190.140
lis | PT | 11  | Lisbon            | Lisbon         | Europe/Lisbon       |  38.7223 |   -9.1393 | EU | 85.241 89.180
rom | IT | RM  | Lazio             | Rome           | Europe/Rome         |  41.9028 |   12.4964 | EU | 93.34 151.38
ath | GR | I   | Attica            | Athens         | Europe/Athens       |  37.9838 |   23.7275 | EU | 94.66 79.129
zag | HR | 21  | City of Zagreb    | Zagreb         | Europe/Zagreb       |  45.8150 |   15.9819 | EU | 78.0 93.136
vie | AT | 9   | Vienna            | Vienna         | Europe/Vienna       |  48.2082 |   16.3738 | EU | 84.115 178.190
prg | CZ | 10  | Prague            | Prague         | Europe/Prague       |  50.0755 |   14.4378 | EU | 89.24 185.8
cmb | LK | 1   | Western Province  | Colombo        | Asia/Colombo        |   6.9271 |   79.8612 | AS | 112.134 175.157
dxb | AE | DU  | Dubai             | Dubai          | Asia/Dubai          |  25.2048 |   55.2708 | AS | 94.200 83.110
bkk | TH | 10  | Bangkok           | Bangkok        | Asia/Bangkok        |  13.7563 |  100.5018 | AS | 171.96 49.228
mow | RU | MOW | Moscow            | Moscow         | Europe/Moscow       |  55.7558 |   37.6173 | EU | 95.165 5.188 203.0.113
pek | CN | BJ  | Beijing           | Beijing        | Asia/Shanghai       |  39.9042 |  116.4074 | AS | 123.125 198.51.100
fnj | KP | 01  | Pyongyang         | Pyongyang      | Asia/Pyongyang      |  39.0392 |  125.7625 | AS | 175.45 203.0.113
los | NG | LA  | Lagos             | Lagos          | Africa/Lagos        |   6.5244 |    3.3792 | AF | 105.112 197.210
gru | BR | SP  | Sao Paulo         | Sao Paulo      | America/Sao_Paulo   | -23.5505 |  -46.6333 | SA | 177.71 198.51.100
thr | IR | 07  | Tehran            | Tehran         | Asia/Tehran         |  35.6892 |   51.3890 | AS | 5.160 198.51.100
han | VN | HN  | Hanoi             | Hanoi          | Asia/Ho_Chi_Minh    |  21.0278 |  105.8342 | AS | 14.160 203.0.113
cbf | US | IA  | Iowa              | Council Bluffs | America/Chicago     |  41.2619 |  -95.8608 | NA | 34.70
"""


def _load_places(table: str) -> dict[str, Place]:
    places: dict[str, Place] = {}
    for line in table.strip().splitlines():
        key, country, code, region, city, tz, lat, lon, continent, prefixes = (
            part.strip() for part in line.split("|")
        )
        places[key] = Place(
            country, code, region, city, tz, float(lat), float(lon), continent,
            tuple(prefixes.split()),
        )  # fmt: skip
    return places


PLACES = _load_places(_PLACE_TABLE)
# Home cities, weighted by how many employees live there.
HOMES: list[tuple[Place, int]] = [
    (PLACES[k], w)
    for k, w in (("nyc", 10), ("sfo", 9), ("den", 6), ("aus", 5), ("bos", 5), ("tor", 3),
                 ("lon", 5), ("dub", 2), ("par", 3), ("ber", 3), ("blr", 3))
]  # fmt: skip
# Cities people fly to regularly for work or family (the normal travel destinations).
DESTINATIONS: dict[str, Place] = {
    place.country: place
    for place in (
        PLACES[k] for k in ("nyc", "tor", "lon", "dub", "par", "ber", "ams", "mad", "sin", "tyo")
    )
}
REGULAR_TRIPS: dict[str, tuple[str, ...]] = {
    "US": ("CA", "GB", "JP"),
    "CA": ("US", "GB"),
    "GB": ("DE", "FR", "IE", "US", "NL"),
    "IE": ("GB", "US"),
    "FR": ("DE", "GB", "ES"),
    "DE": ("FR", "GB", "NL"),
    "IN": ("US", "GB", "SG"),
}
# Countries nobody in the org lives in or travels to: a first visit is "new" for the user,
# yet close enough to home that the flight there is physically possible.
HOLIDAYS: dict[str, tuple[Place, ...]] = {
    "NA": tuple(PLACES[k] for k in ("mex", "sjo", "sdq", "nas", "pty")),
    "EU": tuple(PLACES[k] for k in ("lis", "rom", "ath", "zag", "vie", "prg")),
    "AS": tuple(PLACES[k] for k in ("cmb", "dxb", "bkk")),
}
# Where attackers come from: realistic hostile geoip, some IPs in documentation ranges.
ATTACKER_PLACES: tuple[Place, ...] = tuple(
    PLACES[k] for k in ("mow", "pek", "fnj", "los", "gru", "thr", "han")
)
DATACENTER = PLACES["cbf"]  # where the nightly HR sync job runs (a cloud VM)
OFFICE_IP = {  # public egress of each office (TEST-NET-1), keyed by home city
    place.city: f"192.0.2.{10 + i}" for i, (place, _w) in enumerate(HOMES)
}


# --------------------------------------------------------------------------- user agents


def _ua(name: str, version: str, os_name: str, os_version: str, device: str) -> dict[str, Any]:
    major, minor, patch = ([*version.split("."), "0", "0"])[:3]
    os_parts = [*os_version.split("."), "", ""]
    ua: dict[str, Any] = {
        "os": os_name,
        "os_name": os_name,
        "os_full": f"{os_name} {os_version}".strip(),
        "name": name,
        "version": version,
        "major": major,
        "minor": minor,
        "patch": patch,
        "device": device,
    }
    if os_version:
        ua.update(os_version=os_version, os_major=os_parts[0], os_minor=os_parts[1])
        if os_parts[2]:
            ua["os_patch"] = os_parts[2]
    return ua


UA_MAC_CHROME = _ua("Chrome", "124.0.0.0", "Mac OS X", "10.15.7", "Mac")
UA_MAC_FIREFOX = _ua("Firefox", "125.0", "Mac OS X", "10.15", "Mac")
UA_MAC_SAFARI = _ua("Safari", "17.4.1", "Mac OS X", "10.15.7", "Mac")
UA_WIN_CHROME = _ua("Chrome", "124.0.0.0", "Windows", "10", "Other")
UA_WIN_EDGE = _ua("Edge", "124.0.2478.80", "Windows", "10", "Other")
UA_LINUX_FIREFOX = _ua("Firefox", "125.0", "Linux", "", "Other")
UA_IPHONE = _ua("Mobile Safari", "17.4", "iOS", "17.4.1", "iPhone")
UA_ANDROID = _ua("Chrome Mobile", "124.0.6367.82", "Android", "14", "Generic Smartphone")
UA_CURL = _ua("curl", "7.68.0", "Other", "", "Other")
UA_PYTHON = _ua("Python Requests", "2.31.0", "Other", "", "Other")
UA_GO = _ua("Go-http-client", "1.1", "Other", "", "Other")
LAPTOP_UAS: dict[str, tuple[dict[str, Any], ...]] = {
    "mac": (UA_MAC_CHROME, UA_MAC_CHROME, UA_MAC_FIREFOX, UA_MAC_SAFARI),
    "windows": (UA_WIN_CHROME, UA_WIN_EDGE),
    "linux": (UA_LINUX_FIREFOX,),
}
PHONE_UAS = (UA_IPHONE, UA_IPHONE, UA_ANDROID)

FIRST_NAMES = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
    "yasmin", "zoe", "liam", "noah", "emma", "ava", "mia", "lucas", "ethan", "harper",
    "amelia", "priya", "arjun", "sofia", "mateo", "chloe", "hugo", "lena", "felix", "nora",
    "omar", "ines", "kenji", "aisha", "marco", "elena", "tomas", "freya", "oscar",
)  # fmt: skip
LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "wilson",
    "anderson", "taylor", "thomas", "moore", "martin", "jackson", "white", "harris", "clark",
    "lewis", "walker", "young", "allen", "king", "wright", "scott", "green", "baker", "adams",
    "nelson", "hill", "patel", "murphy", "dubois", "muller", "schmidt", "rossi", "kumar",
    "oconnor", "nakamura", "fischer", "laurent", "walsh", "sharma", "novak", "silva",
)  # fmt: skip
APPS = (
    ("Google Workspace", "google"),
    ("Slack", "slack"),
    ("Salesforce", "salesforce"),
    ("Atlassian Cloud", "atlassian"),
    ("GitHub", "github"),
    ("Zoom", "zoom"),
    ("AWS IAM Identity Center", "aws"),
    ("Workday", "workday"),
    ("Box", "box"),
)
DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Support", "People", "IT")
JOB_TITLES = ("Engineer", "Senior Engineer", "Account Executive", "Analyst", "Manager",
              "Designer", "Support Specialist", "Recruiter")  # fmt: skip
GROUPS = ("Engineering", "All Staff", "Sales", "VPN Users", "Wi-Fi Corp", "Finance", "Contractors")
SERVERS = ("build-01", "build-02", "web-01", "web-02", "db-01", "bastion-01")


# --------------------------------------------------------------------------- people


def _oid(rng: random.Random, seconds: int) -> str:
    """A 24-hex ObjectId: 4-byte timestamp then 8 random bytes."""
    return f"{seconds & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"


@dataclass(slots=True)
class Device:
    ua: dict[str, Any]
    kind: str  # mac | windows | linux | phone


@dataclass(slots=True)
class Person:
    """One employee: identity, home, devices, habits; nested objects are prebuilt."""

    index: int
    username: str
    email: str
    user_id: str
    home: Place
    home_ip: str
    office_ip: str
    office_ratio: float  # share of weekdays worked from the office (RADIUS Wi-Fi there)
    laptop: Device
    phone: Device | None
    mfa_type: str
    start_hour: int
    end_hour: int
    engineer: bool
    traveller: bool
    trips: tuple[str, ...]
    system: dict[str, Any]
    local_username: str
    local_user_id: str
    initiated_by: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    radius_initiated_by: dict[str, Any] = field(default_factory=dict)
    systemuser: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Admin:
    """An administrator identity (admins are identified by email, not username)."""

    person: Person | None
    email: str
    admin_id: str
    place: Place
    ip: str
    ua: dict[str, Any]
    initiated_by: dict[str, Any]
    automation: bool = False


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
_FAILED_CONTEXT = {"auth_methods": {"password": {"success": False}}}
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


# --------------------------------------------------------------------------- generator


@dataclass(slots=True)
class _Plan:
    """One attack instance: its events, ground truth and the victim's quiet period."""

    events: list[_Item]
    attack: InjectedAttack
    blackouts: list[tuple[int, int, int]]  # (person index, from ns, to ns)


class TrafficGenerator:
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
        if attack_slot_ns < 2 * MINUTE_NS:
            raise ValueError("attack_slot_ns must be at least two minutes")
        self.seed = seed
        self.org_id = org_id
        self.rate = rate
        self.scenarios: tuple[str, ...] = tuple(enabled)
        self.slot_ns = attack_slot_ns
        self.anchor_ns = attack_anchor_ns
        self._attacks: dict[int, InjectedAttack] = {}
        self._buckets: dict[int, tuple[list[int], list[_Item]]] = {}
        self._plans: dict[int, _Plan] = {}
        self._minute_text: dict[int, str] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._trip_cache: dict[tuple[int, int], tuple[int, int, int, int, Place, str] | None] = {}
        self._build_population(users)

    # ----------------------------------------------------------------- population

    def _build_population(self, count: int) -> None:
        rng = random.Random(f"{self.seed}:population")
        created = 1_560_000_000
        names: set[str] = set()
        homes = [h for h, _w in HOMES]
        weights = [w for _h, w in HOMES]
        people: list[Person] = []
        while len(people) < count:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            username = f"{first}.{last}"
            if username in names:
                if len(names) >= len(FIRST_NAMES) * len(LAST_NAMES):
                    raise ValueError("too many users for the name lists")
                continue
            names.add(username)
            home = rng.choices(homes, weights)[0]
            kind = rng.choices(("mac", "windows", "linux"), (6, 3, 1))[0]
            engineer = rng.random() < 0.3
            local = f"{first[0]}{last}"
            system_id = _oid(rng, created + rng.randrange(10**8))
            host = f"{first[0].upper()}{last.upper()}-{'MBP' if kind == 'mac' else 'PC' if kind == 'windows' else 'XPS'}"
            person = Person(
                index=len(people),
                username=username,
                email=f"{username}@{_ADMIN_DOMAIN}",
                user_id=_oid(rng, created + rng.randrange(10**8)),
                home=home,
                home_ip=home.ip(rng),
                office_ip=OFFICE_IP[home.city],
                office_ratio=rng.choice((0.0, 0.4, 0.6, 0.8, 1.0)),
                laptop=Device(rng.choice(LAPTOP_UAS[kind]), kind),
                phone=Device(rng.choice(PHONE_UAS), "phone") if rng.random() < 0.5 else None,
                mfa_type=rng.choices(
                    ("totp", "jumpcloud_protect", "duo", "webauthn"), (5, 3, 2, 1)
                )[0],
                start_hour=rng.choice((7, 8, 8, 9, 9, 9, 10)),
                end_hour=rng.choice((16, 17, 17, 18, 18, 19)),
                engineer=engineer,
                traveller=rng.random() < 0.2,
                trips=REGULAR_TRIPS.get(home.country, ("US",)),
                system={
                    "id": system_id,
                    "hostname": host,
                    "displayName": host,
                },
                local_username=local,
                local_user_id=_oid(rng, created + rng.randrange(10**8)),
            )
            person.initiated_by = {"id": person.user_id, "type": "user", "username": username}
            person.resource = {"id": person.user_id, "type": "user", "username": username}
            person.radius_initiated_by = {"type": "user", "username": username}
            person.systemuser = {
                "type": "systemuser",
                "id": person.local_user_id,
                "username": local,
            }
            people.append(person)
        self.people = people
        self._by_name = {p.username: p for p in people}
        perm = list(range(count))
        rng.shuffle(perm)
        self._victim_order = perm
        settled = [i for i in perm if not people[i].traveller]
        if len(settled) < _VICTIM_LANES:
            settled = perm
        self._pools = [settled[k::_VICTIM_LANES] for k in range(_VICTIM_LANES)]

        it_staff = [p for p in people if p.engineer][:3] or people[:3]
        self.admins: list[Admin] = []
        for p in it_staff:
            email = f"{p.username}-admin@{_ADMIN_DOMAIN}" if rng.random() < 0.3 else p.email
            admin_id = _oid(rng, created + rng.randrange(10**8))
            self.admins.append(
                Admin(
                    p,
                    email,
                    admin_id,
                    p.home,
                    p.home_ip,
                    p.laptop.ua,
                    {"id": admin_id, "type": "admin", "email": email},
                )
            )
        auto_id = _oid(rng, created + rng.randrange(10**8))
        self.automation = Admin(
            None,
            f"hr-sync@{_ADMIN_DOMAIN}",
            auto_id,
            DATACENTER,
            DATACENTER.ip(rng),
            UA_PYTHON,
            {"id": auto_id, "type": "admin", "email": f"hr-sync@{_ADMIN_DOMAIN}"},
            automation=True,
        )
        self.ldap_connection_ip = OFFICE_IP[people[0].home.city]
        self.apps = [
            {
                "display_label": label,
                "sso_type": "saml",
                "name": name,
                "id": _oid(rng, created + rng.randrange(10**8)),
                "sso_url": f"https://sso.jumpcloud.com/saml2/{name}",
            }
            for label, name in APPS
        ]
        self.servers = [
            {"id": _oid(rng, created + rng.randrange(10**8)), "hostname": h, "displayName": h}
            for h in SERVERS
        ]
        self.server_ips = {s["hostname"]: f"198.18.10.{20 + i}" for i, s in enumerate(self.servers)}
        self.groups = [
            {
                "name": g,
                "type": "user_group",
                "object_id": _oid(rng, created + rng.randrange(10**8)),
            }
            for g in GROUPS
        ]
        self.sso_context = {
            p.index: {
                "system": {
                    "hostname": p.system["hostname"],
                    "os": p.laptop.ua["os_name"],
                    "displayName": p.system["hostname"],
                    "id": p.system["id"],
                    "version": p.laptop.ua.get("os_version", ""),
                },
                "auth_methods": {},
                "policies_applied": [
                    {
                        "metadata": {"resource_type": "APPLICATION", "action": "ALLOW"},
                        "name": "Global Policy",
                        "id": "",
                    }
                ],
            }
            for p in people
        }

    # ----------------------------------------------------------------- public API

    @property
    def attacks(self) -> list[InjectedAttack]:
        """Ground truth of every attack whose first event was generated so far."""
        return [self._attacks[m] for m in sorted(self._attacks)]

    def generate(self, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Raw events with ``start_ns <= time < end_ns``, sorted by (time, id)."""
        if end_ns <= start_ns:
            return []
        chunks: list[list[_Item]] = []
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

    # ----------------------------------------------------------------- time helpers

    def _slots_between(self, lo_ns: int, hi_ns: int) -> range:
        first = (lo_ns - self.anchor_ns) // self.slot_ns
        last = (hi_ns - self.anchor_ns) // self.slot_ns
        return range(first, last + 1)

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
        return f"{self._sec_text(ns // _NS)}.{ns // _MS % 1000:03d}Z"

    def _ts_s(self, ns: int) -> str:
        return self._sec_text(ns // _NS) + "Z"

    def _ts_nano(self, ns: int) -> str:
        return f"{self._sec_text(ns // _NS)}.{ns % _NS:09d}Z"

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
        return f"{self._sec_text(ns // _NS + offset)}{sign}{hh:02d}:{mm:02d}"

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
            fly = _flight_ns(p.home, dest)
            depart = epoch * _TRIP_EPOCH_NS + int(rng.uniform(0.5, 2.5) * DAY_NS)
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
            trip = self._trip(p, ns // _TRIP_EPOCH_NS)
            if trip is not None:
                depart, arrive, leave, back, place, ip = trip
                if depart <= ns < arrive or leave <= ns < back:
                    return None
                if arrive <= ns < leave:
                    return place, ip
        return p.home, p.home_ip

    # ----------------------------------------------------------------- buckets

    def _bucket(self, b: int) -> tuple[list[int], list[_Item]]:
        cached = self._buckets.get(b)
        if cached is not None:
            return cached
        t0 = b * HOUR_NS
        rng = random.Random(f"{self.seed}:hour:{b}")
        out: list[_Item] = []
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
        for m in self._slots_between(lo - _MAX_BLACKOUT_NS, hi + _MAX_BLACKOUT_NS):
            plan = self._plan(m)
            if plan is None:
                continue
            for index, start, end in plan.blackouts:
                if start < hi and end > lo:
                    quiet.setdefault(self.people[index].username, []).append((start, end))
        return quiet

    # ----------------------------------------------------------------- emitters

    def _directory(
        self,
        out: list[_Item],
        rng: random.Random,
        ns: int,
        event_type: str,
        body: dict[str, Any],
    ) -> _Item:
        ns -= ns % _MS
        event_id = _oid(rng, ns // _NS)
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
        out: list[_Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        *,
        success: bool,
        mfa: bool = True,
    ) -> _Item:
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
                else _FAILED_CONTEXT
            ),
            "geoip": place.geo,
            "useragent": ua,
        }
        if not success:
            body["error_message"] = "Invalid credentials"
        return self._directory(out, rng, ns, "user_login_attempt", body)

    def _sso(
        self,
        out: list[_Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        *,
        ok: bool = True,
    ) -> None:
        if ns % 10 == 0:
            ns += 7  # nine significant fraction digits, as the SSO service writes them
        event_id = _oid(rng, ns // _NS)
        app = self.apps[int(rng.random() * len(self.apps))]
        out.append(
            (
                ns,
                event_id,
                {
                    "initiated_by": p.initiated_by,
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
                    "timestamp": self._ts_nano(ns),
                },
            )
        )

    def _radius(
        self,
        out: list[_Item],
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
        ns -= ns % _NS
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
            event["eap_type"] = "MSCHAPv2"
            event["outer"] = {
                "error_message": None
                if ok
                else "eap_peap: The users session was previously rejected",
                "eap_type": "PEAP",
                "username": username,
            }
        out.append((ns, event_id, event))

    def _system_login(
        self,
        out: list[_Item],
        rng: random.Random,
        ns: int,
        p: Person,
        place: Place,
        ip: str,
        *,
        ok: bool,
        server: dict[str, Any] | None = None,
    ) -> None:
        ns -= ns % _NS
        event_id = _oid(rng, ns // _NS)
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

    # ----------------------------------------------------------------- people

    def _activity(self, p: Person, place: Place, t0: int) -> tuple[float, bool, int]:
        """(activity weight, is this the first working hour, local weekday)."""
        local = t0 // _NS + self._offset(place.tz, t0)
        hour = local // 3600 % 24
        weekday = (local // 86400 + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
        workday = weekday < 5
        if p.start_hour <= hour < p.end_hour:
            return (1.0 if workday else 0.1), (workday and hour == p.start_hour), weekday
        if 18 <= hour < 23 or hour in (6, 7):
            return 0.08, False, weekday
        return 0.01, False, weekday

    def _person_hour(self, rng: random.Random, p: Person, t0: int, out: list[_Item]) -> None:
        here = self.location(p, t0 + HOUR_NS // 2)
        if here is None:
            return  # on a plane
        place, ip = here
        weight, day_start, weekday = self._activity(p, place, t0)
        if rng.random() >= min(1.0, weight * 2.5):
            return
        at_home_city = place is p.home
        day = (t0 // _NS + self._offset(place.tz, t0)) // 86400
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
                t += rng.randrange(30, 300) * _NS
                self._day_login(rng, p, t, place, ip, ua, out)
                if rng.random() < 0.04:
                    self._password_change(
                        rng, p, t + rng.randrange(600, 3000) * _NS, place, ip, ua, out
                    )
        for _ in range(_poisson(rng, 0.25 * weight * rate)):
            t = t0 + int(rng.random() * HOUR_NS)
            if where(t):
                device = p.phone if p.phone is not None and rng.random() < 0.3 else p.laptop
                self._portal_login(
                    out,
                    rng,
                    t,
                    p,
                    place,
                    ip if device is p.laptop else p.home_ip if at_home_city else ip,
                    device.ua,
                    success=True,
                )
        for _ in range(_poisson(rng, 36.0 * weight * rate)):
            t = t0 + int(rng.random() * HOUR_NS)
            if where(t):
                self._sso(out, rng, t, p, place, ip, ua, ok=rng.random() > 0.01)
        if in_office:
            for _ in range(_poisson(rng, 30.0 * weight * rate)):
                t = t0 + int(rng.random() * HOUR_NS)
                if where(t):
                    fail = rng.random() < 0.01
                    if fail:
                        self._radius(
                            out, rng, t, p.username, p.radius_initiated_by, place, ip, ok=False
                        )
                        t += rng.randrange(3, 20) * _NS
                    self._radius(out, rng, t, p.username, p.radius_initiated_by, place, ip)
        if p.engineer:
            for _ in range(_poisson(rng, 2.0 * weight * rate)):
                t = t0 + int(rng.random() * HOUR_NS)
                if where(t):
                    server = rng.choice(self.servers)
                    if rng.random() < 0.03:
                        self._system_login(out, rng, t, p, place, ip, ok=False, server=server)
                        t += rng.randrange(5, 30) * _NS
                    self._system_login(out, rng, t, p, place, ip, ok=True, server=server)

    def _day_login(
        self,
        rng: random.Random,
        p: Person,
        t: int,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        out: list[_Item],
    ) -> None:
        """The morning portal login: sometimes typos first, rarely a lockout."""
        roll = rng.random()
        if roll < 0.003:
            for _ in range(4):
                self._portal_login(out, rng, t, p, place, ip, ua, success=False)
                t += rng.randrange(4, 25) * _NS
            self._directory(out, rng, t + _NS, "user_lockout",
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
                t += rng.randrange(5, 18) * _NS
        self._portal_login(out, rng, t, p, place, ip, ua, success=True)
        t += rng.randrange(5, 60) * _NS
        for _ in range(rng.randrange(2, 6)):
            self._sso(out, rng, t, p, place, ip, ua)
            t += rng.randrange(3, 120) * _NS

    def _password_change(
        self,
        rng: random.Random,
        p: Person,
        t: int,
        place: Place,
        ip: str,
        ua: dict[str, Any],
        out: list[_Item],
    ) -> None:
        """A user changes their password on the portal; the laptop agent reports it too."""
        self._directory(out, rng, t, "user_password_change",
                        {"initiated_by": p.initiated_by, "resource": p.resource, "success": True,
                         "client_ip": ip, "geoip": place.geo, "useragent": ua,
                         "changes": [{"field": "password"}]})  # fmt: skip
        t += rng.randrange(60, 900) * _NS
        t -= t % _NS
        event_id = _oid(rng, t // _NS)
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

    def _admin_body(self, admin: Admin, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "initiated_by": admin.initiated_by,
            "geoip": admin.place.geo,
            "useragent": admin.ua,
            "auth_method": "api key" if admin.automation else "session",
            "success": True,
            "client_ip": admin.ip,
            **extra,
        }

    def _admin_hour(self, rng: random.Random, admin: Admin, t0: int, out: list[_Item]) -> None:
        assert admin.person is not None
        weight, day_start, _weekday = self._activity(admin.person, admin.place, t0)
        if self.location(admin.person, t0 + HOUR_NS // 2) != (
            admin.person.home,
            admin.person.home_ip,
        ):
            return
        if day_start or rng.random() < 0.1 * weight:
            t = t0 + int(rng.random() * HOUR_NS)
            self._directory(out, rng, t, "admin_login_attempt",
                            {"initiated_by": admin.initiated_by, "geoip": admin.place.geo,
                             "useragent": admin.ua, "mfa": True, "mfa_meta": {"type": "totp"},
                             "success": True, "client_ip": admin.ip})  # fmt: skip
        for _ in range(_poisson(rng, 1.5 * weight * self.rate)):
            self._admin_change(rng, admin, t0 + int(rng.random() * HOUR_NS), out)

    def _admin_change(self, rng: random.Random, admin: Admin, t: int, out: list[_Item]) -> None:
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
            new_id = _oid(rng, t // _NS)
            body = {"resource": {"id": new_id, "type": "user", "username": username},
                    "changes": [{"field": "username", "to": username},
                                {"field": "email", "to": f"{username}@{_ADMIN_DOMAIN}"},
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
            body = {
                "resource": {"id": _oid(rng, t // _NS - 10**7), "type": "user", "username": gone}
            }
            self._directory(out, rng, t, "user_delete", self._admin_body(admin, body))

    def _automation_hour(self, rng: random.Random, t0: int, out: list[_Item]) -> None:
        """Nightly HR sync at 02:00 New York time: user_update with an API key, curl/python."""
        local = t0 // _NS + self._offset("America/New_York", t0)
        if local // 3600 % 24 != 2:
            return
        auto = self.automation
        t = t0 + rng.randrange(0, 5 * MINUTE_NS)
        ua = UA_PYTHON if (local // 86400) % 3 else UA_CURL
        for p in rng.sample(self.people, k=min(len(self.people), rng.randrange(20, 50))):
            t += rng.randrange(200, 3000) * _MS
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

    def _service_hour(self, rng: random.Random, t0: int, out: list[_Item]) -> None:
        """LDAP sync every 5 minutes, printers and Wi-Fi devices on RADIUS: never any MFA."""
        office = self.people[0].home
        dc_ip = self.ldap_connection_ip
        base = f"ou=Users,o={self.org_id},dc=jumpcloud,dc=com"
        for minute in range(0, 60, 5):
            t = t0 + minute * MINUTE_NS + rng.randrange(0, 20 * _NS)
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
            t = t0 + minute * MINUTE_NS + rng.randrange(0, 60 * _NS)
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

    def _ldap_session(
        self,
        out: list[_Item],
        rng: random.Random,
        t: int,
        username: str,
        ip: str,
        base: str,
        *,
        searches: int,
    ) -> None:
        connection = _b64(rng.getrandbits(256))
        t -= t % _MS
        event_id = _oid(rng, t // _NS)
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
                    "client_ip": ip,
                    "initiated_by": {"type": "user", "username": username},
                    "auth_meta": {"auth_methods": {"password": {"success": True}}},
                },
            )
        )
        for op in range(1, searches + 1):
            t += rng.randrange(5, 400) * _MS
            event_id = _oid(rng, t // _NS)
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
                        "client_ip": ip,
                    },
                )
            )

    # ----------------------------------------------------------------- attacks

    def _plan(self, m: int) -> _Plan | None:
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
            start -= start % _MS
            span = int(min(4 * MINUTE_NS, 0.7 * self.slot_ns))
            builder = _BUILDERS[scenario]
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

    def _victim(self, cycle: int, lane: int) -> Person:
        """A settled person (no trips) whose own logins are part of the attack.

        Each lane (brute force, new country, impossible travel, login without MFA) draws
        from its own pool of people, so attacks of different scenarios never land on the
        same person and blur each other; within a lane, victims rotate.
        """
        pool = self._pools[lane % _VICTIM_LANES]
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
                         "mfa_meta": {"type": "none"}, "client_ip": ip, "auth_context": _FAILED_CONTEXT,
                         "geoip": place.geo, "useragent": ua, "error_message": "Invalid credentials"})  # fmt: skip

    def _a_burst(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._anyone(cycle, 0)
        out: list[_Item] = []
        sources = [self._attacker(rng) for _ in range(rng.randrange(2, 4))]
        n = rng.randrange(12, 19)
        for i in range(n):
            place, ip = sources[i % len(sources)]
            self._failure(
                out,
                rng,
                start + i * span // n + rng.randrange(0, _NS),
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
        out: list[_Item] = []
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
                start + i * span // len(names) + rng.randrange(0, _NS),
                name,
                place,
                ip,
                ua,
            )
        return out, {"client_ip": ip}, []

    def _a_brute_success(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        victim = self._victim(cycle, 3)
        near = [pl for pl in ATTACKER_PLACES if _km(victim.home, pl) < 8500] or ATTACKER_PLACES
        place = near[int(rng.random() * len(near))]
        ip = place.ip(rng)
        out: list[_Item] = []
        n = rng.randrange(12, 16)
        for i in range(n):
            self._failure(
                out, rng, start + i * span // (n + 1), victim.username, place, ip, UA_MAC_CHROME
            )
        self._portal_login(out, rng, start + span, victim, place, ip, UA_MAC_CHROME, success=True)
        end = out[-1][0]
        # the victim's own logins resume once a flight back from the attacker could have
        # landed: the incident is one impossible journey, not two
        need = max(HOUR_NS, min(_flight_ns(victim.home, place), _MAX_BLACKOUT_NS - HOUR_NS))
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 10 * MINUTE_NS, end + need)]

    def _a_no_mfa(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        out: list[_Item] = []
        if cycle % 2:
            admin = self.admins[cycle % len(self.admins)]
            self._directory(out, rng, start, "admin_login_attempt",
                            {"initiated_by": admin.initiated_by, "geoip": admin.place.geo, "useragent": admin.ua,
                             "mfa": False, "mfa_meta": {"type": "none"}, "success": True,
                             "client_ip": admin.ip})  # fmt: skip
            return out, {}, []
        person = self._victim(cycle, 2)  # settled: never abroad, so home is where they are
        self._portal_login(
            out,
            rng,
            start,
            person,
            person.home,
            person.home_ip,
            person.laptop.ua,
            success=True,
            mfa=False,
        )
        return out, {}, []

    def _a_old_api_key(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        place, ip = (DATACENTER, DATACENTER.ip(rng)) if cycle % 2 else self._attacker(rng)
        out: list[_Item] = []
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
        need = min(_flight_ns(victim.home, place), _MAX_BLACKOUT_NS - HOUR_NS)
        out: list[_Item] = []
        self._portal_login(out, rng, start, victim, place, ip, victim.laptop.ua, success=True)
        t = start
        for _ in range(rng.randrange(1, 4)):
            t += rng.randrange(20, 90) * _NS
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
                4000 < _km(victim.home, pl) < 8500,
                _km(victim.home, pl) > 4000,
                rng.random(),
            ),
        )
        ip = far.ip(rng)
        out: list[_Item] = []
        self._portal_login(
            out, rng, start, victim, victim.home, victim.home_ip, victim.laptop.ua, success=True
        )
        t = start + rng.randrange(60, max(61, span // _NS)) * _NS
        self._portal_login(out, rng, t, victim, far, ip, UA_WIN_CHROME, success=True)
        need = min(_flight_ns(victim.home, far), _MAX_BLACKOUT_NS - HOUR_NS)
        group = {"initiated_by.username": victim.username}
        return out, group, [(victim.index, start - 5 * MINUTE_NS, t + need)]

    def _a_mfa_disabled(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        target = self._anyone(cycle, 2)
        out: list[_Item] = []
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
        out: list[_Item] = []
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
        email = f"{rng.choice(('support', 'it-ops', 'backup', 'sysadmin'))}{rng.randrange(2, 99)}@{_ADMIN_DOMAIN}"
        new_id = _oid(rng, start // _NS)
        body = {"resource": {"id": new_id, "type": "admin", "email": email},
                "changes": [{"field": "email", "to": email}, {"field": "roleName", "to": "Administrator With Billing"},
                            {"field": "enableMultiFactor", "to": False}]}  # fmt: skip
        out: list[_Item] = []
        self._directory(out, rng, start, "admin_create", self._admin_body(admin, body))
        return out, {}, []

    def _a_mass_delete(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        out: list[_Item] = []
        n = rng.randrange(11, 18)
        for i in range(n):
            gone = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{rng.randrange(100, 999)}"
            body = {
                "resource": {
                    "id": _oid(rng, start // _NS - 10**7),
                    "type": "user",
                    "username": gone,
                }
            }
            self._directory(
                out, rng, start + i * span // n, "user_delete", self._admin_body(admin, body)
            )
        return out, {"initiated_by.email": admin.email}, []

    def _a_key_policy(self, rng: random.Random, cycle: int, start: int, span: int) -> _Built:
        admin = self.admins[cycle % len(self.admins)]
        out: list[_Item] = []
        variant = cycle % 4
        if variant == 0:
            body = {"resource": {"id": _oid(rng, start // _NS), "type": "policy", "name": "Disk Encryption (macOS)"},
                    "changes": [{"field": "values", "from": [{"enabled": True}], "to": [{"enabled": False}]}]}  # fmt: skip
            self._directory(out, rng, start, "policy_update", self._admin_body(admin, body))
        elif variant == 1:
            body = {
                "resource": {
                    "id": _oid(rng, start // _NS),
                    "type": "authn_policy",
                    "name": "Require MFA outside office",
                }
            }
            self._directory(out, rng, start, "authnpolicy_delete", self._admin_body(admin, body))
        elif variant == 2:
            body = {"resource": {"id": _oid(rng, start // _NS), "type": "iplist", "name": "Office egress"},
                    "changes": [{"field": "ips", "from": ["192.0.2.0/24"], "to": ["192.0.2.0/24", "0.0.0.0/0"]}]}  # fmt: skip
            self._directory(out, rng, start, "iplist_update", self._admin_body(admin, body))
        else:
            body = {"resource": {"id": admin.admin_id, "type": "admin", "email": admin.email},
                    "changes": [{"field": "apiKey"}]}  # fmt: skip
            self._directory(out, rng, start, "admin_update", self._admin_body(admin, body))
        return out, {}, []


_Built = tuple[list[_Item], dict[str, str], list[tuple[int, int, int]]]

_BUILDERS: dict[str, Callable[[TrafficGenerator, random.Random, int, int, int], _Built]] = {
    "failed-login-burst": TrafficGenerator._a_burst,
    "password-spray": TrafficGenerator._a_spray,
    "brute-force-success": TrafficGenerator._a_brute_success,
    "login-without-mfa": TrafficGenerator._a_no_mfa,
    "admin-old-api-key-attempt": TrafficGenerator._a_old_api_key,
    "new-country-login": TrafficGenerator._a_new_country,
    "impossible-travel": TrafficGenerator._a_travel,
    "mfa-disabled": TrafficGenerator._a_mfa_disabled,
    "admin-privilege-granted": TrafficGenerator._a_privilege,
    "admin-created": TrafficGenerator._a_admin_created,
    "mass-user-deletion": TrafficGenerator._a_mass_delete,
    "api-key-or-policy-change": TrafficGenerator._a_key_policy,
}


_ORDER = operator.itemgetter(0, 1)  # (time, id): unique, so the dicts are never compared


def _is_quiet(quiet: dict[str, list[tuple[int, int]]], item: _Item) -> bool:
    event = item[2]
    who = event.get("initiated_by")
    name = who.get("username") if isinstance(who, dict) else None
    if name is None:
        return False
    spans = quiet.get(name)
    if not spans:
        return False
    t = item[0]
    return any(lo <= t < hi for lo, hi in spans)


def _b64(bits: int) -> str:
    return base64.b64encode(bits.to_bytes(32, "big")).decode()

"""Who is in the simulated org: employees, admins, the HR-sync robot, their devices.

The population is drawn once per seed, before any event, from its own RNG stream, so
adding a behaviour or a scenario never reshuffles who the people are. The catalogues here
(user agents, names, apps, departments, groups, servers) are what events draw their
realistic values from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from alerting.simulator.traffic.constants import ADMIN_DOMAIN, VICTIM_LANES
from alerting.simulator.traffic.ids import oid
from alerting.simulator.traffic.places import DATACENTER, HOMES, OFFICE_IP, REGULAR_TRIPS, Place


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
    # SSO's newest shape (2026) adds initiated_by.administrator
    sso_initiated_by: dict[str, Any] = field(default_factory=dict)
    mfa_enrolled: bool = True  # False in an org mid-rollout (``unenrolled_mfa``)


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


@dataclass(slots=True)
class Population:
    """Everyone a generator's events are about, and the org's apps, servers and groups.

    ``victim_order`` is a shuffled order of people for attacks from outside; ``pools``
    are disjoint lists of settled people (no trips), one per victim lane.
    """

    people: list[Person]
    by_name: dict[str, Person]
    victim_order: list[int]
    pools: list[list[int]]
    admins: list[Admin]
    automation: Admin
    ldap_connection_ip: str
    apps: list[dict[str, Any]]
    servers: list[dict[str, Any]]
    server_ips: dict[str, str]
    groups: list[dict[str, Any]]
    sso_context: dict[int, dict[str, Any]]


def build_population(seed: int, count: int) -> Population:
    """The ``count`` people, admins and org objects of ``seed`` (same seed, same org)."""
    rng = random.Random(f"{seed}:population")
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
        system_id = oid(rng, created + rng.randrange(10**8))
        host = f"{first[0].upper()}{last.upper()}-{'MBP' if kind == 'mac' else 'PC' if kind == 'windows' else 'XPS'}"
        person = Person(
            index=len(people),
            username=username,
            email=f"{username}@{ADMIN_DOMAIN}",
            user_id=oid(rng, created + rng.randrange(10**8)),
            home=home,
            home_ip=home.ip(rng),
            office_ip=OFFICE_IP[home.city],
            office_ratio=rng.choice((0.0, 0.4, 0.6, 0.8, 1.0)),
            laptop=Device(rng.choice(LAPTOP_UAS[kind]), kind),
            phone=Device(rng.choice(PHONE_UAS), "phone") if rng.random() < 0.5 else None,
            mfa_type=rng.choices(("totp", "jumpcloud_protect", "duo", "webauthn"), (5, 3, 2, 1))[0],
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
            local_user_id=oid(rng, created + rng.randrange(10**8)),
        )
        person.initiated_by = {"id": person.user_id, "type": "user", "username": username}
        person.resource = {"id": person.user_id, "type": "user", "username": username}
        person.radius_initiated_by = {"type": "user", "username": username}
        person.sso_initiated_by = {**person.initiated_by, "administrator": False}
        person.systemuser = {
            "type": "systemuser",
            "id": person.local_user_id,
            "username": local,
        }
        people.append(person)
    perm = list(range(count))
    rng.shuffle(perm)
    settled = [i for i in perm if not people[i].traveller]
    if len(settled) < VICTIM_LANES:
        settled = perm
    pools = [settled[k::VICTIM_LANES] for k in range(VICTIM_LANES)]

    it_staff = [p for p in people if p.engineer][:3] or people[:3]
    admins: list[Admin] = []
    for p in it_staff:
        email = f"{p.username}-admin@{ADMIN_DOMAIN}" if rng.random() < 0.3 else p.email
        admin_id = oid(rng, created + rng.randrange(10**8))
        admins.append(
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
    auto_id = oid(rng, created + rng.randrange(10**8))
    automation = Admin(
        None,
        f"hr-sync@{ADMIN_DOMAIN}",
        auto_id,
        DATACENTER,
        DATACENTER.ip(rng),
        UA_PYTHON,
        # an identity provider's SCIM sync, as in Sekoia's user_update samples
        {"id": auto_id, "source": "scim", "type": "admin", "email": f"hr-sync@{ADMIN_DOMAIN}"},
        automation=True,
    )
    ldap_connection_ip = OFFICE_IP[people[0].home.city]
    apps = [
        {
            "display_label": label,
            "sso_type": "saml",
            "name": name,
            "id": oid(rng, created + rng.randrange(10**8)),
            "sso_url": f"https://sso.jumpcloud.com/saml2/{name}",
        }
        for label, name in APPS
    ]
    servers = [
        {"id": oid(rng, created + rng.randrange(10**8)), "hostname": h, "displayName": h}
        for h in SERVERS
    ]
    server_ips = {s["hostname"]: f"198.18.10.{20 + i}" for i, s in enumerate(servers)}
    groups = [
        {
            "name": g,
            "type": "user_group",
            "object_id": oid(rng, created + rng.randrange(10**8)),
        }
        for g in GROUPS
    ]
    sso_context = {
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
    return Population(
        people=people,
        by_name={p.username: p for p in people},
        victim_order=perm,
        pools=pools,
        admins=admins,
        automation=automation,
        ldap_connection_ip=ldap_connection_ip,
        apps=apps,
        servers=servers,
        server_ips=server_ips,
        groups=groups,
        sso_context=sso_context,
    )

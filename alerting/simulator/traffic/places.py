"""Where the org's people live and travel, and where attackers come from.

Kept apart from the people so the geography (real coordinates, timezones, geoip objects,
IP prefixes) can be read and extended as one table, and so distances and flight times,
which decide what is a possible journey, live next to the cities they are measured on.
"""

from __future__ import annotations

import math
import random
from typing import Any

from alerting.durations import HOUR_NS


def km(a: Place, b: Place) -> float:
    """Great-circle distance in km (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def flight_ns(a: Place, b: Place) -> int:
    """Door-to-door time of a flight: 800 km/h plus two hours of airports."""
    return int((km(a, b) / 800.0 + 2.0) * HOUR_NS)


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

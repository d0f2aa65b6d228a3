"""Great-circle distance and coordinate parsing for impossible-travel detection.

GeoIP coordinates in DI events are numbers (``"latitude": 48.8323``) but event fields are
attacker-controlled and schema drifts, so anything that is not a finite number (or a
numeric string) inside the valid range is treated as "no location", never as an error.
"""

from __future__ import annotations

import math
from typing import Any

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), the usual constant for haversine distances."""


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    # min() guards against a > 1 from rounding for antipodal points.
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def coordinate(value: Any, limit: float) -> float | None:
    """A latitude (limit 90) or longitude (limit 180) as float, or None when unusable.

    Accepts ints, floats and numeric strings; a one-element list (a JSONPath match) is
    unwrapped. Booleans, NaN, infinities and out-of-range values give None.
    """
    if type(value) is list and len(value) == 1:
        value = value[0]
    kind = type(value)
    if kind is float or kind is int:  # exact types: bool (an int subclass) is no number
        number = float(value)
    elif kind is str:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or abs(number) > limit:
        return None
    return number

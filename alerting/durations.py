"""Durations as users write them: ``30s``, ``5m``, ``2h``, ``7d``, ``1h30m``, ``250ms``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

# The one home for time units in nanoseconds (event times are integer ns everywhere).
NS = 1_000_000_000  # one second
MS = 1_000_000  # one millisecond
MINUTE_NS = 60 * NS
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS

_UNITS_NS = {
    "ms": MS,
    "s": NS,
    "m": MINUTE_NS,
    "h": HOUR_NS,
    "d": DAY_NS,
    "w": 7 * DAY_NS,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")

DURATION_HINT = "write a number and a unit, e.g. 30s, 5m, 2h, 7d or 1h30m"


def parse_duration_ns(value: Any) -> int:
    """Parse a duration into integer nanoseconds; bare numbers are seconds.

    Raises ``ValueError`` with a message that says how to write one.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}: {DURATION_HINT}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value!r} is negative: {DURATION_HINT}")
        return int(value * NS)
    if isinstance(value, timedelta):
        return td_ns(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {type(value).__name__}: {DURATION_HINT}")
    text = value.strip().replace(" ", "")
    if not _WHOLE.fullmatch(text):
        _reject_months_and_years(value, text)
        # Only M is ambiguous (months vs minutes); 2H, 7D, 30S mean what they say.
        text = text.lower()
    if not text or not _WHOLE.fullmatch(text):
        raise ValueError(f"invalid duration {value!r}: {DURATION_HINT}")
    return int(sum(float(n) * _UNITS_NS[u] for n, u in _PART.findall(text)))


_MONTHS_OR_YEARS = re.compile(r"(\d+(?:\.\d+)?)(M|mo|months?|y|years?)", re.IGNORECASE)


def _reject_months_and_years(value: str, text: str) -> None:
    """``6M`` is not six minutes: months and years are no unit here; say what to write."""
    capital_m = re.search(r"\d(?:\.\d+)?M(?!S)", text) is not None
    found = _MONTHS_OR_YEARS.fullmatch(text)
    if found is not None and found.group(2) == "m":
        found = None  # "6m" is minutes
    if not capital_m and found is None:
        return
    hint = "units are case-sensitive (m is minutes; months and years are not units)"
    if found is not None:
        years = found.group(2).lower().startswith("y")
        days = float(found.group(1)) * (365 if years else 30)
        hint += f": for {found.group(1)} {'year(s)' if years else 'month(s)'} write {days:g}d"
    else:
        hint += ": write days, e.g. 180d for six months"
    raise ValueError(f"invalid duration {value!r}: {hint}")


def format_duration_ns(ns: int) -> str:
    """The shortest readable form: ``300s`` -> ``5m``, ``5400s`` -> ``1h30m``."""
    if ns == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_NS[unit]
        if ns >= size:
            whole, ns = divmod(ns, size)
            parts.append(f"{whole}{unit}")
    if ns:
        parts.append(f"{ns // MS}ms")
    return "".join(parts)


def _to_timedelta(value: Any) -> timedelta:
    return timedelta(microseconds=parse_duration_ns(value) // 1000)


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(lambda td: format_duration_ns(td_ns(td)), return_type=str),
]
"""A pydantic field type that accepts ``30s``/``5m``/``2h``/``7d`` and yields a timedelta."""


def td_ns(td: timedelta) -> int:
    """A timedelta as integer nanoseconds."""
    return (td.days * 86400 + td.seconds) * NS + td.microseconds * 1000


def ms_floor(ns: int) -> int:
    """``ns`` rounded down to a whole millisecond: the DI API's resolution for times."""
    return ns - ns % MS

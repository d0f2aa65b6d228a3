"""Time intervals in a named time zone, as Alertmanager's ``time_intervals`` write them.

One type for every place that asks "is this instant inside office hours?": a rule's
``timestamp|during:`` selection (engine), and routes and silences (notify). It is a base
module (no imports from engine, config or notify) so each side can use it.

An interval holds when every part it gives holds (a part left out always holds)::

    location: Europe/Paris          # IANA zone (zoneinfo): DST handled; default UTC
    weekdays: ['monday:friday']     # names or ranges, inclusive
    times: [{start_time: '08:00', end_time: '18:00'}]   # [start, end), end may be 24:00
    days_of_month: ['1:7', '-1']    # 1-31, negative counts from the month's end
    months: ['january:march', '12'] # names or 1-12
    years: ['2026:2027']

A list of intervals holds when any of them does.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


def _minutes(text: Any, *, end: bool) -> int:
    if not isinstance(text, str) or len(text.split(":")) != 2:
        raise ValueError(f"time {text!r} must be HH:MM, e.g. 08:00")
    hh, mm = text.split(":")
    if not (hh.isdecimal() and mm.isdecimal() and len(mm) == 2):
        raise ValueError(f"time {text!r} must be HH:MM, e.g. 08:00")
    h, m = int(hh), int(mm)
    if (h, m) == (24, 0) and end:
        return 24 * 60
    if h > 23 or m > 59:
        raise ValueError(f"time {text!r} is out of range: 00:00 to 23:59 (end_time may be 24:00)")
    return h * 60 + m


class TimeRange(BaseModel):
    """``[start_time, end_time)`` within one local day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start >= self.end:
            raise ValueError(
                f"start_time {self.start_time} must be before end_time {self.end_time}: "
                "split a range across midnight into two (22:00-24:00 and 00:00-06:00)"
            )
        return self

    @property
    def start(self) -> int:
        return _minutes(self.start_time, end=False)

    @property
    def end(self) -> int:
        return _minutes(self.end_time, end=True)

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _text(cls, value: Any, info: Any) -> Any:
        _minutes(value, end=info.field_name == "end_time")
        return value


_NOUN = {
    "weekdays": "a weekday",
    "days_of_month": "a day of the month",
    "months": "a month",
    "years": "a year",
}


def _parse_ranges(
    items: list[Any], names: tuple[str, ...], low: int, high: int, what: str, *, negative: bool
) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for item in items:
        text = str(item).strip().lower()
        parts = text.split(":")
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"{what} {item!r}: write one value or a range 'a:b'")
        bounds = []
        for part in parts:
            if part in names:
                bounds.append(names.index(part) + low)
                continue
            try:
                value = int(part)
            except ValueError:
                choices = f" ({', '.join(names)})" if names else ""
                raise ValueError(f"{what} {item!r} is not {_NOUN[what]}{choices}") from None
            if not (low <= value <= high or (negative and -high <= value <= -1)):
                raise ValueError(f"{what} {item!r} is out of range {low} to {high}")
            bounds.append(value)
        first, last = bounds[0], bounds[-1]
        if (first < 0) == (last < 0) and first > last:
            raise ValueError(f"{what} range {item!r} runs backwards: write 'a:b' with a <= b")
        out.append((first, last))
    return tuple(out)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; raises ``ValueError`` that says how to fix it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None


class TimeInterval(BaseModel):
    """One Alertmanager-style time interval (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str | int] = Field(default_factory=list)
    months: list[str | int] = Field(default_factory=list)
    years: list[str | int] = Field(default_factory=list)
    location: str = "UTC"
    _compiled: Any = PrivateAttr(default=None)

    @field_validator("weekdays", "days_of_month", "months", "years", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | int) else value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _ranges(self) -> TimeInterval:
        self._compiled = (
            tuple((r.start, r.end) for r in self.times),
            _parse_ranges(self.weekdays, WEEKDAYS, 0, 6, "weekdays", negative=False),
            _parse_ranges(self.days_of_month, (), 1, 31, "days_of_month", negative=True),
            _parse_ranges(self.months, MONTHS, 1, 12, "months", negative=False),
            _parse_ranges(self.years, (), 1, 9999, "years", negative=False),
        )
        return self

    def contains(self, when: datetime) -> bool:
        """Whether the instant ``when`` (aware) falls inside this interval."""
        local = when.astimezone(zone(self.location))
        times, weekdays, days, months, years = self._compiled
        if times:
            minute = local.hour * 60 + local.minute
            if not any(a <= minute < b for a, b in times):
                return False
        if weekdays:
            wd = local.weekday()
            if not any(a <= wd <= b for a, b in weekdays):
                return False
        if days:
            last = calendar.monthrange(local.year, local.month)[1]
            day = local.day
            if not any(_day(a, last) <= day <= _day(b, last) for a, b in days):
                return False
        if months and not any(a <= local.month <= b for a, b in months):
            return False
        return not years or any(a <= local.year <= b for a, b in years)

    def contains_ns(self, ns: int) -> bool:
        """``contains`` for nanoseconds since the epoch (an event's time)."""
        return self.contains(datetime.fromtimestamp(ns / 1e9, UTC))


def _day(value: int, last: int) -> int:
    return value if value > 0 else last + 1 + value


def any_contains(intervals: Sequence[TimeInterval], ns: int) -> bool:
    """Whether any interval holds at ``ns`` (Alertmanager: a named interval's list)."""
    return any(i.contains_ns(ns) for i in intervals)


class NamedTimeInterval(BaseModel):
    """``{name, time_intervals: [...]}``: Alertmanager's named time interval, which
    routes (``mute_time_intervals``, ``active_time_intervals``) and silences
    (``active_time_intervals``) name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    time_intervals: list[TimeInterval] = Field(min_length=1)


def by_name(named: Sequence[NamedTimeInterval]) -> dict[str, list[TimeInterval]]:
    """The named intervals as a lookup."""
    return {n.name: list(n.time_intervals) for n in named}


def active_at(
    names: Sequence[str], intervals: Mapping[str, Sequence[TimeInterval]], ns: int
) -> bool:
    """Whether any of the named intervals holds at ``ns`` (an unknown name never does;
    the config refuses unknown names when it loads)."""
    return any(any_contains(intervals.get(name, ()), ns) for name in names)

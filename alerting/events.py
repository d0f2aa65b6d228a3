"""The event view: a raw DI event kept as-is, plus its parsed time and identity.

DI timestamps carry 0 to 9 fraction digits depending on the service (RADIUS whole
seconds, directory milliseconds, SSO and MDM nanoseconds), so they are parsed into
integer nanoseconds and compared as numbers, never as strings.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from alerting import jsonutil
from alerting.durations import MS as _MS
from alerting.durations import NS as _NS
from alerting.errors import EventError

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)
_DAY_CACHE: dict[str, int] = {}
# "YYYY-MM-DDTHH:MM:" -> epoch ns of that minute, for prefixes already parsed in full.
_MINUTE_CACHE: dict[str, int] = {}
_MINUTE_CACHE_LIMIT = 20_000  # about two weeks of minutes; cleared when full
# "SS" and "fff" of a millisecond time -> their nanoseconds (constant: 1,061 keys)
_SECONDS_NS = {f"{s:02d}": s * _NS for s in range(61)}
_MILLIS_NS = {f"{m:03d}": m * _MS for m in range(1000)}
# epoch minute -> "YYYY-MM-DDTHH:MM:", and epoch day -> "YYYY-MM-DDT", for format_timestamp
_FORMAT_CACHE: dict[int, str] = {}
_FORMAT_DAYS: dict[int, str] = {}
# ... and the text of a second ("SS") and of a millisecond time's end (".fffZ"): constant
_SECOND_TEXTS = tuple(f"{s:02d}" for s in range(60))
_MILLI_TEXTS = tuple(f".{m:03d}Z" for m in range(1000))
# For k fraction digits: "SS" + fraction as one integer is below this when SS <= 60,
# and times this is nanoseconds.
_SECOND_LIMIT = [61 * 10**k for k in range(10)]
_FRACTION_SCALE = [10 ** (9 - k) for k in range(10)]


def parse_timestamp(text: str) -> int:
    """Parse an RFC 3339 timestamp into integer nanoseconds since the epoch (UTC).

    Accepts 0-9 fraction digits, ``Z`` or a ``+HH:MM`` offset; no zone means UTC (the
    DI API's own convention). Raises ``ValueError`` naming the text on anything else.
    """
    # Fast path, a minute seen before (benchmarks/README.md, "Timestamps").
    if type(text) is str:
        base = _MINUTE_CACHE.get(text[:17])
        if base is not None:
            n = len(text)
            if n == 24 and text[23] in "Zz" and text[19] in ".,":  # ms, as DI writes them
                second = _SECONDS_NS.get(text[17:19])
                milli = _MILLIS_NS.get(text[20:23])
                if second is not None and milli is not None:
                    return base + second + milli
            if n > 21 and text[19] in ".," and text[n - 1] in "Zz":  # 1-9 fraction digits
                digits = text[17:19] + text[20 : n - 1]  # seconds and fraction as one
                if n <= 30 and digits.isdecimal():
                    value = int(digits)
                    if value < _SECOND_LIMIT[n - 21]:
                        return base + value * _FRACTION_SCALE[n - 21]
            elif n == 19 or (n == 20 and text[19] in "Zz"):  # whole seconds
                sec = text[17:19]
                if sec.isdecimal() and (s := int(sec)) <= 60:
                    return base + s * _NS
    return _parse_timestamp_full(text)


def _parse_timestamp_full(text: str) -> int:
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, got {type(text).__name__}")
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        raise ValueError(
            f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2026-11-20T10:00:01.123Z"
        )
    year, month, day, hour, minute, second, frac, _z, sign, off_h, off_m = m.groups()
    date_key = text[:10]
    day_seconds = _DAY_CACHE.get(date_key)
    if day_seconds is None:
        try:
            datetime(int(year), int(month), int(day), tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"invalid timestamp {text!r}: {exc}") from None
        day_seconds = calendar.timegm((int(year), int(month), int(day), 0, 0, 0))
        if len(_DAY_CACHE) > 4096:
            _DAY_CACHE.clear()
        _DAY_CACHE[date_key] = day_seconds
    h, mi, s = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or s > 60:
        raise ValueError(f"invalid timestamp {text!r}: time of day out of range")
    minute = day_seconds + h * 3600 + mi * 60
    if len(_MINUTE_CACHE) >= _MINUTE_CACHE_LIMIT:
        _MINUTE_CACHE.clear()
    _MINUTE_CACHE[text[:17]] = minute * _NS
    seconds = minute + s
    if sign is not None:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds += -offset if sign == "+" else offset
    nanos = int(frac.ljust(9, "0")) if frac else 0
    return seconds * _NS + nanos


def format_timestamp(ns: int) -> str:
    """Format nanoseconds as RFC 3339 UTC with ``Z``, keeping only significant digits."""
    seconds, nanos = divmod(ns, _NS)
    # A minute formatted before gives its prefix (benchmarks/README.md, "Formatted minutes").
    minute, second = divmod(seconds, 60)
    prefix = _FORMAT_CACHE.get(minute)
    if prefix is None:
        # A new minute: its day's "YYYY-MM-DDT" is cached too (an alert-heavy replay
        # meets most minutes once, and strftime was most of its formatting).
        day, minute_of_day = divmod(minute, 1440)
        date = _FORMAT_DAYS.get(day)
        if date is None:
            date = datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")
            if len(_FORMAT_DAYS) >= _MINUTE_CACHE_LIMIT:
                _FORMAT_DAYS.clear()
            _FORMAT_DAYS[day] = date
        hour, minute_of_hour = divmod(minute_of_day, 60)
        prefix = f"{date}{hour:02d}:{minute_of_hour:02d}:"
        if len(_FORMAT_CACHE) >= _MINUTE_CACHE_LIMIT:
            _FORMAT_CACHE.clear()
        _FORMAT_CACHE[minute] = prefix
    base = prefix + _SECOND_TEXTS[second]
    if not nanos:
        return base + "Z"
    if nanos % _MS == 0:
        return base + _MILLI_TEXTS[nanos // _MS]
    if nanos % 1000 == 0:
        return f"{base}.{nanos // 1000:06d}Z"
    return f"{base}.{nanos:09d}Z"


class Event:
    """One DI event: the raw JSON object, its time in ns and its identity.

    ``raw`` is never modified; rules read fields from it. ``id`` is the DI event id, or a
    stable content hash for partial events without one (rule tests, hand-made files).
    """

    __slots__ = ("id", "raw", "time_ns")

    def __init__(self, raw: dict[str, Any], time_ns: int, event_id: str) -> None:
        self.raw = raw
        self.time_ns = time_ns
        self.id = event_id

    @classmethod
    def from_raw(cls, raw: Any) -> Event:
        """Build an Event; raises ``EventError`` with the reason when it is unusable."""
        return cls(raw, *identify(raw))

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, timestamp={self.raw.get('timestamp')!r})"

    def complete(self) -> Event:
        """This event with every field of ``raw`` (what an alert shows of it)."""
        return self


def identify(raw: Any) -> tuple[int, str]:
    """(time in ns, id) of a raw event; raises ``EventError`` when it is unusable."""
    if not isinstance(raw, dict):
        raise EventError(f"event is not a JSON object but {type(raw).__name__}")
    stamp = raw.get("timestamp")
    if stamp is None:
        raise EventError("event has no 'timestamp' field")
    try:
        time_ns = parse_timestamp(stamp)
    except ValueError as exc:
        raise EventError(str(exc)) from None
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id:
        event_id = (
            "sha1:"
            + hashlib.sha1(
                jsonutil.dumps(raw, sort_keys=True).encode(), usedforsecurity=False
            ).hexdigest()
        )
    return time_ns, event_id


class JsonEvent(Event):
    """An event parsed from ``blob``, which it keeps: parsing ``blob`` again gives an equal
    ``raw``, so windows can hold the line instead of the tree (no re-encoding).

    ``partial``: ``raw`` holds only the top-level fields the rules read (decoded from
    ``blob`` by ``LazyEvent.parsed``, or by the reader at once); ``blob`` is still the
    whole event, and ``complete()`` gives it back in full for what alerts show.
    ``verdict``: what the reader's ``HeadFilter`` said of it, as ``LazyEvent.verdict``
    (None: not asked).
    """

    __slots__ = ("blob", "partial", "verdict")

    def __init__(
        self,
        raw: dict[str, Any],
        time_ns: int,
        event_id: str,
        blob: bytes,
        partial: bool = False,
        verdict: Any = None,
    ) -> None:
        self.raw = raw
        self.time_ns = time_ns
        self.id = event_id
        self.blob = blob
        self.partial = partial
        self.verdict = verdict

    @classmethod
    def from_json(cls, raw: Any, blob: bytes) -> JsonEvent:
        """``Event.from_raw`` for ``raw = orjson.loads(blob)``."""
        return cls(raw, *identify(raw), blob)

    def complete(self) -> Event:
        if not self.partial:
            return self
        try:
            return JsonEvent(jsonutil.loads(self.blob), self.time_ns, self.id, self.blob)
        except ValueError:
            raw = jsonutil.loads_whole(self.blob)  # e.g. 1e999 in a field no rule reads
            # nothing parses it whole: the alert shows the fields read
            return self if raw is None else Event(raw, self.time_ns, self.id)


class LazyEvent(Event):
    """An event read from a JSON line whose body is not decoded yet.

    The reader decodes only its head: the time, id and type, and the fields the rules'
    conditions read (a fraction of a full parse). That is all a reorder buffer needs to
    hold and order the event, and all an engine needs to tell whether any rule can match
    it (decided by the reader while the head is hot, ``HeadFilter``; the head is not kept:
    ``verdict`` is what the filter said, e.g. the engine's route for the event).
    The body is decoded on release, only for events some rule can match, and only as
    far as the rules read (``parsed(project)``). Holding the line rather than a decoded
    tree matters: a tree held while a thousand others are read goes cold, and touching or
    freeing it later costs more than decoding. The reader checks the whole line's UTF-8
    and msgspec its syntax; where orjson is stricter still (a number beyond float range
    in a field no head reads), ``parsed()`` reports it through the reader's ``on_skip``
    with the line, as the reader would have.
    """

    __slots__ = ("_blob", "_reader", "line", "verdict")

    def __init__(
        self,
        blob: bytes,
        time_ns: int,
        event_id: str,
        verdict: Any,
        reader: LineParser,
        line: int,
    ) -> None:
        self._blob = blob
        self.time_ns = time_ns
        self.id = event_id
        self.verdict = verdict
        self._reader = reader
        self.line = line

    @property
    def raw(self) -> dict[str, Any]:  # type: ignore[override]
        """The whole body, decoded again on each access (``parsed()`` keeps it)."""
        event = self.parsed()
        if event is None:
            raise EventError(f"event {self.id} (line {self.line}) is malformed")
        return event.raw

    def parsed(self, project: Callable[[bytes], dict[str, Any]] | None = None) -> Event | None:
        """The event with its body decoded; None (reported to ``on_skip``) if malformed.

        ``project`` (``jsonutil.projection_decoder``) decodes only the fields the rules
        read: the result is a partial ``JsonEvent`` (``complete()`` gives it whole).
        """
        blob = self._blob
        if project is not None:
            try:
                raw = project(blob)
            except ValueError:
                pass  # the full parse below says why
            else:  # (the reader checked the line's UTF-8, which this skips unread)
                # benchmarks/README.md, "Positional arguments"
                return JsonEvent(raw, self.time_ns, self.id, blob, True)
        try:
            raw = jsonutil.loads(blob)
        except ValueError:
            try:
                raw = self._reader.parse(blob, self.line)
            except EventError as exc:
                self._reader.on_skip(str(exc))
                return None
            return Event(raw, self.time_ns, self.id)
        return JsonEvent(raw, self.time_ns, self.id, blob)


class LineParser(Protocol):
    """What a ``LazyEvent`` needs of the reader that made it."""

    def parse(self, data: bytes, line: int) -> Any:
        """Parse one line the careful way; raise ``EventError("file:LINE: reason")``."""
        ...

    def on_skip(self, message: str) -> None:
        """Report a malformed record."""
        ...


def sort_key(event: Event) -> tuple[int, str]:
    """Event-time order with the id as tie-break: the order the DI API pages in."""
    return (event.time_ns, event.id)


# The least ids held before a sweep of the ones out of the window. Small: ids held long
# past their window fill memory with short-lived strings among long-lived objects, which
# the allocator cannot give back (a sweep at 100,000 ids made a 10M-event streamed
# replay's RSS grow 25% where it grows 3-7% at this size); a sweep costs about two steps
# per id added either way.
_PRUNE_AT = 4096


def forget_ids(seen: dict[str, int], horizon: int) -> tuple[dict[str, int], int]:
    """``seen`` (id -> event time) without the ids older than ``horizon``, and the size at
    which to sweep again: about one window of ids is kept, whatever the input's length."""
    kept = {k: v for k, v in seen.items() if v >= horizon}
    return kept, max(_PRUNE_AT, 2 * len(kept))


class RecentIds:
    """The event ids seen within ``window_ns`` of event time, to tell a repeat: an event
    whose id was seen at most that long before it, as the service's poller tells one
    (its seen ids reach back to ``cursor - overlap``). Memory holds about one window."""

    __slots__ = ("_prune_at", "_seen", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._seen: dict[str, int] = {}
        self._prune_at = _PRUNE_AT

    def repeated(self, event_id: str, time_ns: int) -> bool:
        """Whether this event repeats one seen before; if not, it is remembered."""
        seen = self._seen
        before = seen.get(event_id)
        if before is not None and time_ns - before <= self.window_ns:
            return True
        seen[event_id] = time_ns
        if len(seen) >= self._prune_at:
            self._seen, self._prune_at = forget_ids(seen, time_ns - self.window_ns)
        return False

"""Validating a request body: services, time range, paging, ``fields``, limits.

Every 400 the API answers comes from here or from ``search`` (``BadRequest``), with the
messages of the real API, so a client sees the same errors from the simulator as in
production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, timedelta, timezone
from typing import Any

from alerting.events import parse_timestamp
from alerting.simulator.di_api.constants import DEFAULT_LIMIT, MAX_LIMIT
from alerting.yamlfile import suggest


class BadRequest(Exception):
    """A 400 with the API's ``{"message": ...}`` body."""


def parse_common(
    query: dict[str, Any], now_ns: int, supported: tuple[str, ...]
) -> tuple[frozenset[str] | None, int, int | None]:
    """The services (None = all), start and end of a query; ``BadRequest`` if invalid."""
    services = query.get("service")
    if services is None or services == []:
        raise BadRequest("service is required; supported values: " + ", ".join(supported))
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise BadRequest('service must be a list of strings, e.g. ["all"]')
    for name in services:
        if name not in supported:
            raise BadRequest(
                f"unknown service {name!r}{suggest(name, supported)}; supported values: "
                + ", ".join(supported)
            )
    start_text = query.get("start_time")
    if start_text is None or start_text == "":
        raise BadRequest("start_time is required (RFC 3339, e.g. 2026-01-26T09:00:00Z)")
    start_ns = _parse_time("start_time", start_text)
    if start_ns > now_ns:
        raise BadRequest(f"Start Time is in the future {start_text}")
    end_ns: int | None = None
    end_text = query.get("end_time")
    if end_text is not None and end_text != "":
        end_ns = _parse_time("end_time", end_text)
        if start_ns > end_ns:
            raise BadRequest(f"Start Time not after End Time {start_text} > {end_text}")
    wanted = None if "all" in services else frozenset(services)
    return wanted, start_ns, end_ns


def _parse_time(name: str, text: Any) -> int:
    if not isinstance(text, str):
        raise BadRequest(f"invalid {name}: expected an RFC 3339 string")
    try:
        return parse_timestamp(text)
    except ValueError:
        raise BadRequest(
            f"invalid {name} {text!r}: expected RFC 3339, e.g. 2026-01-26T09:00:00Z"
        ) from None


def parse_search_after(value: Any) -> tuple[int, str] | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[1], str)
        and not isinstance(value[0], bool)
    ):
        first = value[0]
        if isinstance(first, int):
            return first, value[1]
        if isinstance(first, str) and first.strip().lstrip("-").isdigit():
            return int(first), value[1]
    raise BadRequest(
        'invalid search_after: expected [<epoch ms>, "<id>"] as returned in X-Search_after'
    )


def parse_fields(value: Any, known_fields: Callable[[], set[str]]) -> list[tuple[str, ...]] | None:
    """The ``fields`` paths the index knows; ``known_fields`` is asked only if needed."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BadRequest("fields must be a non-empty list of known field names")
    known = known_fields()
    paths = [tuple(f.split(".")) for f in value if isinstance(f, str) and f]
    known_paths = [p for p in paths if p[0] in known]
    if not known_paths:
        raise BadRequest("fields lists no known field: " + ", ".join(str(f) for f in value))
    return known_paths


def parse_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return DEFAULT_LIMIT
    return min(value, MAX_LIMIT)


def parse_tz(text: Any) -> timezone:
    value = str(text).strip().replace(":", "")
    if value.upper() in ("Z", "UTC"):
        return UTC
    if len(value) == 5 and value[0] in "+-" and value[1:].isdigit():
        minutes = int(value[1:3]) * 60 + int(value[3:])
        return timezone((-1 if value[0] == "-" else 1) * timedelta(minutes=minutes))
    raise BadRequest(f"invalid timezone {text!r}: expected an offset such as -0500")

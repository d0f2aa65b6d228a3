"""What a message shows of an alert's events, in words on-call can act on.

The templates get these ready-made (``alert_view``): each source IP with its own country
(``places``), every sample event as ``key: value`` lines (``sample_lines``), each change
as field, old and new value (``change_lines``), plural nouns (``plural``) and the next
steps: the rule's runbook and references, and the user or admin in the JumpCloud admin
console (``next_steps``). Values stay plain text here; each template escapes them for
its target. Only ``http(s)`` URLs become links, and console links are built only from
24-hex object ids, so an event cannot plant a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from alerting import jsonutil
from alerting.notify.escape import one_line

DEFAULT_CONSOLE_URL = "https://console.jumpcloud.com"
# Admin-console pages (hash routes of the single-page app). Not documented by JumpCloud:
# seen in JumpCloud's own PowerShell dashboards (users) and in a third-party JumpCloud
# connector (administrators); see the README, "Next steps in every message".
USER_PAGE = "/#/users/{id}/details"
ADMIN_PAGE = "/#/settings/administrators/details/{id}"
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
_URL = re.compile(r"https?://[^\s<>|\"'`]+")

MAX_PLACES = 10
MAX_SAMPLE_LINES = 30
MAX_CHANGE_LINES = 20
MAX_VALUE_CHARS = 200
ARROW = "→"

# Shown first, in this order; the rest follow as the event has them.
_FIRST = (
    "timestamp",
    "event_type",
    "service",
    "success",
    "sso_token_success",
    "error_message",
    "initiated_by",
    "resource",
    "client_ip",
    "src_ip",
    "geoip",
    "src_geoip",
    "application",
    "auth_method",
    "mfa",
    "useragent",
)
# Leaves that say nothing on-call needs (user-agent version parts, geo codes, schema).
_NOISE = frozenset(
    {
        "@version",
        "changes",  # shown as change_lines
        "useragent.major",
        "useragent.minor",
        "useragent.patch",
        "useragent.os",
        "useragent.os_major",
        "useragent.os_minor",
        "useragent.os_patch",
        "useragent.os_name",
        "useragent.os_version",
        "geoip.continent_code",
        "geoip.region_code",
        "src_geoip.continent_code",
        "src_geoip.region_code",
    }
)
_MISSING = object()


def plural(count: Any, noun: str, plural_form: str | None = None) -> str:
    """``1 event``, ``12 events`` (``plural_form`` for irregular nouns)."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"


def _at(event: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def places(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """``203.0.113.7 (RU)``: each source IP with the countries seen with it, first-seen order."""
    found: dict[str, dict[str, None]] = {}
    for event in events:
        for ip_key, geo_key in (("client_ip",), ("geoip",)), (("src_ip",), ("src_geoip",)):
            ip = _at(event, ip_key)
            if ip in (None, ""):
                continue
            countries = found.setdefault(str(ip), {})
            country = _at(event, (*geo_key, "country_code"))
            if country in (None, ""):
                country = _at(event, (*geo_key, "country_code2"))  # the 2020 shape
            if country not in (None, ""):
                countries.setdefault(str(country), None)
            break
    out = []
    for ip, countries in list(found.items())[:MAX_PLACES]:
        out.append(f"{ip} ({', '.join(countries)})" if countries else ip)
    if len(found) > MAX_PLACES:
        out.append(f"+{len(found) - MAX_PLACES} more")
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return jsonutil.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return jsonutil.dumps(value)


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and all(not isinstance(v, Mapping | list) for v in value):
        if value:
            yield prefix, ", ".join(_text(v) for v in value)
    else:
        yield prefix, value


def sample_lines(event: Mapping[str, Any], limit: int = MAX_SAMPLE_LINES) -> list[str]:
    """The event as ``key: value`` lines (dotted keys), the telling fields first."""
    order = {key: i for i, key in enumerate(_FIRST)}
    keys = sorted(event, key=lambda k: order.get(str(k), len(order)))
    lines: list[str] = []
    total = 0
    for key in keys:
        for path, value in _leaves(event[key], str(key)):
            if path in _NOISE or path.split(".", 1)[0] in _NOISE:
                continue
            if value is None or value == "" or value == {} or value == []:
                continue
            total += 1
            if len(lines) < limit:
                lines.append(f"{path}: {one_line(_text(value), MAX_VALUE_CHARS)}")
    if total > len(lines):
        lines.append(f"(+{total - len(lines)} more fields)")
    return lines


# ---------------------------------------------------------------------------- changes


def _label(old: Any, new: Any, index: int) -> str:
    """``[Division]`` when both list elements carry the same name, else ``[0]``."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in ("name", "configFieldName", "type", "field"):
            if key in old and old.get(key) == new.get(key) and isinstance(old[key], str):
                return f"[{old[key]}]"
    return f"[{index}]"


def _diff(path: str, old: Any, new: Any) -> Iterator[tuple[str, Any, Any]]:
    """(path, old, new) of the leaves that differ; ids inside list elements only when
    nothing else in the element changed."""
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: list[tuple[str, Any, Any]] = []
        for key in dict.fromkeys([*old, *new]):
            found.extend(_diff(f"{path}.{key}", old.get(key, _MISSING), new.get(key, _MISSING)))
        telling = [d for d in found if d[0].rsplit(".", 1)[-1] not in ("id", "_id")]
        yield from telling or found
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _diff(path + _label(a, b, i), a, b)
        return
    yield path, old, new


def _shown(value: Any) -> str:
    return one_line(_text(value), 120)


def change_lines(events: Iterable[Mapping[str, Any]], limit: int = MAX_CHANGE_LINES) -> list[str]:
    """``field: old → new`` for every change the events record (DI ``changes`` entries:
    ``{field, from, to}``, ``from`` or ``to`` may be absent), deepest differing values."""
    lines: dict[str, None] = {}
    total = 0
    for event in events:
        changes = event.get("changes")
        if isinstance(changes, Mapping):
            changes = [changes]
        if not isinstance(changes, list):
            continue
        for change in changes:
            if not isinstance(change, Mapping) or not isinstance(change.get("field"), str):
                continue
            old, new = change.get("from", _MISSING), change.get("to", _MISSING)
            if old is _MISSING and new is _MISSING:
                found = [(change["field"], _MISSING, _MISSING)]
            else:
                found = list(_diff(change["field"], old, new)) or [(change["field"], old, new)]
            for path, a, b in found:
                if a is _MISSING and b is _MISSING:
                    line = f"{path}: changed (no values recorded)"
                elif a is _MISSING:
                    line = f"{path}: set to {_shown(b)}"
                elif b is _MISSING:
                    line = f"{path}: {_shown(a)} removed"
                else:
                    line = f"{path}: {_shown(a)} {ARROW} {_shown(b)}"
                if line not in lines:
                    total += 1
                    if len(lines) < limit:
                        lines[line] = None
    out = list(lines)
    if total > len(out):
        out.append(f"(+{total - len(out)} more changes)")
    return out


# ---------------------------------------------------------------------------- next steps


def is_url(text: str) -> bool:
    return _URL.fullmatch(text.strip()) is not None


def _step(text: str, url: str = "", label: str = "") -> dict[str, str]:
    """``text`` (with ``url`` beside it in plain text); ``label``: the link's words."""
    return {"text": text, "url": url, "label": label or text}


def _short(url: str) -> str:
    """``attack.mitre.org/techniques/T1110/``: a URL as link words."""
    return one_line(url.split("://", 1)[-1].rstrip("/"), 80)


def console_links(
    events: Iterable[Mapping[str, Any]], console_url: str = DEFAULT_CONSOLE_URL
) -> list[dict[str, str]]:
    """The users and admins the events name, as admin-console pages (by object id)."""
    base = console_url.rstrip("/")
    seen: dict[str, dict[str, str]] = {}
    for event in events:
        for role in ("initiated_by", "resource"):
            who = event.get(role)
            if not isinstance(who, Mapping):
                continue
            kind, oid = who.get("type"), who.get("id")
            if kind not in ("user", "admin") or not isinstance(oid, str):
                continue
            if not _OBJECT_ID.fullmatch(oid) or oid in seen:
                continue
            name = who.get("username") or who.get("email") or who.get("displayName") or oid
            page = (USER_PAGE if kind == "user" else ADMIN_PAGE).format(id=oid)
            noun = "user" if kind == "user" else "admin"
            seen[oid] = _step(f"{noun} {one_line(name, 100)} in the JumpCloud console", base + page)
    return list(seen.values())[:5]


def next_steps(
    runbook: str,
    references: Sequence[str],
    events: Iterable[Mapping[str, Any]],
    console_url: str = DEFAULT_CONSOLE_URL,
) -> list[dict[str, str]]:
    """``{text, url, label}`` items: the runbook, the references, then console links."""
    steps: list[dict[str, str]] = []
    if runbook:
        steps.append(_step("Runbook", runbook.strip()) if is_url(runbook) else _step(runbook))
    for ref in references[:5]:
        ref = str(ref).strip()
        if ref:
            steps.append(_step("Reference", ref, _short(ref)) if is_url(ref) else _step(ref))
    steps.extend(console_links(events, console_url))
    return steps

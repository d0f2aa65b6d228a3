"""Selections compiled into predicates over a raw event dict.

A selection is Sigma-shaped: a mapping is an AND over its ``field|modifier: value`` keys,
a list of values under one key is an OR, a list of mappings is an OR of the mappings.
Everything (paths, wildcards, regexes, networks) is compiled once at load, so matching an
event is plain dict lookups and string operations.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from alerting.engine.elements import element_predicate
from alerting.engine.fields import MISSING, FieldPathError, Getter, compile_path
from alerting.engine.sigmavalues import (
    QMARK,
    STAR,
    VALUE_TRANSFORMS,
    TransformError,
    has_wildcard,
    transform,
)
from alerting.engine.sigmavalues import tokens as sigma_tokens
from alerting.events import parse_timestamp
from alerting.timeintervals import TimeInterval
from alerting.yamlfile import PathKey, suggest

Predicate = Callable[[dict[str, Any]], bool]
ValueTest = Callable[[Any], bool]
Residual = Predicate | bool
"""A predicate partly evaluated: ``True``/``False`` when decided, else what remains."""
Specializer = Callable[[Mapping[str, Any]], Residual]
"""A condition partly evaluated for known values of some top-level fields (``known``:
field -> value, ``MISSING`` for a field the event lacks); see ``_map_specializer``."""

_VERDICT_CACHE_LIMIT = 4096  # text values whose verdict a nested-field lookup remembers

STRING_MODIFIERS = ("contains", "startswith", "endswith")
TYPE_MODIFIERS = ("re", "cidr", "gt", "gte", "lt", "lte", "exists", "fieldref")
REGEX_FLAGS = ("i", "m", "s")
TIME_PARTS = ("minute", "hour", "day", "week", "month", "year")
# Sigma 2.1's modifiers, then the project's extension: ``during`` (a time interval).
MODIFIERS = (
    *STRING_MODIFIERS,
    *TYPE_MODIFIERS,
    *REGEX_FLAGS,
    *VALUE_TRANSFORMS,
    *TIME_PARTS,
    "all",
    "cased",
    "neq",
    "during",
    "element",  # the project's: one list element matches a mapping (alerting.engine.elements)
)


class SelectionError(ValueError):
    """A selection that cannot be compiled; ``path`` is relative to the selection."""

    def __init__(
        self,
        message: str,
        path: PathKey = (),
        *,
        key: bool = False,
        others: list[SelectionError] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.key = key
        self.others = others or []

    def all(self) -> list[SelectionError]:
        """This error and the others found in the same selection."""
        return [self, *self.others]


@dataclass(frozen=True, slots=True)
class CompiledSelection:
    """A selection's predicate plus what indexing needs to know about it.

    ``event_types`` is the finite set of (lower-cased) ``event_type`` values the
    selection requires, or ``None`` when it accepts any.
    """

    name: str
    predicate: Predicate
    event_types: frozenset[str] | None
    fields: tuple[str, ...]
    specialize: Specializer | None = None
    """What is left to check once some top-level fields (``event_type``, flags) are known:
    ``True`` or ``False`` when that decides it, else a predicate over the other entries."""


# --------------------------------------------------------------------------- wildcards


def _string_test(tokens: list[Any], cased: bool) -> Callable[[str], bool]:
    """A test on a string for a token list, using str methods when no regex is needed."""
    lead = bool(tokens) and tokens[0] is STAR
    rest = tokens[1:] if lead else tokens
    trail = bool(rest) and rest[-1] is STAR
    core = rest[:-1] if trail else rest
    if all(isinstance(t, str) for t in core):
        lit = "".join(core)
        if not cased:
            lit = lit.lower()
        norm: Callable[[str], str] = (lambda s: s) if cased else str.lower
        if lead and trail:
            if not lit:
                return lambda s: True
            return lambda s: lit in norm(s)
        if lead:
            return lambda s: norm(s).endswith(lit)
        if trail:
            return lambda s: norm(s).startswith(lit)
        if cased:
            return lambda s: s == lit
        return lambda s: s == lit or s.lower() == lit
    parts = []
    for t in tokens:
        if t is STAR:
            parts.append(".*")
        elif t is QMARK:
            parts.append(".")
        else:
            parts.append(re.escape(t))
    rx = re.compile("".join(parts), re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    fullmatch = rx.fullmatch
    return lambda s: fullmatch(s) is not None


# --------------------------------------------------------------------------- value tests


def _as_text(value: Any) -> str | None:
    """How a scalar event value reads as text: JSON spelling for booleans and numbers."""
    t = type(value)
    if t is str:
        return value
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _as_number(value: Any) -> float | None:
    t = type(value)
    if t is int or t is float:
        return float(value)
    if t is str:
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _text_test(pattern: str, mods: set[str]) -> ValueTest:
    tokens = sigma_tokens(pattern)
    if "contains" in mods:
        tokens = [STAR, *tokens, STAR]
    elif "startswith" in mods:
        tokens = [*tokens, STAR]
    elif "endswith" in mods:
        tokens = [STAR, *tokens]
    if len(tokens) > 1 and tokens[0] is STAR and tokens[1] is STAR:
        tokens = tokens[1:]
    if len(tokens) > 1 and tokens[-1] is STAR and tokens[-2] is STAR:
        tokens = tokens[:-1]
    test = _string_test(tokens, "cased" in mods)

    def text_test(value: Any) -> bool:
        if type(value) is str:
            return test(value)
        text = _as_text(value)
        return text is not None and test(text)

    return text_test


def _bool_test(expected: bool) -> ValueTest:
    word = "true" if expected else "false"

    def bool_test(value: Any) -> bool:
        if type(value) is bool:
            return value is expected
        return type(value) is str and value.lower() == word

    return bool_test


def _number_test(expected: float) -> ValueTest:
    def number_test(value: Any) -> bool:
        if type(value) is bool:
            return False
        number = _as_number(value)
        return number is not None and number == expected

    return number_test


def _null_test(value: Any) -> bool:
    return value is None or value is MISSING


def _compare_test(op: str, bound: float) -> ValueTest:
    def compare(value: Any) -> bool:
        if type(value) is bool:
            return False
        number = _as_number(value)
        if number is None:
            return False
        if op == "gt":
            return number > bound
        if op == "gte":
            return number >= bound
        if op == "lt":
            return number < bound
        return number <= bound

    return compare


def _regex_test(pattern: str, mods: set[str] | frozenset[str] = frozenset()) -> ValueTest:
    flags = (
        (re.IGNORECASE if "i" in mods else 0)
        | (re.MULTILINE if "m" in mods else 0)
        | (re.DOTALL if "s" in mods else 0)
    )
    try:
        rx = re.compile(pattern, flags)
    except re.error as exc:
        raise SelectionError(f"invalid regular expression {pattern!r}: {exc}") from None
    search = rx.search

    def regex_test(value: Any) -> bool:
        text = value if type(value) is str else _as_text(value)
        return text is not None and search(text) is not None

    return regex_test


@lru_cache(maxsize=65536)
def _parse_ip(text: str) -> tuple[int, int] | None:
    """(version, integer) of an address string, cached: the same IPs recur in traffic."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return (4, int(addr.ipv4_mapped))
    return (addr.version, int(addr))


def _cidr_test(networks: list[str]) -> ValueTest:
    ranges: list[tuple[int, int, int]] = []
    for text in networks:
        try:
            net = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            hint = ""
            try:
                loose = ipaddress.ip_network(text.strip(), strict=False)
                hint = f" (did you mean {str(loose)!r}?)"
            except ValueError:
                pass
            raise SelectionError(f"invalid network {text!r}: {exc}{hint}") from None
        ranges.append((net.version, int(net.network_address), int(net.broadcast_address)))

    def cidr_test(value: Any) -> bool:
        if type(value) is not str:
            return False
        parsed = _parse_ip(value)
        if parsed is None:
            return False
        version, number = parsed
        for v, low, high in ranges:  # noqa: SIM110 - hot path: no generator per event
            if v == version and low <= number <= high:
                return True
        return False

    return cidr_test


def _scalar_test(value: Any, mods: set[str]) -> ValueTest:
    """The test one listed value stands for, under the field's modifiers."""
    typed = mods & {"gt", "gte", "lt", "lte"}
    part = mods & set(TIME_PARTS)
    if part:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SelectionError(f"|{next(iter(part))} needs a whole number, got {value!r}")
        return _time_part_test(next(iter(part)), next(iter(typed)) if typed else "eq", value)
    if typed:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SelectionError(f"|{next(iter(typed))} needs a number, got {value!r}")
        return _compare_test(next(iter(typed)), float(value))
    if "re" in mods:
        if not isinstance(value, str):
            raise SelectionError(f"|re needs a regular expression string, got {value!r}")
        return _regex_test(value, mods)
    if value is None:
        if mods & {*STRING_MODIFIERS}:
            raise SelectionError("null cannot be combined with |contains/|startswith/|endswith")
        return _null_test
    if isinstance(value, bool):
        if mods & {*STRING_MODIFIERS}:
            return _text_test("true" if value else "false", mods)
        return _bool_test(value)
    if isinstance(value, int | float):
        if mods & {*STRING_MODIFIERS}:
            return _text_test(_as_text(value) or "", mods)
        return _number_test(float(value))
    if isinstance(value, str):
        return _text_test(value, mods)
    if isinstance(value, dict):
        raise SelectionError(
            "expected a value or a list of values, got a mapping: "
            "write nested fields as a dotted path, e.g. initiated_by.username"
        )
    raise SelectionError(f"unsupported value {value!r}")


# --------------------------------------------------------------------------- time parts


@lru_cache(maxsize=4096)
def _time_parts(text: str) -> tuple[int, int, int, int, int, int] | None:
    """(minute, hour, day, ISO week, month, year) of a timestamp string, in UTC."""
    try:
        ns = parse_timestamp(text)
    except ValueError:
        return None
    when = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return (when.minute, when.hour, when.day, when.isocalendar()[1], when.month, when.year)


def _time_value(value: Any) -> tuple[int, int, int, int, int, int] | None:
    if type(value) is str:
        return _time_parts(value)
    if type(value) is int or type(value) is float:  # epoch seconds
        when = datetime.fromtimestamp(float(value), UTC)
        return (when.minute, when.hour, when.day, when.isocalendar()[1], when.month, when.year)
    return None


def _time_part_test(part: str, op: str, bound: int) -> ValueTest:
    index = TIME_PARTS.index(part)
    compare = _COMPARE[op]

    def time_part(value: Any) -> bool:
        parts = _time_value(value)
        return parts is not None and compare(parts[index], bound)

    return time_part


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _during_test(value: Any) -> ValueTest:
    """``timestamp|during: {location, weekdays, times, ...}`` (or a list: any of them)."""
    items = value if isinstance(value, list) else [value]
    intervals: list[TimeInterval] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SelectionError(
                "|during needs a time interval such as {location: Europe/Paris, weekdays: "
                f"['monday:friday'], times: [{{start_time: '08:00', end_time: '18:00'}}]}}, "
                f"got {item!r}",
                (i,) if isinstance(value, list) else (),
            )
        try:
            intervals.append(TimeInterval.model_validate(item))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = str(first["msg"]).removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                msg = (
                    f"unknown key{suggest(str(first['loc'][-1]), INTERVAL_KEYS)}"
                    f" (known: {', '.join(INTERVAL_KEYS)})"
                )
            path: PathKey = (i,) if isinstance(value, list) else ()
            raise SelectionError(f"|during: {where + ': ' if where else ''}{msg}", path) from None
    intervals_t = tuple(intervals)

    def during(raw_value: Any) -> bool:
        if type(raw_value) is str:
            try:
                ns = parse_timestamp(raw_value)
            except ValueError:
                return False
        elif type(raw_value) is int or type(raw_value) is float:
            ns = int(raw_value * 1_000_000_000)
        else:
            return False
        for interval in intervals_t:  # noqa: SIM110 - hot path: no generator per event
            if interval.contains_ns(ns):
                return True
        return False

    return during


INTERVAL_KEYS = ("location", "weekdays", "times", "days_of_month", "months", "years")


# --------------------------------------------------------------------------- fields


def _transform(value: Any, mods: list[str], ctx: SelectionContext) -> list[Any]:
    """A rule value through its value-changing modifiers (``sigmavalues.transform``)."""
    changing = [m for m in mods if m in VALUE_TRANSFORMS]
    if not changing:
        return [value]
    if not isinstance(value, str):
        raise SelectionError(f"|{changing[0]} needs a text value, got {value!r}")
    try:
        return transform(value, changing, ctx.placeholders)
    except TransformError as exc:
        raise SelectionError(str(exc)) from None


def _parse_key(key: str) -> tuple[str, list[str]]:
    field, *mods = key.split("|")
    field = field.strip()
    mods = [m.strip() for m in mods]
    if not field:
        raise SelectionError(
            f"{key!r} has no field name: write field|modifier, e.g. client_ip|cidr", key=True
        )
    _check_modifiers(key, mods)
    return field, mods


def _check_modifiers(key: str, mods: list[str]) -> None:
    for mod in mods:
        if mod not in MODIFIERS:
            hint = suggest(mod, MODIFIERS) or f" (known: {', '.join(MODIFIERS)})"
            raise SelectionError(f"unknown modifier {mod!r} in {key!r}{hint}", key=True)
    if len(set(mods)) != len(mods):
        raise SelectionError(f"a modifier is repeated in {key!r}", key=True)
    kinds = [m for m in mods if m in STRING_MODIFIERS or m in TYPE_MODIFIERS or m == "during"]
    compares = [k for k in kinds if k in ("gt", "gte", "lt", "lte")]
    parts = [m for m in mods if m in TIME_PARTS]
    matching = [k for k in kinds if k not in compares]
    if "fieldref" in matching:
        matching = [k for k in matching if k not in (*STRING_MODIFIERS, "fieldref")] + ["fieldref"]
    if len(parts) > 1:
        raise SelectionError(
            f"modifiers {' and '.join(repr(p) for p in parts)} cannot be combined in {key!r}: "
            "use one time part per key",
            key=True,
        )
    if len(compares) > 1 or len(matching) > 1 or (compares and matching):
        named = [*matching, *compares]
        raise SelectionError(
            f"modifiers {' and '.join(repr(k) for k in named)} cannot be combined in {key!r}: "
            "use one per key (split into two selections)",
            key=True,
        )
    if parts and matching:
        raise SelectionError(
            f"|{parts[0]} compares a number: combine it only with gt, gte, lt, lte or neq "
            f"in {key!r}",
            key=True,
        )
    if "exists" in mods and len(mods) > 1:
        raise SelectionError(f"|exists takes no other modifier in {key!r}", key=True)
    if "during" in mods and set(mods) - {"during", "neq"}:
        raise SelectionError(f"|during takes no other modifier but neq in {key!r}", key=True)
    flags = [m for m in mods if m in REGEX_FLAGS]
    if flags and "re" not in mods:
        raise SelectionError(
            f"|{flags[0]} is a flag of |re (i: ignore case, m: multi-line, s: dot matches "
            f"newline): write field|re|{flags[0]} in {key!r}",
            key=True,
        )
    # Value transforms (windash, encodings) make text; expand only substitutes values.
    transforms = [m for m in mods if m in VALUE_TRANSFORMS and m != "expand"]
    not_text = [k for k in kinds if k in ("re", "cidr", "exists", "fieldref", "during")]
    clash = (not_text + compares + parts)[:1]
    if transforms and clash:
        raise SelectionError(
            f"|{transforms[0]} changes a text value and cannot be combined with |{clash[0]} "
            f"in {key!r}",
            key=True,
        )
    if "cased" in mods and (set(kinds) & {"re", "cidr", "gt", "gte", "lt", "lte"} or parts):
        raise SelectionError(f"|cased applies to text matching only, not in {key!r}", key=True)


@dataclass(frozen=True, slots=True)
class SelectionContext:
    """What compiling a selection may read besides the rule: the ``expand``
    placeholders (from the config's ``placeholders:`` or the rules directory)."""

    placeholders: Mapping[str, Sequence[str]] = dc_field(default_factory=dict)


NO_CONTEXT = SelectionContext()


def compile_field(
    key: str, value: Any, ctx: SelectionContext = NO_CONTEXT
) -> tuple[str, Predicate, frozenset[str] | None]:
    """Compile one ``field|mods: value`` entry into (field path, predicate, event types)."""
    field, mods_list = _parse_key(key)
    mods = set(mods_list)
    try:
        getter = compile_path(field)
    except FieldPathError as exc:
        raise SelectionError(str(exc), key=True) from None

    if "element" in mods:
        if len(mods) > 1:
            raise SelectionError(f"|element takes no other modifier in {key!r}", key=True)
        if not isinstance(value, dict):
            raise SelectionError(
                "|element needs a mapping that one list element must match, "
                f"e.g. changes|element: {{field: totp_enabled, to: false}}; got {value!r}"
            )
        match, _types, _fields, _spec = _compile_map(value, (), ctx)
        return field, element_predicate(getter, match), None

    if "exists" in mods:
        if not isinstance(value, bool):
            raise SelectionError(f"|exists needs true or false, got {value!r}")
        want = value

        def exists(raw: dict[str, Any]) -> bool:
            return (getter(raw) is not MISSING) is want

        return field, exists, None

    if "during" in mods:
        test = _during_test(value)
        pred = _one(getter, test, False)
        return field, _negate(pred) if "neq" in mods else pred, None

    values = value if isinstance(value, list) else [value]
    if not values:
        raise SelectionError("an empty list matches nothing: give at least one value")
    if "all" in mods and not isinstance(value, list):
        raise SelectionError("|all needs a list of values (it requires every one to match)")
    if isinstance(value, list) and len(values) > 1:
        for i, v in enumerate(values):
            if v is None:
                raise SelectionError(
                    "null cannot be part of a list of values (Sigma): put 'field: null' in a "
                    "selection of its own and join the two with 'or' in the condition",
                    (i,),
                )

    def at(i: int) -> PathKey:
        return (i,) if isinstance(value, list) else ()

    # (index of the value as written, the value it stands for after transforms)
    expanded: list[tuple[int, Any]] = []
    for i, v in enumerate(values):
        try:
            expanded.extend((i, t) for t in _transform(v, mods_list, ctx))
        except SelectionError as exc:
            raise SelectionError(exc.message, at(i)) from None

    if "fieldref" in mods:
        refs: list[Predicate] = []
        for i, v in expanded:
            if not isinstance(v, str):
                raise SelectionError(f"|fieldref needs a field name, got {v!r}", at(i))
            try:
                refs.append(_fieldref(getter, compile_path(v), mods))
            except FieldPathError as exc:
                raise SelectionError(str(exc), at(i)) from None
        pred = all_of(refs) if "all" in mods else any_of(refs)
        return field, _negate(pred) if "neq" in mods else pred, None

    tests: list[ValueTest] = []
    if "cidr" in mods:
        for i, v in expanded:
            if not isinstance(v, str):
                raise SelectionError(f"|cidr needs a network such as 10.0.0.0/8, got {v!r}", at(i))
        if "all" in mods:
            tests = [_cidr_test([v]) for _, v in expanded]
        else:
            try:
                tests = [_cidr_test([v for _, v in expanded])]
            except SelectionError:
                for i, v in expanded:
                    try:
                        _cidr_test([v])
                    except SelectionError as exc:
                        raise SelectionError(exc.message, at(i)) from None
                raise
    else:
        for i, v in expanded:
            try:
                tests.append(_scalar_test(v, mods))
            except SelectionError as exc:
                raise SelectionError(exc.message, at(i)) from None

    plain = [v for _, v in expanded]
    event_types: frozenset[str] | None = None
    if (
        field == "event_type"
        and not (mods - {"cased", "expand"})
        and all(
            isinstance(v, str) and not has_wildcard(sigma_tokens(v)) and "\\" not in v
            for v in plain
        )
    ):
        event_types = frozenset(v.lower() for v in plain)

    match_null = any(t is _null_test for t in tests)
    if "all" in mods:
        general = _all_of(getter, tests)
    elif len(tests) == 1:
        general = _one(getter, tests[0], match_null)
    else:
        general = _any_of(getter, tests, match_null)
    if "neq" in mods:
        return field, _negate(general), None
    fast = None if mods - {"expand"} else _fast_field(field, plain, general)
    return field, fast or general, event_types


def _negate(pred: Predicate) -> Predicate:
    def neq(raw: dict[str, Any]) -> bool:
        return not pred(raw)

    return neq


def _fieldref(own: Getter, other: Getter, mods: set[str]) -> Predicate:
    """``field|fieldref: other``: the event's two fields hold the same value (or, with
    contains/startswith/endswith, the first holds the second's text there)."""
    cased = "cased" in mods
    kind = next((m for m in STRING_MODIFIERS if m in mods), "")

    def norm(v: Any) -> str | None:
        text = _as_text(v)
        if text is None:
            return None
        return text if cased else text.lower()

    def fieldref(raw: dict[str, Any]) -> bool:
        a = own(raw)
        b = other(raw)
        if a is MISSING or b is MISSING:
            return False
        left = a if type(a) is list else [a]
        right = b if type(b) is list else [b]
        for x in left:
            nx = norm(x)
            if nx is None:
                continue
            for y in right:
                ny = norm(y)
                if ny is None:
                    continue
                if kind == "contains":
                    if ny in nx:
                        return True
                elif kind == "startswith":
                    if nx.startswith(ny):
                        return True
                elif kind == "endswith":
                    if nx.endswith(ny):
                        return True
                elif nx == ny:
                    return True
        return False

    return fieldref


def _fast_field(field: str, values: list[Any], general: Predicate) -> Predicate | None:
    """A specialised predicate for the commonest entries (the hot path), or ``None``.

    ``event_type: [a, b]`` (plain text) becomes a set lookup and ``success: false`` an
    identity test, with the field read inline when the path is one key. Anything unusual
    (lists, numbers) falls back to ``general``, so the semantics are the same.
    """
    if field.startswith("$"):
        return None
    key = field
    plain = all(
        isinstance(v, str) and "\\" not in v and not has_wildcard(sigma_tokens(v)) for v in values
    )
    if "." in field:
        # a nested field (geoip.country_code: [deny-list]): the same set lookup, read by path
        return _fast_nested(field, values, general) if plain else None
    if plain:
        lits = frozenset(v.lower() for v in values)

        def literal(raw: dict[str, Any]) -> bool:
            v = raw.get(key, MISSING)
            if type(v) is str:
                return v in lits or v.lower() in lits
            if v is MISSING or v is None:
                return False
            return general(raw)

        return literal
    if len(values) == 1 and isinstance(values[0], bool):
        want: bool = values[0]
        word = "true" if want else "false"

        def boolean(raw: dict[str, Any]) -> bool:
            v = raw.get(key, MISSING)
            if v is want:
                return True
            if type(v) is str:
                return v.lower() == word
            if type(v) is list:
                return general(raw)
            return False

        return boolean
    return None


def _fast_nested(field: str, values: list[Any], general: Predicate) -> Predicate:
    """``_fast_field``'s set lookup for plain text values of a dotted path, with the
    verdict remembered per value: a deny-list check (``geoip.country_code: [CU, IR]``)
    meets every event, and most values (``US``) are in neither spelling, two lookups and
    a ``lower()`` each time. Two-part paths are read inline, as their getter would."""
    lits = frozenset(v.lower() for v in values)
    verdicts: dict[str, bool] = {}

    def verdict(v: str) -> bool:
        found = v in lits or v.lower() in lits
        if len(verdicts) >= _VERDICT_CACHE_LIMIT:
            verdicts.clear()  # values are event text (attacker-chosen): bounded
        verdicts[v] = found
        return found

    parts = field.split(".")
    if len(parts) == 2:
        k1, k2 = parts

        def nested2(raw: dict[str, Any]) -> bool:
            inner = raw.get(k1)
            if type(inner) is not dict:
                return False
            v = inner.get(k2)
            if type(v) is str:
                known = verdicts.get(v)
                return verdict(v) if known is None else known
            if v is None:
                return False
            return general(raw)

        return nested2
    getter = compile_path(field)

    def nested(raw: dict[str, Any]) -> bool:
        v = getter(raw)
        if type(v) is str:
            known = verdicts.get(v)
            return verdict(v) if known is None else known
        if v is MISSING or v is None:
            return False
        return general(raw)

    return nested


def _one(getter: Callable[[dict[str, Any]], Any], test: ValueTest, null: bool) -> Predicate:
    def one(raw: dict[str, Any]) -> bool:
        value = getter(raw)
        if value is MISSING:
            return null
        if type(value) is list:
            return any(test(v) for v in value)
        return test(value)

    return one


def _any_of(
    getter: Callable[[dict[str, Any]], Any], tests: list[ValueTest], null: bool
) -> Predicate:
    tests_t = tuple(tests)

    def any_of(raw: dict[str, Any]) -> bool:
        value = getter(raw)
        if value is MISSING:
            return null
        if type(value) is list:
            return any(t(v) for v in value for t in tests_t)
        for t in tests_t:  # noqa: SIM110 - hot path: no generator per event
            if t(value):
                return True
        return False

    return any_of


def _all_of(getter: Callable[[dict[str, Any]], Any], tests: list[ValueTest]) -> Predicate:
    tests_t = tuple(tests)

    def all_of(raw: dict[str, Any]) -> bool:
        value = getter(raw)
        if type(value) is list:
            return all(any(t(v) for v in value) for t in tests_t)
        return all(t(value) for t in tests_t)

    return all_of


# --------------------------------------------------------------------------- selections


def _compile_map(
    body: dict[Any, Any], base: PathKey, ctx: SelectionContext = NO_CONTEXT
) -> tuple[Predicate, frozenset[str] | None, list[str], Specializer]:
    if not body:
        raise SelectionError("an empty selection matches nothing: add field: value entries", base)
    preds: list[Predicate] = []
    types: frozenset[str] | None = None
    fields: list[str] = []
    errors: list[SelectionError] = []
    keyword_entries: list[Predicate] = []
    plain_keys: list[str] = []
    for key, value in body.items():
        if not isinstance(key, str):
            errors.append(
                SelectionError(f"a field name must be text, got {key!r}", (*base, key), key=True)
            )
            continue
        try:
            if key.strip().startswith("|"):  # '|all': [...] is a keyword search (Sigma)
                keyword_entries.append(compile_keywords(key, value, ctx))
                continue
            field, pred, ets = compile_field(key, value, ctx)
        except SelectionError as exc:
            errors.append(SelectionError(exc.message, (*base, key, *exc.path), key=exc.key))
            continue
        preds.append(pred)
        fields.append(field)
        plain_keys.append(key)
        if ets is not None:
            types = ets if types is None else types & ets
    if errors:
        first = errors[0]
        raise SelectionError(first.message, first.path, key=first.key, others=errors[1:])
    # A fieldref entry reads a second field: never decided by known values alone.
    entries = [
        ("" if "fieldref" in str(key).split("|")[1:] else f, p)
        for key, f, p in zip(plain_keys, fields, preds, strict=True)
    ]
    preds.extend(keyword_entries)
    entries.extend(("", p) for p in keyword_entries)
    return all_of(preds), types, fields, _map_specializer(entries)


KEYWORD_MODIFIERS = frozenset(
    {*STRING_MODIFIERS, *VALUE_TRANSFORMS, "re", *REGEX_FLAGS, "all", "cased"}
)


def compile_keywords(key: str, value: Any, ctx: SelectionContext = NO_CONTEXT) -> Predicate:
    """A keyword search (Sigma): the values anywhere among the event's text values.

    ``key`` is ``""`` for a plain list of keywords or ``|mod|mod`` for the
    ``'|all': [...]`` form. A keyword matches a value holding it (contains, case
    insensitive) unless a modifier says otherwise (startswith, re, cased...).
    """
    mods = [m.strip() for m in key.strip().split("|")[1:]] if key.strip() else []
    _check_modifiers(f"{key}", mods)
    bad = [m for m in mods if m not in KEYWORD_MODIFIERS]
    if bad:
        raise SelectionError(
            f"|{bad[0]} does not apply to a keyword search (it needs a field): "
            "write field|modifier: value",
            key=True,
        )
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SelectionError("an empty keyword list matches nothing: give at least one keyword")
    mod_set = set(mods)
    if not mod_set & {*STRING_MODIFIERS, "re"}:
        mod_set.add("contains")
    tests: list[ValueTest] = []
    for i, v in enumerate(values):
        where: PathKey = (i,) if isinstance(value, list) else ()
        if isinstance(v, dict | list) or v is None:
            raise SelectionError(
                f"a keyword must be text or a number, got {v!r}: mix keywords and "
                "field: value mappings in separate selections",
                where,
            )
        try:
            for t in _transform(v if isinstance(v, str) else _as_text(v), mods, ctx):
                tests.append(_scalar_test(t, mod_set))
        except SelectionError as exc:
            raise SelectionError(exc.message, where) from None
    tests_t = tuple(tests)
    if "all" in mod_set:

        def all_keywords(raw: dict[str, Any]) -> bool:
            texts = _event_texts(raw)
            return all(any(t(x) for x in texts) for t in tests_t)

        return all_keywords

    def keywords(raw: dict[str, Any]) -> bool:
        for text in _event_texts(raw):
            for t in tests_t:
                if t(text):
                    return True
        return False

    return keywords


def _event_texts(node: Any) -> list[str]:
    """Every scalar value of an event as text (numbers and booleans as JSON spells them)."""
    out: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is dict:
            stack.extend(item.values())
        elif t is list:
            stack.extend(item)
        else:
            text = _as_text(item)
            if text is not None:
                out.append(text)
    return out


def _map_specializer(entries: list[tuple[str, Predicate]]) -> Specializer:
    """Partial evaluation of an AND of entries for known values of some top-level fields.

    An entry on a one-key field path reads nothing but that key, so once the event's
    value there is known its result is a constant: its result on a dict holding just the
    known values. The engine asks this once per distinct combination of known values
    (event type, flags such as ``success``) and then checks only the entries left.
    """

    def specialize(known: Mapping[str, Any]) -> Residual:
        probe = {k: v for k, v in known.items() if v is not MISSING}
        rest: list[Predicate] = []
        for field, pred in entries:
            if field in known:
                if not pred(probe):
                    return False
            else:
                rest.append(pred)
        return all_of(rest) if rest else True

    return specialize


def or_specializer(parts: list[Specializer]) -> Specializer:
    """Partial evaluation of an OR of mappings (a list selection)."""

    def specialize(known: Mapping[str, Any]) -> Residual:
        left: list[Predicate] = []
        for part in parts:
            residual = part(known)
            if residual is True:
                return True
            if residual is not False:
                left.append(residual)
        return any_of(left) if left else False

    return specialize


def all_of(preds: list[Predicate]) -> Predicate:
    """One predicate true when every one of ``preds`` is (straight-line for 1-3)."""
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds

        def and2(raw: dict[str, Any]) -> bool:
            return a(raw) and b(raw)

        return and2
    if len(preds) == 3:
        a, b, c = preds

        def and3(raw: dict[str, Any]) -> bool:
            return a(raw) and b(raw) and c(raw)

        return and3
    preds_t = tuple(preds)

    def and_n(raw: dict[str, Any]) -> bool:
        for p in preds_t:  # noqa: SIM110 - hot path: no generator per event
            if not p(raw):
                return False
        return True

    return and_n


def any_of(preds: list[Predicate]) -> Predicate:
    """One predicate true when any of ``preds`` is; metarules' correlations use it too."""
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds

        def or2(raw: dict[str, Any]) -> bool:
            return a(raw) or b(raw)

        return or2
    preds_t = tuple(preds)

    def or_n(raw: dict[str, Any]) -> bool:
        for p in preds_t:  # noqa: SIM110 - hot path: no generator per event
            if p(raw):
                return True
        return False

    return or_n


def _constant_specializer(pred: Predicate) -> Specializer:
    """Known top-level fields decide nothing here (keywords read every value)."""

    def specialize(known: Mapping[str, Any]) -> Residual:
        return pred

    return specialize


def compile_selection(
    name: str, body: Any, ctx: SelectionContext = NO_CONTEXT
) -> CompiledSelection:
    """Compile a named selection; raises ``SelectionError`` with a path inside it."""
    if isinstance(body, dict):
        pred, types, map_fields, specialize = _compile_map(body, (), ctx)
        return CompiledSelection(name, pred, types, tuple(map_fields), specialize)
    if isinstance(body, list):
        if not body:
            raise SelectionError("an empty selection matches nothing: add field: value entries")
        preds: list[Predicate] = []
        parts: list[Specializer] = []
        all_types: set[str] = set()
        constrained = True
        fields: list[str] = []
        errors: list[SelectionError] = []
        keywords = [i for i, item in enumerate(body) if not isinstance(item, dict)]
        if keywords:
            try:
                words = compile_keywords("", [body[i] for i in keywords], ctx)
            except SelectionError as exc:
                path = exc.path
                if path and isinstance(path[0], int):
                    path = (keywords[path[0]], *path[1:])
                errors.append(SelectionError(exc.message, path, key=exc.key))
            else:
                preds.append(words)
                parts.append(_constant_specializer(words))
                constrained = False
        for i, item in enumerate(body):
            if not isinstance(item, dict):
                continue
            try:
                pred, types, item_fields, part = _compile_map(item, (i,), ctx)
            except SelectionError as exc:
                errors.extend(exc.all())
                continue
            preds.append(pred)
            parts.append(part)
            fields.extend(item_fields)
            if types is None:
                constrained = False
            else:
                all_types |= types
        if errors:
            first = errors[0]
            raise SelectionError(first.message, first.path, key=first.key, others=errors[1:])
        return CompiledSelection(
            name,
            any_of(preds),
            frozenset(all_types) if constrained else None,
            tuple(fields),
            or_specializer(parts),
        )
    if isinstance(body, str | int | float) and not isinstance(body, bool):
        words = compile_keywords("", [body], ctx)
        return CompiledSelection(name, words, None, (), None)
    raise SelectionError(
        f"selection {name!r} must be a mapping (field: value), a list of mappings or a "
        f"list of keywords, got {body!r}"
    )

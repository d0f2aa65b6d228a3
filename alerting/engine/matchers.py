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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from alerting.engine.elements import element_predicate
from alerting.engine.fields import MISSING, FieldPathError, compile_path
from alerting.yamlfile import PathKey, suggest

Predicate = Callable[[dict[str, Any]], bool]
ValueTest = Callable[[Any], bool]
Residual = Predicate | bool
"""A predicate partly evaluated: ``True``/``False`` when decided, else what remains."""
Specializer = Callable[[Mapping[str, Any]], Residual]
"""A condition partly evaluated for known values of some top-level fields (``known``:
field -> value, ``MISSING`` for a field the event lacks); see ``_map_specializer``."""

STRING_MODIFIERS = ("contains", "startswith", "endswith")
TYPE_MODIFIERS = ("re", "cidr", "gt", "gte", "lt", "lte", "exists")
MODIFIERS = (*STRING_MODIFIERS, *TYPE_MODIFIERS, "all", "cased", "element")


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

_STAR = object()
_QMARK = object()


def _tokens(pattern: str) -> list[Any]:
    """Split a Sigma string into literal characters and ``*``/``?`` wildcards.

    A backslash escapes ``*``, ``?`` and ``\\``; before any other character it is kept
    literally (Sigma's rule, so Windows paths need no doubling).
    """
    out: list[Any] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n and pattern[i + 1] in "*?\\":
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch == "*":
            if not out or out[-1] is not _STAR:
                out.append(_STAR)
        elif ch == "?":
            out.append(_QMARK)
        else:
            out.append(ch)
        i += 1
    return out


def _string_test(tokens: list[Any], cased: bool) -> Callable[[str], bool]:
    """A test on a string for a token list, using str methods when no regex is needed."""
    lead = bool(tokens) and tokens[0] is _STAR
    rest = tokens[1:] if lead else tokens
    trail = bool(rest) and rest[-1] is _STAR
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
        if t is _STAR:
            parts.append(".*")
        elif t is _QMARK:
            parts.append(".")
        else:
            parts.append(re.escape(t))
    rx = re.compile("".join(parts), re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    fullmatch = rx.fullmatch
    return lambda s: fullmatch(s) is not None


def _has_wildcard(tokens: list[Any]) -> bool:
    return any(t is _STAR or t is _QMARK for t in tokens)


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
    tokens = _tokens(pattern)
    if "contains" in mods:
        tokens = [_STAR, *tokens, _STAR]
    elif "startswith" in mods:
        tokens = [*tokens, _STAR]
    elif "endswith" in mods:
        tokens = [_STAR, *tokens]
    if len(tokens) > 1 and tokens[0] is _STAR and tokens[1] is _STAR:
        tokens = tokens[1:]
    if len(tokens) > 1 and tokens[-1] is _STAR and tokens[-2] is _STAR:
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


def _regex_test(pattern: str) -> ValueTest:
    try:
        rx = re.compile(pattern)
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
    if typed:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SelectionError(f"|{next(iter(typed))} needs a number, got {value!r}")
        return _compare_test(next(iter(typed)), float(value))
    if "re" in mods:
        if not isinstance(value, str):
            raise SelectionError(f"|re needs a regular expression string, got {value!r}")
        return _regex_test(value)
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


# --------------------------------------------------------------------------- fields


def _parse_key(key: str) -> tuple[str, list[str]]:
    field, *mods = key.split("|")
    field = field.strip()
    mods = [m.strip() for m in mods]
    if not field:
        raise SelectionError(
            f"{key!r} has no field name: write field|modifier, e.g. client_ip|cidr", key=True
        )
    for mod in mods:
        if mod not in MODIFIERS:
            hint = suggest(mod, MODIFIERS) or f" (known: {', '.join(MODIFIERS)})"
            raise SelectionError(f"unknown modifier {mod!r} in {key!r}{hint}", key=True)
    if len(set(mods)) != len(mods):
        raise SelectionError(f"a modifier is repeated in {key!r}", key=True)
    kinds = [m for m in mods if m in STRING_MODIFIERS or m in TYPE_MODIFIERS]
    if len(kinds) > 1:
        raise SelectionError(
            f"modifiers {' and '.join(repr(k) for k in kinds)} cannot be combined in {key!r}: "
            "use one per key (split into two selections)",
            key=True,
        )
    if "exists" in mods and len(mods) > 1:
        raise SelectionError(f"|exists takes no other modifier in {key!r}", key=True)
    if "cased" in mods and set(kinds) & {"re", "cidr", "gt", "gte", "lt", "lte"}:
        raise SelectionError(f"|cased applies to text matching only, not in {key!r}", key=True)
    return field, mods


def compile_field(key: str, value: Any) -> tuple[str, Predicate, frozenset[str] | None]:
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
        match, _types, _fields, _spec = _compile_map(value, ())
        return field, element_predicate(getter, match), None

    if "exists" in mods:
        if not isinstance(value, bool):
            raise SelectionError(f"|exists needs true or false, got {value!r}")
        want = value

        def exists(raw: dict[str, Any]) -> bool:
            return (getter(raw) is not MISSING) is want

        return field, exists, None

    values = value if isinstance(value, list) else [value]
    if not values:
        raise SelectionError("an empty list matches nothing: give at least one value")
    if "all" in mods and not isinstance(value, list):
        raise SelectionError("|all needs a list of values (it requires every one to match)")

    tests: list[ValueTest] = []
    if "cidr" in mods:
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise SelectionError(
                    f"|cidr needs a network such as 10.0.0.0/8, got {v!r}",
                    (i,) if isinstance(value, list) else (),
                )
        if "all" in mods:
            tests = [_cidr_test([v]) for v in values]
        else:
            try:
                tests = [_cidr_test(values)]
            except SelectionError:
                for i, v in enumerate(values):
                    try:
                        _cidr_test([v])
                    except SelectionError as exc:
                        raise SelectionError(
                            exc.message, (i,) if isinstance(value, list) else ()
                        ) from None
                raise
    else:
        for i, v in enumerate(values):
            try:
                tests.append(_scalar_test(v, mods))
            except SelectionError as exc:
                raise SelectionError(exc.message, (i,) if isinstance(value, list) else ()) from None

    event_types: frozenset[str] | None = None
    if (
        field == "event_type"
        and not (mods - {"cased"})
        and all(
            isinstance(v, str) and not _has_wildcard(_tokens(v)) and "\\" not in v for v in values
        )
    ):
        event_types = frozenset(v.lower() for v in values)

    match_null = any(t is _null_test for t in tests)
    if "all" in mods:
        return field, _all_of(getter, tests), event_types
    if len(tests) == 1:
        general = _one(getter, tests[0], match_null)
    else:
        general = _any_of(getter, tests, match_null)
    fast = None if mods else _fast_field(field, values, general)
    return field, fast or general, event_types


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
        isinstance(v, str) and "\\" not in v and not _has_wildcard(_tokens(v)) for v in values
    )
    if "." in field:
        # a nested field (geoip.country_code: [deny-list]): the same set lookup, read by path
        return _fast_nested(compile_path(field), values, general) if plain else None
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


def _fast_nested(
    getter: Callable[[dict[str, Any]], Any], values: list[Any], general: Predicate
) -> Predicate:
    """``_fast_field``'s set lookup for plain text values of a dotted path."""
    lits = frozenset(v.lower() for v in values)

    def nested(raw: dict[str, Any]) -> bool:
        v = getter(raw)
        if type(v) is str:
            return v in lits or v.lower() in lits
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
    body: dict[Any, Any], base: PathKey
) -> tuple[Predicate, frozenset[str] | None, list[str], Specializer]:
    if not body:
        raise SelectionError("an empty selection matches nothing: add field: value entries", base)
    preds: list[Predicate] = []
    types: frozenset[str] | None = None
    fields: list[str] = []
    errors: list[SelectionError] = []
    for key, value in body.items():
        if not isinstance(key, str):
            errors.append(
                SelectionError(f"a field name must be text, got {key!r}", (*base, key), key=True)
            )
            continue
        try:
            field, pred, ets = compile_field(key, value)
        except SelectionError as exc:
            errors.append(SelectionError(exc.message, (*base, key, *exc.path), key=exc.key))
            continue
        preds.append(pred)
        fields.append(field)
        if ets is not None:
            types = ets if types is None else types & ets
    if errors:
        first = errors[0]
        raise SelectionError(first.message, first.path, key=first.key, others=errors[1:])
    return _and(preds), types, fields, _map_specializer(list(zip(fields, preds, strict=True)))


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
        return _and(rest) if rest else True

    return specialize


def _or_specializer(parts: list[Specializer]) -> Specializer:
    """Partial evaluation of an OR of mappings (a list selection)."""

    def specialize(known: Mapping[str, Any]) -> Residual:
        left: list[Predicate] = []
        for part in parts:
            residual = part(known)
            if residual is True:
                return True
            if residual is not False:
                left.append(residual)
        return _or(left) if left else False

    return specialize


def _and(preds: list[Predicate]) -> Predicate:
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


def _or(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    preds_t = tuple(preds)

    def or_n(raw: dict[str, Any]) -> bool:
        for p in preds_t:  # noqa: SIM110 - hot path: no generator per event
            if p(raw):
                return True
        return False

    return or_n


def compile_selection(name: str, body: Any) -> CompiledSelection:
    """Compile a named selection; raises ``SelectionError`` with a path inside it."""
    if isinstance(body, dict):
        pred, types, map_fields, specialize = _compile_map(body, ())
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
        for i, item in enumerate(body):
            if not isinstance(item, dict):
                errors.append(
                    SelectionError(
                        "a selection list must hold mappings (field: value); keyword search "
                        f"over the whole event is not supported, got {item!r}",
                        (i,),
                    )
                )
                continue
            try:
                pred, types, item_fields, part = _compile_map(item, (i,))
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
            _or(preds),
            frozenset(all_types) if constrained else None,
            tuple(fields),
            _or_specializer(parts),
        )
    raise SelectionError(
        f"selection {name!r} must be a mapping (field: value) or a list of mappings, got {body!r}"
    )

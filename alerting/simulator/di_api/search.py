"""Field access on raw events: ``search_term`` predicates, distinct values, projection.

The API matches the lower-cased keywords its index stores and fans out over lists
(``changes.field``); doing all path walking here keeps ``search_term``, ``distinct``
and ``fields`` consistent with each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from alerting.simulator.di_api.constants import NOT_SEARCHABLE
from alerting.simulator.di_api.query import BadRequest
from alerting.yamlfile import suggest


def values_at(obj: Any, parts: Sequence[str]) -> list[Any]:
    """All leaf values at a dotted path; lists along the way fan out (``changes.field``)."""
    nodes = [obj]
    for part in parts:
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and part in node:
                value = node[part]
                if isinstance(value, list):
                    nxt.extend(value)
                else:
                    nxt.append(value)
            elif isinstance(node, list):
                nxt.extend(v[part] for v in node if isinstance(v, dict) and part in v)
        nodes = nxt
        if not nodes:
            break
    return [v for node in nodes for v in (node if isinstance(node, list) else [node])]


def term_text(value: Any) -> str | None:
    """A value as the lower-cased keyword the index stores; None for null/objects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def project(raw: dict[str, Any], paths: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """Keep only the requested (dotted) fields, nested as in the event."""
    out: dict[str, Any] = {}
    for parts in paths:
        node: Any = raw
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            target = out
            for part in parts[:-1]:
                nested = target.get(part)
                if not isinstance(nested, dict):
                    nested = target[part] = {}
                target = nested
            target[parts[-1]] = node
    return out


Predicate = Callable[[dict[str, Any]], bool]
_CONJUNCTIONS = ("and", "or", "not")


def compile_search_term(term: Any) -> Predicate:
    """Compile a ``search_term`` into a predicate; raises ``BadRequest`` when invalid."""
    if not isinstance(term, dict) or not term:
        raise BadRequest("search_term must be an object with an 'and', 'or' or 'not' key")
    preds = [_compile_conjunction(op, value) for op, value in term.items()]
    return lambda raw: all(p(raw) for p in preds)


def _compile_conjunction(op: str, value: Any) -> Predicate:
    if op not in _CONJUNCTIONS:
        raise BadRequest(
            f"search_term: unknown operator {op!r}; use one of 'and', 'or', 'not'"
            + suggest(op, _CONJUNCTIONS)
        )
    items = value if isinstance(value, list) else [value]
    criteria: list[Predicate] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(f"search_term.{op}: expected a map or a list of maps")
        for key, expected in item.items():
            if key in _CONJUNCTIONS:
                criteria.append(_compile_conjunction(key, expected))
            else:
                criteria.append(_compile_field(key, expected))
    if op == "and":
        return lambda raw: all(c(raw) for c in criteria)
    if op == "or":
        return lambda raw: any(c(raw) for c in criteria)
    return lambda raw: not any(c(raw) for c in criteria)


def _compile_field(path: str, expected: Any) -> Predicate:
    parts = tuple(path.split("."))
    if not path or "" in parts:
        raise BadRequest(f"search_term: invalid field name {path!r}")
    if parts[0] in NOT_SEARCHABLE:
        raise BadRequest(f"search_term: field {parts[0]!r} is not searchable")
    wanted_raw = expected if isinstance(expected, list) else [expected]
    wanted = {t for t in (term_text(v) for v in wanted_raw) if t is not None}
    if not wanted:
        raise BadRequest(f"search_term: field {path!r} needs a string, number or boolean value")

    def match(raw: dict[str, Any]) -> bool:
        return any(term_text(v) in wanted for v in values_at(raw, parts))

    return match

"""Field access compiled once at rule load, never parsed per event.

``initiated_by.username`` becomes nested dict lookups; a path starting with ``$`` is
JSONPath (jsonpath-ng) for lists, e.g. ``$.changes[*].field``, and yields every match.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

MISSING: Any = type(
    "Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False}
)()
"""Returned by a getter when the field is absent (distinct from a JSON null)."""

Getter = Callable[[dict[str, Any]], Any]

_SHORT_PATHS: weakref.WeakKeyDictionary[Getter, tuple[str, ...]] = weakref.WeakKeyDictionary()
"""The keys of each live one- or two-part getter of ``compile_path`` (``compile_getters``)."""


class FieldPathError(ValueError):
    """A field path that cannot be compiled."""


def compile_path(path: str) -> Getter:
    """Compile a field path into a getter returning the value or ``MISSING``.

    JSONPath getters return a list of all matches (``MISSING`` when there are none),
    so a selection can match any element.
    """
    if not isinstance(path, str) or not path.strip():
        raise FieldPathError("a field path must be a non-empty string")
    if path.startswith("$"):
        return _compile_jsonpath(path)
    parts = path.split(".")
    if any(not p for p in parts):
        raise FieldPathError(f"invalid field path {path!r}: empty part between dots")
    if len(parts) == 1:
        key = parts[0]

        def get1(event: dict[str, Any]) -> Any:
            return event.get(key, MISSING)

        _SHORT_PATHS[get1] = (key,)
        return get1
    if len(parts) == 2:
        k1, k2 = parts

        def get2(event: dict[str, Any]) -> Any:
            inner = event.get(k1)
            if type(inner) is dict:
                return inner.get(k2, MISSING)
            return MISSING

        _SHORT_PATHS[get2] = (k1, k2)
        return get2

    def get_n(event: dict[str, Any]) -> Any:
        node: Any = event
        for part in parts:
            if type(node) is not dict:
                return MISSING
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        return node

    return get_n


def compile_values(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``raw -> (raw.get(key) for each key)`` as one straight-line function: twice as
    fast as ``tuple(map(raw.get, keys))``, for a lookup made on every event. The keys
    (rule text) are bound as constants in its namespace, never spliced into its source.
    """
    namespace: dict[str, Any] = {f"k{i}": key for i, key in enumerate(keys)}
    items = "".join(f"g(k{i}), " for i in range(len(keys)))
    source = f"def values(raw):\n    g = raw.get\n    return ({items})\n"
    exec(source, namespace)  # noqa: S102 - generated from names only (see above)
    values: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["values"]
    return values


def short_path(getter: Getter) -> tuple[str, ...] | None:
    """The keys a one- or two-part getter of ``compile_path`` reads, else None."""
    return _SHORT_PATHS.get(getter)


def compile_getters(getters: tuple[Getter, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """``raw -> tuple(getter(raw) for getter in getters)`` as one straight-line function
    that reads each parent object once: a multi-field group (``initiated_by.username``,
    ``initiated_by.email``, ``username``, ...) is read on every event a rule meets. The
    one- and two-part paths of ``compile_path`` are inlined as their getters read them;
    other getters are called. Names and getters are bound as constants in its namespace,
    never spliced into its source."""
    namespace: dict[str, Any] = {"M": MISSING, "E": {}}  # E: read-only stand-in parent
    parents: dict[str, str] = {}
    lines = ["def values(raw):", "    g = raw.get"]
    items: list[str] = []
    for i, getter in enumerate(getters):
        parts = _SHORT_PATHS.get(getter)
        if parts is None:
            namespace[f"f{i}"] = getter
            items.append(f"f{i}(raw)")
            continue
        namespace[f"k{i}"] = parts[-1]
        if len(parts) == 1:
            items.append(f"g(k{i}, M)")
            continue
        parent = parents.get(parts[0])
        if parent is None:
            parent = parents[parts[0]] = f"p{len(parents)}"
            namespace[f"{parent}k"] = parts[0]
            lines.append(f"    {parent} = g({parent}k)")
            lines.append(f"    if type({parent}) is not dict:")
            lines.append(f"        {parent} = E")
        items.append(f"{parent}.get(k{i}, M)")
    lines.append(f"    return ({''.join(item + ', ' for item in items)})")
    exec("\n".join(lines) + "\n", namespace)  # noqa: S102 - generated from indexes only
    values: Callable[[dict[str, Any]], tuple[Any, ...]] = namespace["values"]
    return values


def _compile_jsonpath(path: str) -> Getter:
    try:
        from jsonpath_ng.ext import parse
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise FieldPathError(f"JSONPath support is unavailable: {exc}") from None
    try:
        expr = parse(path)
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises many types
        raise FieldPathError(f"invalid JSONPath {path!r}: {exc}") from None

    def get_jsonpath(event: dict[str, Any]) -> Any:
        found = [m.value for m in expr.find(event)]
        return found if found else MISSING

    return get_jsonpath


_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_SIMPLE_JSONPATH = re.compile(rf"\$((?:(?:\.\.|\.){_NAME}|\[\*\])+)")
_SEGMENT = re.compile(rf"(?:\.\.|\.)({_NAME})")


def jsonpath_parts(path: str) -> list[str] | None:
    """The names of a simple JSONPath (``.``, ``..`` and ``[*]`` steps only):
    ``$.changes..field`` -> ``["changes", "field"]``; None for anything else (filters,
    indexes). DI's arrays hold flat objects, so ``..`` reads as one step down; what other
    tools call the field (``changes{}.field``, ``changes.field``) is built from these."""
    match = _SIMPLE_JSONPATH.fullmatch(path)
    if match is None:
        return None
    return _SEGMENT.findall(match.group(1))

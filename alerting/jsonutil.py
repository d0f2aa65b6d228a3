"""JSON with orjson when it is installed, the standard library otherwise.

One place decides, so the hot path (replay, API pages) gets the fast parser and every
caller gets the same behaviour: ``loads`` accepts str or bytes; ``dumps`` returns str.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson does not install
    orjson = None  # type: ignore[assignment]

JSONDecodeError: type[ValueError]


def _stdlib_dumps(obj: Any, *, indent: bool, sort_keys: bool) -> str:
    """The standard library's output in orjson's shape: compact, UTF-8, str fallback."""
    return json.dumps(
        obj,
        indent=2 if indent else None,
        sort_keys=sort_keys,
        separators=None if indent else (",", ":"),
        ensure_ascii=False,
        default=str,
    )


if orjson is not None:
    JSONDecodeError = orjson.JSONDecodeError

    def loads(data: str | bytes) -> Any:
        return orjson.loads(data)

    def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> str:
        option = 0
        if indent:
            option |= orjson.OPT_INDENT_2
        if sort_keys:
            option |= orjson.OPT_SORT_KEYS
        try:
            return orjson.dumps(obj, option=option, default=str).decode()
        except TypeError:  # e.g. integers beyond 64 bits; the stdlib copes
            return _stdlib_dumps(obj, indent=indent, sort_keys=sort_keys)

else:  # pragma: no cover
    JSONDecodeError = json.JSONDecodeError

    def loads(data: str | bytes) -> Any:
        return json.loads(data)

    def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> str:
        return _stdlib_dumps(obj, indent=indent, sort_keys=sort_keys)

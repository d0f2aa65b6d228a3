"""JSON with orjson when it is installed, the standard library otherwise.

One place decides, so the hot path (replay, API pages) gets the fast parser and every
caller gets the same behaviour: ``loads`` accepts str or bytes; ``dumps`` returns str,
``dumpb`` the same text as UTF-8 bytes.
``projection_decoder`` builds only some fields of a JSON object (msgspec skips the rest
without building it: a fraction of a full parse); where msgspec does not install there is
none, and callers parse in full.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypedDict

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson does not install
    orjson = None  # type: ignore[assignment]

try:
    import msgspec
except ImportError:  # pragma: no cover - exercised where msgspec does not install
    msgspec = None  # type: ignore[assignment]

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

    loads: Callable[[str | bytes], Any] = orjson.loads  # no wrapper: once per event

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

    def dumpb(obj: Any) -> bytes:
        """``dumps(obj).encode()``, without the round trip through ``str``."""
        try:
            return orjson.dumps(obj, default=str)
        except TypeError:
            return _stdlib_dumps(obj, indent=False, sort_keys=False).encode()

else:  # pragma: no cover
    JSONDecodeError = json.JSONDecodeError

    def loads(data: str | bytes) -> Any:
        return json.loads(data)

    def dumps(obj: Any, *, indent: bool = False, sort_keys: bool = False) -> str:
        return _stdlib_dumps(obj, indent=indent, sort_keys=sort_keys)

    def dumpb(obj: Any) -> bytes:
        return _stdlib_dumps(obj, indent=False, sort_keys=False).encode()


def loads_whole(data: bytes) -> dict[str, Any] | None:
    """A held event's whole JSON object, for a line orjson refused: a number JSON allows
    beyond float range (``1e999``; the projection decoder skips it unread, so such an
    event is let in) is the standard library's ``inf``. None where that fails too."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@functools.lru_cache(maxsize=16)
def projection_decoder(keys: frozenset[str]) -> Callable[[bytes], dict[str, Any]] | None:
    """A decoder that builds only ``keys`` of a JSON object, as the dict a full parse would
    give restricted to those keys (absent keys stay absent; the rest is skipped unbuilt).

    Raises ``ValueError`` on malformed JSON or a value that is not an object. It does not
    check text it skips (e.g. UTF-8 inside an unread field): callers that must reject such
    a line check it themselves. None where msgspec does not install, and for a key that
    is not ASCII (msgspec 0.23 never matches one: the field would silently go missing).
    """
    if msgspec is None or not all(key.isascii() for key in keys):
        return None
    # A TypedDict with every field optional: msgspec builds exactly the keys present.
    shape: Any = TypedDict("Projection", dict.fromkeys(sorted(keys), Any), total=False)  # type: ignore[misc]
    decoder: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(shape)
    return decoder.decode

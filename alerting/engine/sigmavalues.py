"""Sigma string values: wildcards and escapes, and the modifiers that rewrite a value.

A Sigma string holds ``*`` (any run) and ``?`` (one character) wildcards; a backslash
escapes ``*``, ``?`` and ``\\`` and is kept literally before anything else (so Windows
paths need no doubling). The value-changing modifiers (``expand``, ``windash``, the
UTF-16 encodings, ``base64``, ``base64offset``) run once at load, left to right, and
turn one rule value into the Sigma strings it stands for; encoded text is literal, so
its ``*`` and ``?`` come out escaped.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

from alerting.yamlfile import suggest

STAR: Any = object()
QMARK: Any = object()

VALUE_TRANSFORMS = (
    "windash",
    "expand",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
)
MAX_EXPANSION = 4096

_WINDASH_CHARS = "-/\u2013\u2014\u2015"
_WINDASH = re.compile(r"(?<!\w)[-/\u2013\u2014\u2015](?=\w)")
_PLACEHOLDER = re.compile(r"(?<!\\)%([A-Za-z0-9_.-]+)%")


class TransformError(ValueError):
    """A value a modifier cannot rewrite; the message says why and how to fix it."""


def tokens(pattern: str) -> list[Any]:
    """Split a Sigma string into literal characters and ``STAR``/``QMARK`` wildcards."""
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
            if not out or out[-1] is not STAR:
                out.append(STAR)
        elif ch == "?":
            out.append(QMARK)
        else:
            out.append(ch)
        i += 1
    return out


def has_wildcard(parts: list[Any]) -> bool:
    return any(t is STAR or t is QMARK for t in parts)


def escape(text: str) -> str:
    """Literal text as a Sigma string (its ``*``, ``?`` and ``\\`` escaped)."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _literal(value: str | bytes, mod: str) -> str:
    """A value about to be encoded, as the literal text it stands for."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    parts = tokens(value)
    if has_wildcard(parts):
        raise TransformError(
            f"|{mod} of {value!r}: wildcards cannot be encoded; escape them as \\* or drop them"
        )
    return "".join(parts)


def _sigma(value: str | bytes) -> str:
    """A value as a Sigma string: encoded bytes are literal text, one code point a byte."""
    return escape(value.decode("latin-1")) if isinstance(value, bytes) else value


def windash(value: str) -> list[str]:
    """Every spelling of a Windows flag: each dash/slash starting a word as - / en, em dash
    and horizontal bar (Sigma's windash; at most MAX_EXPANSION variants)."""
    spots = [m.start() for m in _WINDASH.finditer(value)]
    if len(_WINDASH_CHARS) ** len(spots) > MAX_EXPANSION:
        raise TransformError(
            f"|windash on {value!r} makes over {MAX_EXPANSION} variants: split the value"
        )
    out = [value]
    for spot in spots:
        out = [v[:spot] + ch + v[spot + 1 :] for v in out for ch in _WINDASH_CHARS]
    return out


def expand(value: str, placeholders: Mapping[str, Sequence[str]]) -> list[str]:
    """``%name%`` replaced by each value of the placeholder (``\\%`` is a plain ``%``)."""
    names = _PLACEHOLDER.findall(value)
    out = [value]
    for name in dict.fromkeys(names):
        if name not in placeholders:
            known = sorted(placeholders)
            hint = suggest(name, known) or (
                f" (defined: {', '.join(known)})" if known else " (none are defined)"
            )
            raise TransformError(
                f"unknown placeholder %{name}%{hint}: define it under placeholders: in the "
                "config or in a placeholders document in the rules directory"
            )
        out = [v.replace(f"%{name}%", str(p)) for v in out for p in placeholders[name]]
        if len(out) > MAX_EXPANSION:
            raise TransformError(f"|expand of {value!r} makes over {MAX_EXPANSION} values")
    return [v.replace("\\%", "%") for v in out]


def _utf16(text: str, mod: str) -> bytes:
    if mod in ("utf16le", "wide"):
        return text.encode("utf-16-le")
    if mod == "utf16be":
        return text.encode("utf-16-be")
    return b"\xff\xfe" + text.encode("utf-16-le")  # utf16: a BOM, then little-endian


def base64offset(raw: bytes) -> list[bytes]:
    """The three base64 spellings of ``raw`` inside a longer encoded text (Sigma)."""
    starts = (0, 2, 3)
    ends = (None, -3, -2)
    return [
        base64.b64encode(i * b" " + raw)[starts[i] : ends[(len(raw) + i) % 3]] for i in range(3)
    ]


def transform(
    value: str, mods: Sequence[str], placeholders: Mapping[str, Sequence[str]]
) -> list[str]:
    """One rule value through the value-changing modifiers in ``mods``, left to right:
    the Sigma strings it stands for (windash and expand make several)."""
    values: list[str | bytes] = [value]  # str: a Sigma string; bytes: encoded, literal
    for mod in mods:
        if mod == "expand":
            values = [e for v in values for e in expand(_sigma(v), placeholders)]
        elif mod == "windash":
            values = [w for v in values for w in windash(_sigma(v))]
        elif mod in ("utf16le", "utf16be", "utf16", "wide"):
            values = [_utf16(_literal(v, mod), mod) for v in values]
        elif mod == "base64":
            values = [base64.b64encode(_raw(v, mod)) for v in values]
        elif mod == "base64offset":
            values = [b for v in values for b in base64offset(_raw(v, mod))]
    return [_sigma(v) for v in values]


def _raw(value: str | bytes, mod: str) -> bytes:
    return value if isinstance(value, bytes) else _literal(value, mod).encode("utf-8")

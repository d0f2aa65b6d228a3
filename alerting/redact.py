"""Which values are secrets, found by one walk, masked from one minimum length.

Config error messages and log records mask the same values: every ``SecretStr`` in a
validated model, and every string written directly under a secret key in raw YAML data
(before validation, when error messages are built). Values shorter than
``MIN_SECRET_LENGTH`` are never masked: they would blank out ordinary words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

SECRET_KEYS = ("api_key", "bearer_token", "password", "token", "webhook_url", "secret")
"""Keys whose value is a secret; each also accepts ``<key>_file`` (a mounted secret)."""

MIN_SECRET_LENGTH = 4
MASK = "***"


def secret_values(value: Any) -> set[str]:
    """Every secret in ``value``: a pydantic model, or raw mappings and lists from YAML."""
    found: set[str] = set()

    def walk(item: Any, key: Any) -> None:
        if isinstance(item, SecretStr):
            found.add(item.get_secret_value())
        elif isinstance(item, str):
            if key in SECRET_KEYS:
                found.add(item)
        elif isinstance(item, BaseModel):
            for name in type(item).model_fields:
                walk(getattr(item, name, None), name)
        elif isinstance(item, Mapping):
            for k, v in item.items():
                walk(v, k)
        elif isinstance(item, list | tuple):
            for v in item:
                walk(v, None)

    walk(value, None)
    return found


def maskable(secrets: Iterable[str]) -> list[str]:
    """The values worth masking, longest first (so a secret's prefix never masks first)."""
    return sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def mask(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` (already ``maskable``) replaced by ``MASK``."""
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text

"""``field|element: {key: value, ...}``: one element of a list must match a whole mapping.

DI's ``changes`` is a list of ``{field, from, to}`` entries. ``$.changes..field: X`` and
``$.changes..to: false`` each match *some* entry, not necessarily the same one, so "MFA
set to false" also matched an update that turned MFA on and some other setting off.
``changes|element: {field: X, to: false}`` requires both in one entry. DI sometimes sends
``changes`` as a single object; that counts as a one-element list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


def element_predicate(getter: Callable[[dict[str, Any]], Any], match: Predicate) -> Predicate:
    """True when the field is a list with a mapping element ``match`` accepts (or is one)."""

    def element(raw: dict[str, Any]) -> bool:
        value = getter(raw)
        if type(value) is dict:
            return match(value)
        if type(value) is list:
            return any(type(item) is dict and match(item) for item in value)
        return False

    return element

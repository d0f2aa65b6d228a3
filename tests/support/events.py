"""Event builders shared by the hot-path tests: raw DI-shaped events at a time offset,
their JSON bytes, a ``JsonEvent`` decoded from them and a field projector."""

from __future__ import annotations

import json
from typing import Any

from alerting import jsonutil
from alerting.events import JsonEvent, format_timestamp, parse_timestamp

T0 = parse_timestamp("2026-03-02T00:00:00Z")
S = 1_000_000_000


def blob_of(raw: Any) -> bytes:
    return json.dumps(raw, ensure_ascii=False).encode("utf-8")


def json_event(raw: dict[str, Any]) -> JsonEvent:
    blob = blob_of(raw)
    return JsonEvent.from_json(jsonutil.loads(blob), blob)


def projector(*fields: str) -> Any:
    decode = jsonutil.projection_decoder(frozenset({"timestamp", "id", "event_type", *fields}))
    assert decode is not None  # msgspec is installed here
    return decode


def raw_at(seconds: float, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "timestamp": format_timestamp(T0 + int(seconds * S)), **fields}

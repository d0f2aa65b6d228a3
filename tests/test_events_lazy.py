"""Lazy and partly decoded events (the replay hot path) give back the whole event, and
reject what a fully decoded event rejects.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting import jsonutil
from alerting.errors import EventError
from alerting.events import (
    Event,
    JsonEvent,
    LazyEvent,
    format_timestamp,
    parse_timestamp,
)
from alerting.source.files import read_events
from tests.support.events import T0, S, blob_of, json_event, projector

NESTED = {
    "id": "evt-ü-1",
    "timestamp": "2026-03-02T10:00:01.123456789Z",
    "event_type": "user_login_attempt",
    "initiated_by": {"username": "zoë.o'brien", "groups": ["ops", {"名前": ["日本語", "🙂"]}]},
    "geoip": {"latitude": 39.0392, "longitude": -77.5, "country_code": None},
    "success": False,
    "attempts": 3,
    "note": 'line\nbreak\ttab "quoted" \\ back \u2028 sep',
    "empty": {},
    "list": [],
}


def lazy_event(raw: dict[str, Any], tmp_path: Any) -> LazyEvent:
    path = tmp_path / "one.jsonl"
    path.write_bytes(blob_of(raw))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    assert type(event) is LazyEvent
    return event


def test_a_lazy_event_decodes_to_an_equal_raw_dict(tmp_path):
    event = lazy_event(NESTED, tmp_path)
    assert event.time_ns == parse_timestamp(NESTED["timestamp"])
    assert event.id == "evt-ü-1"
    whole = event.parsed()
    assert type(whole) is JsonEvent
    assert not whole.partial
    assert whole.raw == NESTED
    assert whole.raw["initiated_by"]["groups"][1]["名前"] == ["日本語", "🙂"]
    part = event.parsed(projector("initiated_by", "note"))
    assert type(part) is JsonEvent
    assert part.partial
    assert part.raw == {
        k: NESTED[k] for k in ("id", "timestamp", "event_type", "initiated_by", "note")
    }
    assert (part.time_ns, part.id) == (whole.time_ns, whole.id)
    assert part.complete().raw == NESTED


def test_a_partial_event_completes_from_its_line_not_from_a_mutated_raw(tmp_path):
    part = lazy_event(NESTED, tmp_path).parsed(projector("initiated_by"))
    assert part is not None
    part.raw["initiated_by"]["username"] = "mallory"
    part.raw["success"] = True
    assert part.complete().raw == NESTED


def test_an_event_without_id_gets_the_same_content_id_either_way():
    raw = {k: v for k, v in NESTED.items() if k != "id"}
    event = json_event(raw)
    assert event.id == Event.from_raw(raw).id
    assert event.id.startswith("sha1:")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ({"id": "x"}, "no 'timestamp'"),
        ({"id": "x", "timestamp": "yesterday"}, "invalid timestamp"),
    ],
)
def test_from_json_rejects_what_from_raw_rejects(raw, reason):
    with pytest.raises(EventError, match=reason):
        json_event(raw)  # type: ignore[arg-type]
    with pytest.raises(EventError, match=reason):
        Event.from_raw(raw)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(_TEXT, _JSON, max_size=6), seconds=st.integers(0, 10**6))
def test_any_json_object_survives_projection_and_completion(fields, seconds):
    raw = {**fields, "id": "e1", "timestamp": format_timestamp(T0 + seconds * S)}
    blob = blob_of(raw)
    some = sorted(k for k in fields if k.isascii())[:2]  # others: see the next test
    part = JsonEvent(projector(*some)(blob), T0 + seconds * S, "e1", blob, partial=True)
    assert part.raw == {k: v for k, v in raw.items() if k in {"id", "timestamp", *some}}
    assert part.complete().raw == raw


def test_a_field_name_beyond_ascii_is_decoded_whole():
    """msgspec never matches a non-ASCII key of a projection: no projection then, rather
    than an event that silently lacks the field."""
    assert jsonutil.projection_decoder(frozenset({"id", "prénom"})) is None
    assert jsonutil.projection_decoder(frozenset({"id", "prenom"})) is not None

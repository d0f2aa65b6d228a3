"""The fast paths of the JSONL reader yield and report exactly what the careful path does."""

from __future__ import annotations

import pytest

from alerting.events import (
    Event,
    JsonEvent,
    LazyEvent,
    parse_timestamp,
)
from alerting.source import files
from alerting.source.files import read_events
from tests.support.events import blob_of, projector

GOOD_1 = {"id": "g1", "timestamp": "2026-03-02T00:00:01Z", "event_type": "user_create"}
GOOD_2 = {"id": "g2", "timestamp": "2026-03-02T00:00:02.5Z", "who": {"name": "Zoë 🙂 日本"}}
GOOD_3 = {"id": "g3", "timestamp": "2026-03-02T00:00:03.123456789Z", "n": [1, {"x": None}]}
GOOD_4 = {"id": "g4", "timestamp": "2026-03-02T01:00:03+01:00"}

MIXED_LINES = [
    b"\xef\xbb\xbf" + blob_of(GOOD_1),  # 1: after a BOM
    b'{"id": "broken", "timestamp": ',  # 2: invalid JSON
    blob_of(GOOD_2),  # 3
    b'{"id": "u", "timestamp": "2026-03-02T00:00:00Z", "name": "\xff\xfeab"}',  # 4: bad UTF-8
    b"[1, 2, 3]",  # 5: not an object
    b'{"id": "t", "timestamp": "2026-13-45T99:00:00Z"}',  # 6: bad timestamp
    b"   ",  # 7: blank: not a record, not reported
    b'"just text"',  # 8: not an object
    b"  " + blob_of(GOOD_3) + b"\r",  # 9: spaces and a CRLF ending
    b'{"id": "nots", "event_type": "x"}',  # 10: no timestamp
    blob_of(GOOD_4),  # 11: no newline at the end
]
EXPECTED_SKIPS = {
    2: "invalid JSON",
    4: "invalid UTF-8 at byte",
    5: "not a JSON object but list",
    6: "invalid timestamp",
    8: "not a JSON object but str",
    10: "no 'timestamp' field",
}


@pytest.fixture
def mixed_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(MIXED_LINES))
    return path


def read_all(path) -> tuple[list[Event], list[str]]:
    skipped: list[str] = []
    events = list(read_events(path, on_skip=skipped.append))
    return events, skipped


def check_mixed(path, events: list[Event], skipped: list[str]) -> None:
    goods = [GOOD_1, GOOD_2, GOOD_3, GOOD_4]
    assert [e.raw for e in events] == goods
    assert [e.id for e in events] == ["g1", "g2", "g3", "g4"]
    assert [e.time_ns for e in events] == [parse_timestamp(g["timestamp"]) for g in goods]
    assert events[3].time_ns == parse_timestamp("2026-03-02T00:00:03Z")
    assert len(skipped) == len(EXPECTED_SKIPS), skipped
    for message, (line, reason) in zip(skipped, sorted(EXPECTED_SKIPS.items()), strict=True):
        assert message.startswith(f"{path}:{line}: "), message
        assert reason in message, message


def test_fast_path_yields_the_valid_events_and_reports_each_bad_line(mixed_file):
    assert files._BYTES_JSON  # orjson installed: the bytes fast path is the one taken
    events, skipped = read_all(mixed_file)
    check_mixed(mixed_file, events, skipped)
    assert all(type(e) is JsonEvent for e in events)  # parsed once, from the bytes


def test_careful_path_gives_the_same_events_and_reports(mixed_file, monkeypatch):
    fast_events, fast_skipped = read_all(mixed_file)
    monkeypatch.setattr(files, "_BYTES_JSON", False)
    events, skipped = read_all(mixed_file)
    check_mixed(mixed_file, events, skipped)
    assert skipped == fast_skipped
    assert [(e.raw, e.id, e.time_ns) for e in events] == [
        (e.raw, e.id, e.time_ns) for e in fast_events
    ]


def test_lazy_reading_gives_the_same_events_and_reports_once_parsed(mixed_file):
    eager_events, eager_skipped = read_all(mixed_file)
    skipped: list[str] = []
    lazy = list(read_events(mixed_file, on_skip=skipped.append, head=frozenset()))
    # Line 4's bad UTF-8 sits in a field the head decoder skips: the reader still checks
    # the line's UTF-8, so it is refused at once, in line order.
    assert sum(type(e) is LazyEvent for e in lazy) == 4
    events = [p for p in (e.parsed() if type(e) is LazyEvent else e for e in lazy) if p]
    check_mixed(mixed_file, events, skipped)
    assert skipped == eager_skipped
    assert [(e.raw, e.id, e.time_ns) for e in events] == [
        (e.raw, e.id, e.time_ns) for e in eager_events
    ]


def test_lazy_events_decode_only_the_fields_asked_for(mixed_file):
    eager_events, eager_skipped = read_all(mixed_file)
    skipped: list[str] = []
    lazy = list(read_events(mixed_file, on_skip=skipped.append, head=frozenset()))
    project = projector("who")
    events = [p for p in (e.parsed(project) if type(e) is LazyEvent else e for e in lazy) if p]
    assert skipped == eager_skipped  # line 4 (bad UTF-8) refused all the same
    assert [e.id for e in events] == [e.id for e in eager_events]
    projected = [e for e in events if type(e) is JsonEvent and e.partial]
    assert [e.id for e in projected] == ["g1", "g2", "g3", "g4"]
    # Only the fields asked for, plus identity; absent ones stay absent (not null).
    assert [sorted(e.raw) for e in projected] == [
        sorted(k for k in g if k in {"who", "id", "timestamp", "event_type"})
        for g in (GOOD_1, GOOD_2, GOOD_3, GOOD_4)
    ]
    assert [e.complete().raw for e in events] == [e.raw for e in eager_events]
    assert [e.time_ns for e in events] == [e.time_ns for e in eager_events]


def test_valid_utf8_beyond_ascii_is_projected_too(tmp_path):
    path = tmp_path / "utf8.jsonl"
    path.write_bytes(blob_of(GOOD_2))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    parsed = event.parsed(projector("who"))  # type: ignore[attr-defined]
    assert type(parsed) is JsonEvent
    assert parsed.partial
    assert parsed.raw == {k: GOOD_2[k] for k in ("id", "timestamp", "who")}


def test_an_event_without_id_is_read_whole(tmp_path):
    path = tmp_path / "noid.jsonl"
    raw = {"timestamp": "2026-03-02T00:00:01Z", "event_type": "x", "big": "y" * 50}
    path.write_bytes(blob_of(raw))
    [event] = read_events(path, on_skip=pytest.fail, head=frozenset())
    assert type(event) is JsonEvent  # the id is a hash of all of it: nothing to defer
    assert event.id == Event.from_raw(raw).id
    assert event.raw == raw


def test_a_number_only_the_standard_library_reads_in_an_unread_field(tmp_path):
    """orjson refuses 1e999; the projection skips the field unbuilt, so the event is
    evaluated, and its alert shows it as the standard library reads it (infinity)."""
    path = tmp_path / "inf.jsonl"
    path.write_bytes(
        b'{"id": "i", "timestamp": "2026-03-02T00:00:01Z", "x": 1e999}\n' + blob_of(GOOD_1)
    )
    lazy = list(read_events(path, on_skip=pytest.fail, head=frozenset()))
    events = [e.parsed(projector()) for e in lazy]  # type: ignore[attr-defined]
    assert [e.id for e in events if e] == ["i", "g1"]
    assert events[0].complete().raw["x"] == float("inf")  # type: ignore[union-attr]
    # Read whole (the service's files, `alerting test`), the line is refused and said so.
    skipped: list[str] = []
    assert [e.id for e in read_events(path, on_skip=skipped.append)] == ["g1"]
    assert skipped == [f"{path}:1: invalid JSON (number is infinity when parsed as double)"]

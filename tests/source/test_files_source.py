"""Reading exported events: JSON array / JSONL, gzip, stdin, bad records, big files."""

from __future__ import annotations

import gzip
import io
import json
import logging
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from alerting.clock import ManualClock
from alerting.errors import AlertingError
from alerting.events import format_timestamp
from alerting.source.file_source import FileSource
from alerting.source.files import NoEventsError, SkipCounter, read_events
from alerting.store import Store

NS = 1_000_000_000
BASE = 1_780_000_000


def raw(n: int, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": f"ev{n:06d}",
        "timestamp": format_timestamp((BASE + n) * NS + 123_456_789),
        "event_type": "user_login_attempt",
    }
    event.update(fields)
    return event


def read(path: str | Path) -> tuple[list[str], list[str]]:
    skipped: list[str] = []
    ids = [e.id for e in read_events(path, on_skip=skipped.append)]
    return ids, skipped


def jsonl(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_json_array_pretty_printed(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([raw(i) for i in range(5)], indent=2))
    ids, skipped = read(path)
    assert ids == [f"ev{i:06d}" for i in range(5)]
    assert skipped == []


def test_jsonl_with_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(raw(i)).encode() for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + lines[0] + b"\r\n\r\n" + lines[1] + b"\n  \n" + lines[2])
    ids, skipped = read(path)
    assert ids == ["ev000000", "ev000001", "ev000002"]
    assert skipped == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("form", ["jsonl", "array", "jsonl.gz"])
def test_utf16_with_a_bom_as_powershell_writes_it_is_read(
    tmp_path: Path, encoding: str, form: str
) -> None:
    """Windows PowerShell 5.1's ``>`` and ``Out-File`` write UTF-16 with a byte-order mark."""
    events = [raw(i, initiated_by={"username": "zoë.müller"}) for i in range(3)]
    text = json.dumps(events) if form == "array" else jsonl(events).decode().replace("\n", "\r\n")
    bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    data = bom + text.encode(encoding)
    path = tmp_path / f"events.{form}"
    path.write_bytes(gzip.compress(data) if form.endswith(".gz") else data)
    skipped: list[str] = []
    read_back = list(read_events(path, on_skip=skipped.append))
    assert [e.id for e in read_back] == ["ev000000", "ev000001", "ev000002"]
    assert read_back[0].raw["initiated_by"]["username"] == "zoë.müller"
    assert skipped == []


def test_truncated_utf16_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xff\xfe" + jsonl([raw(1)]).decode().encode("utf-16-le") + b"\x00")
    with pytest.raises(AlertingError, match=r"events.jsonl: invalid UTF-16 \(truncated data\)"):
        list(read_events(path, on_skip=lambda _m: None))


@pytest.mark.parametrize("compress", [False, True])
def test_jsonl_after_more_than_a_chunk_of_blank_lines(tmp_path: Path, compress: bool) -> None:
    """The first content byte sits past the first read: reading on from there, line
    numbers included, is the same for a plain file (read on in place) and gzip."""
    path = tmp_path / "events.jsonl"
    data = b"\n" * 70_000 + b"   " + jsonl([raw(1)]) + b"{broken\n" + jsonl([raw(2)])
    path.write_bytes(gzip.compress(data) if compress else data)
    ids, skipped = read(path)
    assert ids == ["ev000001", "ev000002"]
    assert [message.split(" (")[0] for message in skipped] == [f"{path}:70002: invalid JSON"]


def test_events_keep_raw_fields_and_nanosecond_time(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl([raw(1, geoip={"country_code": "FR"})]))
    (event,) = read_events(path, on_skip=pytest.fail)
    assert event.raw["geoip"] == {"country_code": "FR"}
    assert event.time_ns == (BASE + 1) * NS + 123_456_789


@pytest.mark.parametrize("as_array", [True, False])
def test_gzip_detected_by_magic_bytes_not_name(tmp_path: Path, as_array: bool) -> None:
    events = [raw(i) for i in range(4)]
    data = json.dumps(events).encode() if as_array else jsonl(events)
    path = tmp_path / "export.data"
    path.write_bytes(gzip.compress(data))
    assert read(path) == ([f"ev{i:06d}" for i in range(4)], [])


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


@pytest.mark.parametrize("compress", [False, True])
def test_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch, compress: bool) -> None:
    data = jsonl([raw(1), raw(2)])
    monkeypatch.setattr(sys, "stdin", _Stdin(gzip.compress(data) if compress else data))
    assert read("-") == (["ev000001", "ev000002"], [])


def test_malformed_jsonl_lines_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(raw(1)).encode(),  # 1 ok
        b'{"id": "x", "timestamp": ',  # 2 bad JSON
        b'{"id": "\xff\xfe", "timestamp": "2026-01-01T00:00:00Z"}',  # 3 invalid UTF-8
        b"[1, 2, 3]",  # 4 not an object
        json.dumps({"id": "no-time"}).encode(),  # 5 missing timestamp
        json.dumps({"id": "bad-time", "timestamp": "yesterday"}).encode(),  # 6
        json.dumps(raw(7, padding="x" * (1 << 20))).encode(),  # 7 longer than 1 MiB
        json.dumps(raw(8)).encode(),  # 8 ok
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    ids, skipped = read(path)
    assert ids == ["ev000001", "ev000008"]
    name = str(path)
    assert [s.split(": ", 1)[0] for s in skipped] == [f"{name}:{n}" for n in (2, 3, 4, 5, 6, 7)]
    assert skipped[0].startswith(f"{name}:2: invalid JSON (")
    assert skipped[1] == f"{name}:3: invalid UTF-8 at byte 9"
    assert skipped[2] == f"{name}:4: event is not a JSON object but list"
    assert skipped[3] == f"{name}:5: event has no 'timestamp' field"
    assert skipped[4].startswith(f"{name}:6: invalid timestamp 'yesterday'")
    assert skipped[5] == f"{name}:7: line longer than 1 MiB"


def test_malformed_array_records_are_skipped_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(
        b"\n".join(
            [
                b"[",
                json.dumps(raw(1)).encode() + b",",
                b'{"id": "no-time"},',
                b"42,",
                b'{"id": "bad", "timestamp": "nope"},',
                b'{"id": "\xff", "timestamp": "2026-01-01T00:00:00Z"},',
                json.dumps(raw(2, padding="y" * (1 << 20))).encode() + b",",
                json.dumps(raw(3)).encode(),
                b"]",
            ]
        )
    )
    ids, skipped = read(path)
    assert ids == ["ev000001", "ev000003"]
    name = str(path)
    assert skipped == [
        f"{name}:3: event has no 'timestamp' field",
        f"{name}:4: event is not a JSON object but int",
        f"{name}:5: invalid timestamp 'nope': expected RFC 3339, e.g. 2026-11-20T10:00:01.123Z",
        f"{name}:6: invalid UTF-8",
        f"{name}:7: record longer than 1 MiB",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[\n{"id": "a", "timestamp": "2026-01-01T00:00:00Z"}\n{"id": "b"}]', ":3: invalid JSON"),
        (
            b'[\n  {"id": "a", "timestamp": "2026-01-01T00:00:00Z"},\n  {"id": tru',
            ":3: invalid JSON",
        ),
        (
            b'[{"id": "a", "timestamp": "2026-01-01T00:00:00Z"},\n',
            ":2: the JSON array is not closed",
        ),
        (b'[{"id": "a", "timestamp": "2026-01-01T00:00:00Z"}]\n]', ":2: unexpected data after"),
    ],
)
def test_broken_json_array_is_an_error_with_its_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(content)
    with pytest.raises(AlertingError, match=message) as caught:
        list(read_events(path, on_skip=lambda m: None))
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    "content",
    [b"", b"  \n\n ", b"[]", b" [ ] ", b'{"id": "x"}\n[1]\n', b'[{"id": 1}, "x"]'],
)
def test_no_events_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(content)
    with pytest.raises(NoEventsError) as caught:
        list(read_events(path, on_skip=lambda m: None))
    assert str(caught.value) == f"{path}: no events found; an empty input would read as 'no alerts'"


def test_missing_file_directory_and_bad_gzip(tmp_path: Path) -> None:
    with pytest.raises(AlertingError, match=r"nope\.jsonl: no such file"):
        list(read_events(tmp_path / "nope.jsonl", on_skip=lambda m: None))
    with pytest.raises(AlertingError, match="is a directory"):
        list(read_events(tmp_path, on_skip=lambda m: None))
    corrupt = tmp_path / "events.jsonl.gz"
    corrupt.write_bytes(gzip.compress(jsonl([raw(1)] * 50))[:40])
    with pytest.raises(AlertingError, match="corrupt or truncated gzip"):
        list(read_events(corrupt, on_skip=lambda m: None))


def test_skip_counter_logs_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl([raw(1)]) + b"oops\n" + b"{}\n")
    counter = SkipCounter()
    with caplog.at_level(logging.WARNING):
        assert len(list(read_events(path, on_skip=counter))) == 1
    assert counter.count == 2
    assert counter.summary() == "2 malformed records skipped"
    assert f"{path}:2: invalid JSON" in caplog.text
    assert f"{path}:3: event has no 'timestamp' field" in caplog.text


def test_a_large_array_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    stamp = format_timestamp(BASE * NS)
    with path.open("w") as out:
        out.write("[\n")
        for i in range(50_000):
            if i:
                out.write(",\n")
            out.write(json.dumps({"id": f"ev{i:06d}", "timestamp": stamp, "message": "m" * 200}))
        out.write("\n]\n")
    size = path.stat().st_size
    assert size > 10_000_000
    tracemalloc.start()
    try:
        count = 0
        last = ""
        for event in read_events(path, on_skip=pytest.fail):
            count += 1
            last = event.id
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert last == "ev049999"
    assert peak < 2_000_000, f"peak {peak} bytes for a {size}-byte file"


# ---------------------------------------------------------------------------- FileSource


def test_file_source_reads_the_file_once_then_only_new_events(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl([raw(3), raw(1), raw(2), raw(2)]) + b"garbage\n")
    clock = ManualClock(float(BASE + 100))
    store = Store(tmp_path / "state.db")
    source = FileSource(path, store=store, source_name="file", clock=clock)
    batch = source.poll()
    assert batch is not None
    assert [e.id for e in batch.events] == ["ev000001", "ev000002", "ev000003"]
    assert batch.duplicates == 1
    assert len(batch.skipped) == 1
    assert batch.skipped[0].startswith(f"{path}:5: invalid JSON")
    assert batch.cursor_ns == (BASE + 3) * NS + 123_456_789
    with store.transaction():
        source.commit(batch)
    assert source.poll() is None  # unchanged file

    with path.open("ab") as out:
        out.write(jsonl([raw(4)]))
    newer = source.poll()
    assert newer is not None
    assert [e.id for e in newer.events] == ["ev000004"]
    with store.transaction():
        source.commit(newer)
    store.close()

    # a restart on the same state does not replay the file
    store = Store(tmp_path / "state.db")
    restarted = FileSource(path, store=store, source_name="file", clock=clock)
    again = restarted.poll()
    assert again is not None
    assert again.events == []
    history = restarted.history((BASE + 2) * NS, (BASE + 4) * NS)
    assert [e.id for e in history] == ["ev000002", "ev000003"]  # time order, no repeats
    store.close()


def test_file_source_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"")
    store = Store(tmp_path / "state.db")
    source = FileSource(path, store=store, source_name="file", clock=ManualClock())
    with pytest.raises(NoEventsError):
        source.poll()
    store.close()

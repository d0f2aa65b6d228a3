"""The sort behind an out-of-order replay, and duplicate dropping as the poller does it."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from alerting.events import Event, JsonEvent, format_timestamp, sort_key
from alerting.replay_sort import DuplicateTally, drop_duplicates, sort_events

S = 1_000_000_000
T0 = 1_780_000_000 * S


def event(n: int, seconds: float, **fields: object) -> Event:
    raw = {
        "id": f"ev-{n:05d}",
        "timestamp": format_timestamp(T0 + int(seconds * S)),
        "event_type": "user_login_attempt",
        **fields,
    }
    return JsonEvent.from_json(raw, json.dumps(raw).encode())


def test_many_runs_merge_into_time_then_id_order(tmp_path: Path) -> None:
    events = [event(n, n // 3) for n in range(3000)]  # three events a second: ties by id
    shuffled = list(events)
    random.Random(2).shuffle(shuffled)
    runs = sort_events(shuffled, tmp_path, run_bytes=20_000)
    try:
        assert len(runs.paths) > 10
        assert runs.events == 3000
        assert runs.shape == "not in time order"
        merged = [json.loads(line)["id"] for line in runs.lines()]
    finally:
        shutil.rmtree(runs.directory)
    assert merged == [e.id for e in sorted(events, key=sort_key)]
    assert list(tmp_path.iterdir()) == []  # everything lived in runs.directory


def test_newest_first_is_recognised_and_described(tmp_path: Path) -> None:
    events = [event(n, n) for n in range(100)][::-1]
    runs = sort_events(events, tmp_path, run_bytes=4_000)
    try:
        assert (
            runs.describe()
            == f"input was newest-first: sorted 100 events in {len(runs.paths)} runs"
        )
    finally:
        shutil.rmtree(runs.directory)


def test_copies_of_an_event_keep_their_file_order_and_the_first_is_kept(tmp_path: Path) -> None:
    first = event(1, 10, note="first copy")
    again = event(1, 10, note="re-export")
    runs = sort_events([event(2, 11), first, event(0, 5), again], tmp_path, run_bytes=1)
    try:
        lines = [json.loads(line) for line in runs.lines(dedupe_ns=300 * S)]
    finally:
        shutil.rmtree(runs.directory)
    assert [(e["id"], e.get("note")) for e in lines] == [
        ("ev-00000", None),
        ("ev-00001", "first copy"),
        ("ev-00002", None),
    ]
    assert runs.duplicates.dropped == 1


def test_an_id_is_remembered_for_the_window_as_the_poller_remembers_seen_ids() -> None:
    """The poller keeps seen ids from ``cursor - overlap``: a repeat within the window is
    dropped, one much later is new again."""
    events = [event(1, 0), event(1, 299), event(2, 300), event(1, 900)]
    tally = DuplicateTally()
    kept = list(drop_duplicates(events, 300 * S, tally))
    assert [(e.id, e.time_ns - T0) for e in kept] == [
        ("ev-00001", 0),
        ("ev-00002", 300 * S),
        ("ev-00001", 900 * S),
    ]
    assert tally.dropped == 1

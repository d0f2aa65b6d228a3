"""Event files in the forms users make of their exports, for the replay tests."""

from __future__ import annotations

from pathlib import Path

from alerting import jsonutil
from alerting.events import parse_timestamp

OVERLAP_NS = 8 * 60 * 10**9  # within replay's reorder window (10 minutes)


def overlapping_exports(export: Path, directory: Path) -> tuple[Path, list[bytes]]:
    """``export`` (JSONL, in time order) as two exports concatenated, the second starting
    ``OVERLAP_NS`` before the first ends, as overlapping pulls get glued together. The
    repeats are within the reorder window, so such a file streams and its repeats are
    dropped as they come. Returns the file and the lines it repeats."""
    lines = export.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    end_ns = parse_timestamp(jsonutil.loads(lines[middle - 1])["timestamp"])
    start = middle
    while start > 0 and (
        parse_timestamp(jsonutil.loads(lines[start - 1])["timestamp"]) > end_ns - OVERLAP_NS
    ):
        start -= 1
    path = directory / "overlapping.jsonl"
    path.write_bytes(b"".join(lines[:middle] + lines[start:]))
    return path, lines[start:middle]

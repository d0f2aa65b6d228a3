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


def powershell_text(value: object) -> str:
    """What ``ConvertTo-Json`` writes for an object past its ``-Depth``: its text. An
    object from ``ConvertFrom-Json`` (what ``Get-JCEvent`` returns) is ``@{k=v; ...}``,
    with objects inside it empty (``@{from=; to=}``); an array is its .NET type name."""
    if not isinstance(value, dict):
        return "System.Object[]"

    def inner(item: object) -> str:
        if isinstance(item, dict) or item is None:
            return ""
        if isinstance(item, list):
            return " ".join(inner(i) for i in item)
        return str(item)  # True as True, as PowerShell spells it

    return "@{" + "; ".join(f"{k}={inner(v)}" for k, v in value.items()) + "}"


def powershell_cut(value: object, depth: int) -> object:
    """``value`` as ``ConvertTo-Json -Depth depth`` keeps it: objects and arrays nested
    deeper than ``depth`` levels below it become their text (``powershell_text``)."""

    def kept(item: object) -> object:
        if not isinstance(item, dict | list):
            return item
        return powershell_cut(item, depth - 1) if depth > 0 else powershell_text(item)

    if isinstance(value, dict):
        return {k: kept(v) for k, v in value.items()}
    if isinstance(value, list):
        return [kept(v) for v in value]
    return value


def powershell_export(events: list[dict], path: Path, *, depth: int = 2) -> Path:
    """``events`` as ``Get-JCEvent ... | ConvertTo-Json -Depth depth | Out-File path`` in
    Windows PowerShell 5.1: one JSON array, cut at ``depth`` below it, in UTF-16 with a
    byte-order mark (``Out-File``'s default there)."""
    text = jsonutil.dumps(powershell_cut(events, depth), indent=True)
    path.write_text(text, encoding="utf-16")
    return path

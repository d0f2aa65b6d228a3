"""Writing generated traffic and its ground truth to files (``simulate --export``).

The file formats (JSON Lines, one compact event per line; the ground truth as a pretty
JSON array) are a contract with ``replay``, the benchmarks and the rule-pack tests, so
they live apart from how the events are made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.simulator.traffic.scenarios import InjectedAttack


def attacks_to_json(attacks: Iterable[InjectedAttack]) -> str:
    """The ground truth as a pretty JSON array (written beside exported events)."""
    return jsonutil.dumps([a.to_dict() for a in attacks], indent=True)


def export_jsonl(path: str | Path, events: Iterable[dict[str, Any]]) -> int:
    """Write events as JSON Lines; returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for event in events:
            fh.write(jsonutil.dumps(event))
            fh.write("\n")
            count += 1
    return count

"""``alerting replay`` with the shipped rule pack, as the backtest tests run it."""

from __future__ import annotations

from pathlib import Path

from alerting import cli

PACK = Path(__file__).resolve().parents[2] / "rules"


def replay_pack(events: Path, output: Path, *extra: str) -> int:
    """The exit code of ``alerting replay --events EVENTS --rules rules/ --output OUTPUT``
    with ``extra`` flags (``--jobs 2``, ``--rule ID``)."""
    return cli.main(
        ["replay", "--events", str(events), "--rules", str(PACK), "--output", str(output), *extra]
    )

"""``alerting export``: the configured DI source's events over a time range, into an
events file for ``alerting replay`` (a backtest on real data).

It reads through the same ``Source`` the service polls (``source.open.open_source``): for
the real API the DI client's paging by ``search_after``, its rate limit, its retries with
backoff on 429/5xx and its one-line errors; the simulator and file sources too. Nothing
of the service's state is touched (the source gets a throwaway store). The file is JSON
Lines, gzip when its name ends in ``.gz``, and it appears only when the export is
complete (``eventfile.EventFileWriter``); a progress line goes to a terminal's stderr.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from alerting.clock import Clock, SystemClock, time_ns
from alerting.commands import common
from alerting.commands.progress import ProgressLine
from alerting.config import load_config
from alerting.durations import parse_duration_ns
from alerting.errors import AlertingError
from alerting.eventfile import EventFileWriter
from alerting.events import format_timestamp, parse_timestamp
from alerting.source.jumpcloud import SourceUnavailable
from alerting.source.open import open_source
from alerting.source.settings import SourceConfig
from alerting.store import Store

__all__ = ["main", "parse_when", "run"]

_WHEN_HINT = "a duration back from now such as 7d or 36h, or a time such as 2026-11-20T00:00:00Z"


def main(args: argparse.Namespace) -> int:
    """``alerting export --config F --since D|T [--until D|T] [--services S ...] --output F``."""
    return run(
        config_path=common.config_path(args),
        since=args.since,
        until=args.until,
        services=args.services,
        output=args.output,
    )


def parse_when(text: str, now_ns: int, flag: str) -> int:
    """``7d`` (that long before now) or an RFC 3339 time / ``YYYY-MM-DD`` date, in ns."""
    value = text.strip()
    if value[:1].isdigit() and "-" in value[:5]:
        if len(value) == 10:
            value += "T00:00:00Z"
        try:
            return parse_timestamp(value)
        except ValueError:
            raise AlertingError(f"{flag} {text!r}: not a time; use {_WHEN_HINT}") from None
    try:
        return now_ns - parse_duration_ns(value)
    except ValueError:
        raise AlertingError(f"{flag} {text!r}: use {_WHEN_HINT}") from None


def _with_services(settings: SourceConfig, services: list[str] | None) -> SourceConfig:
    if not services:
        return settings
    names = [s.strip() for arg in services for s in arg.split(",") if s.strip()]
    try:
        return SourceConfig.model_validate({**settings.model_dump(), "services": names})
    except ValidationError as exc:
        reason = "; ".join(str(e.get("msg", e)) for e in exc.errors())
        raise AlertingError(f"--services {' '.join(services)}: {reason}") from None


def run(
    *,
    config_path: str,
    since: str,
    until: str | None,
    services: list[str] | None,
    output: str,
    clock: Clock | None = None,
    progress: TextIO | None = None,
) -> int:
    """Export ``[since, until]`` of the configured source to ``output``."""
    config = load_config(config_path)
    clock = clock if clock is not None else SystemClock()
    now = time_ns(clock)
    start = parse_when(since, now, "--since")
    end = parse_when(until, now, "--until") if until else now
    if start >= end:
        raise AlertingError(
            f"--since {since} ({format_timestamp(start)}) is not before --until "
            f"{until or 'now'} ({format_timestamp(end)}): give an earlier --since"
        )
    settings = _with_services(config.source, services)
    if output == "-":
        raise AlertingError(
            "--output -: name a file (an export is written whole or not at all, so not to stdout)"
        )
    target = Path(output)
    if target.is_dir():
        raise AlertingError(f"--output {output}: is a directory; name the file to write")
    meter = _Progress(progress if progress is not None else sys.stderr)
    with tempfile.TemporaryDirectory(prefix="alerting-export-") as tmp:
        store = Store(Path(tmp) / "export.db")  # the source's cursor and seen ids: thrown away
        try:
            opened = open_source(settings, store, clock)
            try:
                with EventFileWriter(target) as out:
                    for event in opened.source.history(start, end):
                        out.write(event.raw)
                        if out.count % 1000 == 0:
                            meter.show(out.count, event.time_ns)
            except SourceUnavailable as exc:
                reason = str(exc).replace("; the next poll retries", "")
                raise AlertingError(
                    f"export stopped, nothing written to {output}: {reason}; run it again"
                ) from None
            finally:
                meter.clear()
                opened.source.close()
        finally:
            store.close()
    sys.stdout.write(
        f"wrote {out.count:,} events ({format_timestamp(start)} .. {format_timestamp(end)}) "
        f"from {opened.description} to {output}\n"
    )
    if out.count == 0:
        sys.stderr.write(
            "warning: the range held no events; check --since/--until and source.services\n"
        )
    return 0


class _Progress(ProgressLine):
    """Events written so far and how far into the range they reach."""

    def show(self, count: int, time_ns_: int) -> None:
        if self.due():
            self.write(f"exporting: {count:,} events, up to {format_timestamp(time_ns_)}")

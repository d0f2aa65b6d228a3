"""``alerting replay``: the per-rule table, the progress line and ``--notify`` over
``alerting.replay`` (the library: reorder buffer, ``replay()``, ``read_for_replay``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from alerting.alert import Alert
from alerting.commands import common
from alerting.durations import DAY_NS
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.engine.testing import select_rules
from alerting.errors import AlertingError
from alerting.replay import ReplayResult, read_for_replay, replay

MAX_SKIP_WARNINGS = 20


def format_summary(result: ReplayResult) -> str:
    """The per-rule table and the totals lines printed at the end of a replay."""
    days = max(result.span_ns / DAY_NS, 1 / 24)
    rule_w = max([len("RULE"), *(len(r) for r in result.per_rule)])
    lines = [
        f"{'RULE':<{rule_w}}  {'ALERTS':>7}  {'ALERTS/DAY':>10}  {'GROUPS':>7}  {'SUPPRESSED':>10}"
    ]
    for rule_id, s in sorted(result.per_rule.items(), key=lambda kv: (-kv[1].alerts, kv[0])):
        lines.append(
            f"{rule_id:<{rule_w}}  {s.alerts:>7}  {s.alerts / days:>10.1f}  "
            f"{len(s.groups):>7}  {s.suppressed:>10}"
        )
    hours = result.span_ns / 3_600_000_000_000
    span = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"
    noun = "alert" if result.alerts == 1 else "alerts"
    lines.append(f"{result.alerts} {noun} over {span} of events")
    lines.append(
        f"{result.events} events read, {result.skipped} skipped (malformed), {result.late} late"
    )
    return "\n".join(lines)


def _rules_for(rules: list[CompiledRule], only: Sequence[str] | None) -> list[CompiledRule]:
    """The rules to replay: ``--rule`` picks ids (a disabled one is enabled to backtest it)."""
    if only:
        return [dataclasses.replace(r, enabled=True) for r in select_rules(rules, only)]
    return [r for r in rules if r.enabled]


class _Progress:
    """A one-line progress report on a terminal, at most twice a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, result: ReplayResult) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        self.shown = True
        self.stream.write(f"\r{result.events:,} events, {result.alerts:,} alerts ")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def main(args: argparse.Namespace) -> int:
    """``alerting replay --events F [--rules DIR] [--output F] [--rule ID] [--notify]``."""
    return run(
        events_path=args.events,
        rules_dirs=common.rules_dirs(args),
        output=args.output,
        only=args.only_rules,
        notify_config=common.config_path(args) if args.notify else None,
        placeholders=common.placeholders(args),
    )


def run(
    *,
    events_path: str,
    rules_dirs: list[Path],
    output: str | None,
    only: Sequence[str] | None,
    notify_config: str | None,
    placeholders: dict[str, list[str]] | None = None,
) -> int:
    """Replay ``events_path``; ``output`` ``-`` is stdout; ``notify_config`` turns on --notify."""
    rules = _rules_for(load_rules(rules_dirs, placeholders=placeholders), only)
    if not rules:
        raise AlertingError("no enabled rules to replay: enable a rule or name it with --rule")
    notifier = _Notify(notify_config) if notify_config is not None else None
    engine = Engine(rules)
    table_stream = sys.stderr if output == "-" else sys.stdout
    skip_count = [0]

    def on_skip(message: str) -> None:
        skip_count[0] += 1
        if skip_count[0] <= MAX_SKIP_WARNINGS:
            sys.stderr.write(f"warning: skipped {message}\n")

    progress = _Progress(sys.stderr)
    created: Path | None = None
    try:
        with ExitStack() as stack:
            out: TextIO | None = None
            if output == "-":
                out = sys.stdout
            elif output:
                try:
                    out = stack.enter_context(open(output, "w", encoding="utf-8"))
                except OSError as exc:
                    raise AlertingError(
                        f"cannot write alerts to {output}: {exc.strerror}"
                    ) from None
                created = Path(output)
            writer = out

            def on_alert(alert: Alert) -> None:
                if writer is not None:
                    writer.write(alert.to_json() + "\n")
                if notifier is not None:
                    notifier.add(alert)

            events = read_for_replay(events_path, engine, on_skip=on_skip)
            try:
                result = replay(events, engine, on_alert=on_alert, progress=progress)
            finally:
                progress.clear()
    except BaseException:
        # No partial result presented as whole: an aborted run leaves no alerts file.
        if created is not None:
            created.unlink(missing_ok=True)
        if notifier is not None:
            notifier.close()
        raise
    result.skipped = skip_count[0]
    if skip_count[0] > MAX_SKIP_WARNINGS:
        sys.stderr.write(
            f"warning: {skip_count[0] - MAX_SKIP_WARNINGS} more malformed records skipped\n"
        )
    if result.events == 0:
        raise AlertingError(
            f"no events in {events_path}"
            + (f" ({result.skipped} malformed records skipped)" if result.skipped else "")
            + ": check the file (a JSON array or one JSON event per line)"
        )
    table_stream.write(format_summary(result) + "\n")
    if notifier is not None:
        table_stream.write(notifier.finish() + "\n")
    return 0


class _Notify:
    """``--notify``: deliver replayed alerts through the configuration's routes.

    Alerts go through a throwaway outbox (a temporary store), so a backtest never touches
    the service's state; deliveries that fail are retried only within this run.
    """

    BATCH = 500

    def __init__(self, config_path: str) -> None:
        from alerting.clock import SystemClock
        from alerting.config import load_config
        from alerting.notify.pipeline import build_notifier
        from alerting.store import Store

        config = load_config(config_path)
        self._tmp = tempfile.TemporaryDirectory(prefix="alerting-replay-")
        self.clock = SystemClock()
        self.store = Store(Path(self._tmp.name) / "replay.db")
        self.notifier = build_notifier(config.notify_settings(), self.store, self.clock)
        self.group_wait_s = config.delivery.group_wait.total_seconds()
        self.pending: list[Alert] = []
        self.silenced = self.unrouted = self.duplicates = 0

    def add(self, alert: Alert) -> None:
        self.pending.append(alert)
        if len(self.pending) >= self.BATCH:
            self._enqueue()

    def _enqueue(self) -> None:
        if self.pending:
            result = self.notifier.enqueue(self.pending)
            self.silenced += result.silenced
            self.unrouted += result.unrouted
            self.duplicates += result.duplicates
            self.pending = []
        self._deliver()

    def _deliver(self) -> None:
        waited = 0.0
        while True:
            result = self.notifier.deliver_due()
            handled = result.sent + result.dead + result.retried + result.postponed
            if handled:
                continue
            if result.waiting and waited <= self.group_wait_s + 1:
                self.clock.sleep(0.25)  # let a group_wait window close
                waited += 0.25
                continue
            return

    def close(self) -> None:
        self.notifier.close()
        self.store.close()
        self._tmp.cleanup()

    def finish(self) -> str:
        """Deliver what is left; say what happened."""
        try:
            self._enqueue()
            counts = self.store.outbox_counts()
        finally:
            self.close()
        return (
            f"notify: {counts.get('sent', 0)} deliveries sent, "
            f"{counts.get('pending', 0)} still failing (not retried after replay), "
            f"{counts.get('dead', 0)} dead; {self.silenced} silenced, "
            f"{self.unrouted} matched no route"
        )

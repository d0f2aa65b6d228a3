"""``alerting replay``: the per-rule table, the progress line, ``--notify``,
``--summary-json`` and ``--truth`` over ``alerting.replay`` (the library: reorder buffer,
the sort of an out-of-order input, ``replay_file()``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from alerting import jsonutil
from alerting.alert import Alert
from alerting.commands import common
from alerting.commands.progress import ProgressLine
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.engine.testing import select_rules
from alerting.errors import AlertingError
from alerting.replay import ALERT_WRITE_BUFFER, ReplayResult, replay_file
from alerting.replay_parallel import can_fork, default_jobs, replay_parallel
from alerting.replay_summary import format_summary, summary_json
from alerting.scoring import Scorer, format_score, load_truth

MAX_SKIP_WARNINGS = 20


def _rules_for(rules: list[CompiledRule], only: Sequence[str] | None) -> list[CompiledRule]:
    """The rules to replay: ``--rule`` picks ids (a disabled one is enabled to backtest it)."""
    if only:
        return [dataclasses.replace(r, enabled=True) for r in select_rules(rules, only)]
    return [r for r in rules if r.enabled]


class _Progress(ProgressLine):
    """Events and alerts so far, or the sort of an out-of-order input."""

    def __call__(self, result: ReplayResult) -> None:
        if self.due():
            self.write(f"{result.events:,} events, {result.alerts:,} alerts")

    def sorting(self, events: int) -> None:
        """While an out-of-order input is sorted to disk."""
        if self.due():
            self.write(f"input out of order: sorting, {events:,} events")


def main(args: argparse.Namespace) -> int:
    """``alerting replay --events F [--rules DIR] [--output F] [--rule ID] [--notify]
    [--summary-json F] [--truth F]``."""
    return run(
        events_path=args.events,
        rules_dirs=common.rules_dirs(args),
        output=args.output,
        only=args.only_rules,
        notify_config=common.config_path(args) if args.notify else None,
        summary_path=getattr(args, "summary_json", None),
        truth_path=getattr(args, "truth", None),
        jobs=getattr(args, "jobs", None),
        placeholders=common.placeholders(args),
    )


def run(
    *,
    events_path: str,
    rules_dirs: list[Path],
    output: str | None,
    only: Sequence[str] | None,
    notify_config: str | None,
    summary_path: str | None = None,
    truth_path: str | None = None,
    jobs: int | None = None,
    placeholders: dict[str, list[str]] | None = None,
) -> int:
    """Replay ``events_path``; ``output`` ``-`` is stdout; ``notify_config`` turns on
    --notify; ``summary_path`` gets the summary as JSON; ``truth_path`` scores the alerts;
    ``jobs`` worker processes (None: ``default_jobs``); ``placeholders`` the config's."""
    rules = _rules_for(load_rules(rules_dirs, placeholders=placeholders), only)
    if not rules:
        raise AlertingError("no enabled rules to replay: enable a rule or name it with --rule")
    scorer = Scorer(load_truth(truth_path), [r.id for r in rules]) if truth_path else None
    notifier = _Notify(notify_config) if notify_config is not None else None
    table_stream = sys.stderr if output == "-" else sys.stdout
    skip_count = [0]

    def on_skip(message: str) -> None:
        skip_count[0] += 1
        if skip_count[0] <= MAX_SKIP_WARNINGS:
            sys.stderr.write(f"warning: skipped {message}\n")

    progress = _Progress(sys.stderr)
    created: list[Path] = []
    try:
        with ExitStack() as stack:
            out: TextIO | None = None
            if output == "-":
                out = sys.stdout
            elif output:
                out = stack.enter_context(_create(output, "alerts"))
                created.append(Path(output))
            writer = out

            def on_alert_json(text: str) -> None:
                writer.write(text + "\n")  # type: ignore[union-attr]  # set when passed

            def on_alert(alert: Alert) -> None:
                if scorer is not None:
                    scorer.add(alert)
                if notifier is not None:
                    notifier.add(alert)

            # The output gets the spooled JSON text; an Alert is rebuilt only when asked.
            alerts = on_alert if scorer is not None or notifier is not None else None
            texts = on_alert_json if writer is not None else None

            workers = default_jobs(events_path) if jobs is None else jobs
            if workers > 1 and not can_fork():
                workers = 1  # compiled rules reach workers only through a fork
            try:
                if workers > 1 and len(rules) > 1:
                    result = replay_parallel(
                        events_path,
                        rules,
                        workers,
                        on_skip=on_skip,
                        progress=progress,
                        on_alert=alerts,
                        on_alert_json=texts,
                    )
                else:
                    result = replay_file(
                        events_path,
                        lambda: Engine(rules),
                        on_skip=on_skip,
                        progress=progress,
                        on_alert=alerts,
                        on_alert_json=texts,
                        sort_progress=progress.sorting,
                    )
            finally:
                progress.clear()
        result.skipped = skip_count[0]
        if result.events == 0:
            raise AlertingError(
                f"no events in {events_path}"
                + (f" ({result.skipped} malformed records skipped)" if result.skipped else "")
                + ": check the file (a JSON array or one JSON event per line)"
            )
        score = scorer.report() if scorer is not None else None
        if summary_path:
            data = summary_json(result)
            if score is not None:
                data["truth"] = score
            with _create(summary_path, "the summary") as fh:
                created.append(Path(summary_path))
                fh.write(jsonutil.dumps(data, indent=True) + "\n")
    except BaseException:
        # No partial result presented as whole: an aborted run leaves no alerts file.
        for path in created:
            path.unlink(missing_ok=True)
        if notifier is not None:
            notifier.close()
        raise
    if skip_count[0] > MAX_SKIP_WARNINGS:
        sys.stderr.write(
            f"warning: {skip_count[0] - MAX_SKIP_WARNINGS} more malformed records skipped\n"
        )
    table_stream.write(format_summary(result) + "\n")
    if score is not None:
        table_stream.write("\n" + format_score(score) + "\n")
    if notifier is not None:
        table_stream.write(notifier.finish() + "\n")
    return 0


def _create(path: str, what: str) -> TextIO:
    try:
        return open(path, "w", encoding="utf-8", buffering=ALERT_WRITE_BUFFER)
    except OSError as exc:
        raise AlertingError(f"cannot write {what} to {path}: {exc.strerror}") from None


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
        # A backtest has no one to wait for: incident messages go out as each batch ends.
        delivery = config.delivery.model_copy(
            update={
                "incidents": config.delivery.incidents.model_copy(
                    update={"group_wait": timedelta(0), "group_interval": timedelta(0)}
                )
            }
        )
        settings = dataclasses.replace(config.notify_settings(), delivery=delivery)
        self.notifier = build_notifier(settings, self.store, self.clock)
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

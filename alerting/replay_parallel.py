"""``alerting replay --jobs N``: the rules spread over N worker processes, one answer.

Each worker replays the whole file through its share of the rules with
``replay.replay_file`` (its reader leaves out what its rules cannot match, so a worker
meets only its rules' events), and the parent merges the workers' alerts into the order
one process gives. That order is well defined: ``replay_file`` evaluates events strictly
in ``(time, id)`` order (it sorts the input when it is not), and for one event the engine
raises alerts in rule order. So each alert is keyed by the ``(time, id)`` of the event it
was raised on, its rule's place in the whole rule list and its place in its worker's
output, and a heap merge of the workers' outputs is byte-identical to ``--jobs 1``.

Workers are forked (compiled rules and templates are not picklable, and a fork shares
them for free); where the platform cannot fork, replay runs in one process. Rules never
share state in the engine, so any split gives the same alerts; the split only balances
the work (``split_rules``).
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import pickle
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import BinaryIO, Protocol

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine, Route
from alerting.engine.rule import CompiledRule
from alerting.engine.types import NewValueSpec, SequenceSpec, TravelSpec
from alerting.errors import AlertingError
from alerting.events import Event
from alerting.replay import DEFAULT_LATENESS_NS, ReplayResult, replay_file, spool_stdin

__all__ = ["AUTO_MIN_BYTES", "can_fork", "default_jobs", "replay_parallel", "split_rules"]

# Below this input size, starting workers costs more than it saves (about 0.1 s each).
AUTO_MIN_BYTES = 64 << 20
_POLL_S = 0.5  # how often the parent reports progress while workers run

# (event time, event id, rule's place in the whole list, place in the worker's output)
_Key = tuple[int, str, int, int]


class _Counter(Protocol):
    """A number shared with a worker (``multiprocessing.Value``): events it has read."""

    value: int


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def default_jobs(path: str) -> int:
    """``--jobs`` when not given: every core for a large file, one process otherwise."""
    if not can_fork() or path == "-":
        return 1
    try:
        size = os.stat(path).st_size
    except OSError:
        return 1  # the reader reports the problem
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1) if size >= AUTO_MIN_BYTES else 1


def _weight(rule: CompiledRule) -> int:
    """A rough share of replay work (measured per rule in benchmarks/README.md). Travel,
    sequence and baseline (new_value) rules hold each login they meet: they cost the
    most, so they go to different workers first; the rest weigh by how many event
    types they read."""
    spec = rule.aggregation
    if isinstance(spec, TravelSpec | SequenceSpec):
        return 16
    if isinstance(spec, NewValueSpec):
        return 12
    types = rule.event_types
    return 8 if types is None else min(len(types), 4)


def split_rules(rules: Sequence[CompiledRule], jobs: int) -> list[list[CompiledRule]]:
    """``rules`` in at most ``jobs`` non-empty shares of about equal weight (heaviest
    first into the lightest share); each share keeps the rules' order."""
    jobs = max(1, min(jobs, len(rules)))
    shares: list[list[int]] = [[] for _ in range(jobs)]
    load = [0] * jobs
    for index in sorted(range(len(rules)), key=lambda i: -_weight(rules[i])):
        lightest = load.index(min(load))
        shares[lightest].append(index)
        load[lightest] += _weight(rules[index])
    return [[rules[i] for i in sorted(share)] for share in shares if share]


class _KeyedEngine(Engine):
    """An engine that notes, for each alert it raises, the event it was raised on."""

    def __init__(self, rules: list[CompiledRule], rank: dict[str, int]) -> None:
        super().__init__(rules)
        self._rank = rank
        self.keys: list[_Key] = []

    def process(self, event: Event, route: Route | None = None) -> list[Alert]:
        alerts = super().process(event, route)
        for alert in alerts:
            self.keys.append((event.time_ns, event.id, self._rank[alert.rule], len(self.keys)))
        return alerts

    def due(self, watermark_ns: int) -> list[Alert]:
        # replay asks once, after the last event: these come after every event's alerts
        alerts = super().due(watermark_ns)
        for alert in alerts:
            self.keys.append((2**63 - 1, "", self._rank[alert.rule], len(self.keys)))
        return alerts


@dataclass(slots=True)
class _Outcome:
    """What a worker sends back: its totals, its malformed-record messages, or why it failed."""

    result: ReplayResult | None
    skips: list[str]
    error: str | None = None


def _work(
    share: list[CompiledRule],
    rank: dict[str, int],
    path: Path,
    out_path: Path,
    tmp_dir: Path,
    lateness_ns: int,
    events_seen: _Counter,
    conn: Connection,
) -> None:
    """One worker: replay ``path`` through ``share``; alerts (keyed) to ``out_path``."""
    skips: list[str] = []
    try:
        engines: list[_KeyedEngine] = []

        def make_engine() -> Engine:
            engines.append(_KeyedEngine(share, rank))
            return engines[-1]

        def progress(result: ReplayResult) -> None:
            events_seen.value = result.events

        with open(out_path, "wb") as out:
            written = 0

            def on_alert_json(text: str) -> None:
                # replay_file hands alerts over once the replay is done, in the order
                # the engine of the attempt that counted raised them (see replay_file).
                nonlocal written
                key = engines[-1].keys[written]
                written += 1
                pickle.dump((key, text), out, protocol=pickle.HIGHEST_PROTOCOL)

            result = replay_file(
                path,
                make_engine,
                on_skip=skips.append,
                on_alert=None,
                on_alert_json=on_alert_json,
                lateness_ns=lateness_ns,
                progress=progress,
                tmp_dir=tmp_dir,
                # A worker lets through only its rules' events and meets each share of the
                # lines it reads: decoding the head first measured cheaper there (session
                # perf14c: 5.8 s vs 6.7 s wall for --jobs 2 on the 200k portal mix).
                decode_once=False,
            )
        conn.send(_Outcome(result, skips))
    except AlertingError as exc:
        conn.send(_Outcome(None, skips, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, never lost
        conn.send(_Outcome(None, skips, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _read_keyed(path: Path) -> Iterator[tuple[_Key, str]]:
    with open(path, "rb") as fh:
        yield from _records(fh)


def _records(fh: BinaryIO) -> Iterator[tuple[_Key, str]]:
    while True:
        try:
            yield pickle.load(fh)  # noqa: S301 - our own worker's file, never user input
        except EOFError:
            return


def _merge_results(results: list[ReplayResult], skipped: int) -> ReplayResult:
    """One total from the workers' (each read every event; each judged its own rules)."""
    merged = ReplayResult()
    # Every worker reads every event; one whose body is malformed is left out only by
    # the workers that decode it, so the smallest count is the one process's count.
    merged.events = min(r.events for r in results)
    merged.skipped = skipped
    merged.late = max(r.late for r in results)
    merged.duplicates = max(r.duplicates for r in results)
    firsts = [r.first_ns for r in results if r.first_ns is not None]
    lasts = [r.last_ns for r in results if r.last_ns is not None]
    merged.first_ns = min(firsts) if firsts else None
    merged.last_ns = max(lasts) if lasts else None
    merged.ordering = next((r.ordering for r in results if r.ordering), None)
    for r in results:
        merged.alerts += r.alerts
        merged.per_rule.update(r.per_rule)
    return merged


def replay_parallel(
    path: str,
    rules: Sequence[CompiledRule],
    jobs: int,
    *,
    on_skip: Callable[[str], None],
    on_alert: Callable[[Alert], None] | None,
    on_alert_json: Callable[[str], None] | None = None,
    lateness_ns: int = DEFAULT_LATENESS_NS,
    progress: Callable[[ReplayResult], None] | None = None,
    tmp_dir: str | Path | None = None,
) -> ReplayResult:
    """``replay_file(path, lambda: Engine(rules))`` with the rules over ``jobs`` forked
    workers: the same alerts, in the same order, and the same totals (``on_alert_json``
    as ``replay_file``'s)."""
    shares = split_rules(rules, jobs)
    rank = {rule.id: i for i, rule in enumerate(rules)}
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="alerting-jobs-", dir=tmp_dir) as tmp:
        work = Path(tmp)
        source = spool_stdin(work / "stdin") if path == "-" else Path(path)
        workers: list[tuple[BaseProcess, Connection]] = []
        counters: list[_Counter] = []
        try:
            for n, share in enumerate(shares):
                parent_end, child_end = context.Pipe(duplex=False)
                seen = context.Value("q", 0, lock=False)
                worker_tmp = work / f"w{n}"
                worker_tmp.mkdir()
                process = context.Process(
                    target=_work,
                    args=(share, rank, source, work / f"w{n}.alerts", worker_tmp, lateness_ns),
                    kwargs={"events_seen": seen, "conn": child_end},
                    daemon=True,
                )
                process.start()
                child_end.close()
                workers.append((process, parent_end))
                counters.append(seen)
            outcomes = _collect(workers, counters, progress)
            failed = [o.error for o in outcomes if o.error is not None]
            if failed:
                raise AlertingError(failed[0].splitlines()[0]) from None
            seen_skips: set[str] = set()
            for outcome in outcomes:
                for message in outcome.skips:
                    if message not in seen_skips:
                        seen_skips.add(message)
                        on_skip(message)
            results = [o.result for o in outcomes if o.result is not None]
            merged = _merge_results(results, len(seen_skips))
            streams = [_read_keyed(work / f"w{n}.alerts") for n in range(len(shares))]
            for _key, text in heapq.merge(*streams, key=lambda record: record[0]):
                if on_alert_json is not None:
                    on_alert_json(text)
                if on_alert is not None:
                    on_alert(Alert(**jsonutil.loads(text)))
            return merged
        finally:
            for worker, conn in workers:
                conn.close()
                if worker.is_alive():
                    worker.kill()
                worker.join()


def _collect(
    workers: list[tuple[BaseProcess, Connection]],
    counters: list[_Counter],
    progress: Callable[[ReplayResult], None] | None,
) -> list[_Outcome]:
    """Wait for every worker's outcome, reporting the slowest worker's progress."""
    outcomes: dict[int, _Outcome] = {}
    pending = {id(conn): n for n, (_process, conn) in enumerate(workers)}
    while pending:
        for ready in wait([workers[n][1] for n in pending.values()], timeout=_POLL_S):
            n = pending.pop(id(ready))
            try:
                outcomes[n] = workers[n][1].recv()
            except EOFError:
                code = workers[n][0].exitcode
                outcomes[n] = _Outcome(None, [], f"replay worker {n} died (exit code {code})")
        if progress is not None and pending:
            progress(ReplayResult(events=min(c.value for c in counters)))
    return [outcomes[n] for n in range(len(workers))]

"""``alerting replay --jobs N``: the work spread over N worker processes, one answer.

Each worker replays the whole file with ``replay.replay_file`` through its ``Job``
(``plan_jobs``): the rules whose state is all per user run in every worker, over the
events of its share of the users (``Partition``: a hash of the group field most of the
work groups by); the other rules are spread whole, by weight. Its reader leaves out what
its rules cannot match, and the parent merges the workers' alerts into the order one
process gives. That order is well defined: ``replay_file`` evaluates events strictly in
``(time, id)`` order (it sorts the input when it is not), and for one event the engine
raises alerts in rule order. So each alert is keyed by the ``(time, id)`` of the event it
was raised on, its rule's place in the whole rule list and its place in its worker's
output, and a heap merge of the workers' outputs is byte-identical to ``--jobs 1``.

Workers are forked (compiled rules and templates are not picklable, and a fork shares
them for free); where the platform cannot fork, replay runs in one process. Rules never
share state in the engine, and a group's events all reach one worker, so the split only
balances the work. The one state a baseline keeps over all its groups, when it started
learning, is guessed from the input's first events and checked against what the workers
met (``replay_parallel``); a wrong guess is replayed again from the true start.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing
import os
import pickle
import tempfile
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine, Route
from alerting.engine.fields import MISSING, Getter
from alerting.engine.reads import first_field
from alerting.engine.rule import CompiledRule
from alerting.engine.types import (
    DistinctSpec,
    NewValueSpec,
    SequenceSpec,
    ThresholdSpec,
    TravelSpec,
)
from alerting.errors import AlertingError
from alerting.events import Event
from alerting.replay import DEFAULT_LATENESS_NS, ReplayResult, replay_file, spool_stdin
from alerting.replay_shape import FIRST_EVENTS, check_export
from alerting.source.files import first_events

__all__ = [
    "AUTO_MIN_BYTES",
    "Job",
    "Partition",
    "can_fork",
    "default_jobs",
    "learning_starts",
    "owner",
    "plan_jobs",
    "replay_parallel",
    "rule_weights",
    "split_rules",
]

log = logging.getLogger(__name__)

# Below this input size, starting workers costs more than it saves (about 0.1 s each).
AUTO_MIN_BYTES = 64 << 20
_OWNER_CACHE_LIMIT = 1 << 16
SAMPLE_EVENTS = 4096  # the input's first events, parsed whole to weigh the split (~30 ms)
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


# The split is weighed on the input's first events (``sample_events``): what a rule
# costs depends on how many events it meets, which differs by org (benchmarks/README.md,
# "--jobs"). Microseconds one matching event costs a rule of each kind, beyond the read
# every worker pays, measured per rule on both 200k benchmark files:
_MATCH_US: dict[type, float] = {
    SequenceSpec: 12.0,
    DistinctSpec: 10.0,
    TravelSpec: 6.0,
    ThresholdSpec: 6.0,
    NewValueSpec: 5.0,
}
# Aggregations that keep all their state per group (see _per_group).
_PER_GROUP_KINDS = (ThresholdSpec, DistinctSpec, TravelSpec, SequenceSpec)
_OTHER_MATCH_US = 4.0  # a digest or a rule without aggregation
_EVENT_US = 0.3  # what a rule adds to every event it does not match (head fields, condition)


def _weight(rule: CompiledRule) -> int:
    """A rule's share of replay work when there is no sample to weigh by: travel,
    sequence and baseline (new_value) rules hold each login they meet, so they go to
    different workers first; the rest weigh by how many event types they read."""
    spec = rule.aggregation
    if isinstance(spec, TravelSpec | SequenceSpec):
        return 16
    if isinstance(spec, NewValueSpec):
        return 12
    types = rule.event_types
    return 8 if types is None else min(len(types), 4)


def rule_weights(rules: Sequence[CompiledRule], sample: Sequence[Event]) -> list[float]:
    """Each rule's estimated replay cost: its matches among ``sample`` (whole events) at
    its kind's price (``_weight`` when there is no sample)."""
    if not sample:
        return [float(_weight(rule)) for rule in rules]
    engine = Engine(list(rules))
    matches = Counter(rule_id for e in sample for rule_id in engine.matched_rules(e.raw))
    base = _EVENT_US * len(sample)
    return [
        base + matches[rule.id] * _MATCH_US.get(type(rule.aggregation), _OTHER_MATCH_US)
        for rule in rules
    ]


def learning_starts(rules: Sequence[CompiledRule], sample: Sequence[Event]) -> dict[str, int]:
    """When each baseline (new_value) rule starts learning, judged from ``sample``: its
    first hit with a value among them, in time order. A guess for the whole input,
    which ``replay_parallel`` checks against what the workers met."""
    baselines = [rule for rule in rules if isinstance(rule.aggregation, NewValueSpec)]
    if not baselines or not sample:
        return {}
    engine = Engine(baselines)
    with engine.warmup():  # nothing to alert on, only to learn when learning starts
        for event in sorted(sample, key=lambda e: (e.time_ns, e.id)):
            engine.process(event)
    found = {rule_id: agg.learning_start for rule_id, agg in engine.baselines().items()}
    return {rule_id: start for rule_id, start in found.items() if start is not None}


def split_rules(
    rules: Sequence[CompiledRule], weights: Sequence[float], jobs: int
) -> list[list[CompiledRule]]:
    """``rules`` in at most ``jobs`` non-empty shares of about equal ``weights``
    (``rule_weights``: heaviest first into the lightest share); each share keeps the
    rules' order."""
    jobs = max(1, min(jobs, len(rules)))
    shares: list[list[int]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for index in sorted(range(len(rules)), key=lambda i: -weights[i]):
        lightest = load.index(min(load))
        shares[lightest].append(index)
        load[lightest] += weights[index]
    return [[rules[i] for i in sorted(share)] for share in shares if share]


@dataclass(frozen=True, slots=True)
class Partition:
    """Worker ``index`` of ``count`` meets, for the partitioned rules, only the events
    whose value at ``path`` hashes to it. Every event of one group has the same value
    there (the path is in each partitioned rule's group), so a group's whole history
    is in one worker."""

    path: str
    getter: Getter
    index: int
    count: int
    # verdicts per text value (every event asks; values are attacker-chosen: bounded)
    _mine: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def owns(self, raw: dict[str, Any]) -> bool:
        value = self.getter(raw)
        if type(value) is str:
            mine = self._mine.get(value)
            if mine is None:
                if len(self._mine) >= _OWNER_CACHE_LIMIT:
                    self._mine.clear()
                mine = self._mine[value] = owner(value, self.count) == self.index
            return mine
        return owner(value, self.count) == self.index


def owner(value: object, count: int) -> int:
    """Which of ``count`` partitions a group value belongs to: the same for equal values
    in every process (CRC-32, not ``hash()``, which is salted per process)."""
    if type(value) is str:
        data = value.encode("utf-8", "surrogatepass")
    else:
        data = jsonutil.dumps([None if value is MISSING else value], sort_keys=True).encode()
    return zlib.crc32(data) % count


@dataclass(frozen=True, slots=True)
class Job:
    """What one worker replays: ``rules`` (in rule order), of which those in
    ``partitioned`` meet only ``partition``'s events; the partitioned baselines learn
    from ``learning_starts`` on."""

    rules: list[CompiledRule]
    partitioned: frozenset[str] = frozenset()
    partition: Partition | None = None
    learning_starts: dict[str, int] = field(default_factory=dict)


def _per_group(rule: CompiledRule, starts: Mapping[str, int]) -> bool:
    """Whether the rule's state is all per group, so that its groups may be spread over
    workers. Windows and realert are per group; a baseline (new_value) also has one
    learning start over all its groups, which a worker is told (``starts``); a digest
    has one period over all groups, so it is never spread."""
    if not rule.group_by:
        return False
    spec = rule.aggregation
    if isinstance(spec, NewValueSpec):
        return rule.id in starts
    return spec is None or isinstance(spec, _PER_GROUP_KINDS)


def _partition_path(
    rules: Sequence[CompiledRule], weights: Sequence[float], starts: Mapping[str, int]
) -> tuple[str, Getter] | None:
    """The group field the most weight of per-group rules groups by (the user, for the
    pack), with its getter; None when no rule can be partitioned."""
    totals: dict[str, float] = {}
    getters: dict[str, Getter] = {}
    for rule, weight in zip(rules, weights, strict=True):
        if not _per_group(rule, starts):
            continue
        for path, getter in rule.group_by:
            if first_field(path) is not None and path not in getters:
                getters[path] = getter
            if path in getters:
                totals[path] = totals.get(path, 0.0) + weight
    if not totals:
        return None
    best = max(totals, key=lambda path: totals[path])  # the first of equals: rule order
    return best, getters[best]


def plan_jobs(
    rules: Sequence[CompiledRule],
    jobs: int,
    sample: Sequence[Event] = (),
    starts: Mapping[str, int] | None = None,
    weights: Sequence[float] | None = None,
) -> list[Job]:
    """The work of ``jobs`` workers, of about equal weight (``rule_weights``).

    The rules whose state is all per group and whose group holds the partition field
    (``_partition_path``: the user, for the pack) run in every worker, each worker
    meeting the events of its share of the users (``Partition``). That spreads the
    pack's costliest rules (brute-force-success, travel, the baselines), which no rule
    split can balance, and the decoding of the events they meet. The other rules are
    spread whole (``split_rules``). ``starts``: the baselines' learning starts
    (default: ``learning_starts`` of the sample); a baseline without one stays whole.
    ``weights``: ``rule_weights(rules, sample)`` when already weighed.
    """
    if weights is None:
        weights = rule_weights(rules, sample)
    if starts is None:
        starts = learning_starts(rules, sample)
    found = _partition_path(rules, weights, starts) if jobs > 1 else None
    if found is None:
        return [Job(share) for share in split_rules(rules, weights, jobs)]
    path, getter = found
    ids = frozenset(
        r.id for r in rules if _per_group(r, starts) and path in {p for p, _g in r.group_by}
    )
    whole = [(r, w) for r, w in zip(rules, weights, strict=True) if r.id not in ids]
    shares = split_rules([r for r, _w in whole], [w for _r, w in whole], jobs)
    shares += [[] for _ in range(jobs - len(shares))]
    order = {r.id: i for i, r in enumerate(rules)}
    partitioned = [r for r in rules if r.id in ids]
    assumed = {rule_id: start for rule_id, start in starts.items() if rule_id in ids}
    return [
        Job(
            sorted([*share, *partitioned], key=lambda r: order[r.id]),
            ids,
            Partition(path, getter, n, jobs),
            assumed,
        )
        for n, share in enumerate(shares)
    ]


class _WorkerEngine(Engine):
    """A worker's engine: it notes, for each alert it raises, the event it was raised
    on (the parent merges by that), and routes an event of another worker's partition
    through its whole rules only."""

    def __init__(self, job: Job, rank: dict[str, int]) -> None:
        super().__init__(job.rules)
        self._rank = rank
        self.keys: list[_Key] = []
        self._partition = job.partition
        whole = {rule.id for rule in self.rules} - job.partitioned
        self._others = self.restricted_to(whole) if job.partition is not None else self
        baselines = self.baselines()
        for rule_id, start in job.learning_starts.items():
            baselines[rule_id].assume_start(start)

    def first_hits(self) -> dict[str, int]:
        """Per partitioned baseline, the earliest hit with a value this worker met."""
        found = {rule_id: agg.first_hit_ns for rule_id, agg in self.baselines().items()}
        return {rule_id: t for rule_id, t in found.items() if t is not None}

    def route(self, raw: dict[str, Any]) -> Route | None:
        # Engine.route(self, ...), not super(): this runs for every line a worker reads
        partition = self._partition
        if partition is None or partition.owns(raw):
            return Engine.route(self, raw)
        return self._others.route(raw)

    def condition_fields(self) -> frozenset[str] | None:
        fields = super().condition_fields()
        if fields is None or self._partition is None:
            return fields
        top = first_field(self._partition.path)
        assert top is not None  # _partition_path keeps only paths with a top field
        return fields | {top}  # the head tells the partition

    def process(self, event: Event, route: Route | None = None) -> list[Alert]:
        if route is None:  # found here, so that the partition decides it too
            route = self.route(event.raw)
            if route is None:
                return []
        alerts = Engine.process(self, event, route)
        if alerts:
            for alert in alerts:
                key = (event.time_ns, event.id, self._rank[alert.rule], len(self.keys))
                self.keys.append(key)
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
    # the earliest hit with a value of each baseline it met (see plan_jobs, replay_parallel)
    first_hits: dict[str, int] = field(default_factory=dict)


def _work(
    job: Job,
    rank: dict[str, int],
    path: Path,
    out_path: Path,
    tmp_dir: Path,
    lateness_ns: int,
    events_seen: _Counter,
    conn: Connection,
) -> None:
    """One worker: replay ``path`` through ``job``; alerts (keyed) to ``out_path``."""
    skips: list[str] = []
    try:
        engines: list[_WorkerEngine] = []

        def make_engine() -> Engine:
            engines.append(_WorkerEngine(job, rank))
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
            )
        conn.send(_Outcome(result, skips, first_hits=engines[-1].first_hits()))
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
        for rule_id, summary in r.per_rule.items():
            known = merged.per_rule.get(rule_id)
            if known is None:
                merged.per_rule[rule_id] = summary
            else:  # a partitioned rule: each worker judged its share of the groups
                known.alerts += summary.alerts
                known.suppressed += summary.suppressed
                known.groups |= summary.groups
                for day, count in summary.per_day.items():
                    known.per_day[day] = known.per_day.get(day, 0) + count
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
    rank = {rule.id: i for i, rule in enumerate(rules)}
    with tempfile.TemporaryDirectory(prefix="alerting-jobs-", dir=tmp_dir) as tmp:
        work = Path(tmp)
        source = spool_stdin(work / "stdin") if path == "-" else Path(path)
        sample = first_events(source, SAMPLE_EVENTS)
        check_export(sample[:FIRST_EVENTS], rules, "<stdin>" if path == "-" else path)
        weights = rule_weights(rules, sample)
        plan = plan_jobs(rules, jobs, sample, weights=weights)
        for attempt in itertools.count():
            outcomes = _run_workers(plan, rank, source, work / str(attempt), lateness_ns, progress)
            starts = _true_starts(plan, outcomes)
            if starts is None:
                break
            # The sample's guess of when a spread baseline starts learning was wrong (its
            # first hit lay beyond the sample): replay again from the true start, which
            # the workers' first hits give exactly; after that, keep baselines whole.
            log.info(
                "replay --jobs: a baseline's first hit lay beyond the input's first %d "
                "events; replayed again from its true learning start",
                len(sample),
            )
            plan = plan_jobs(rules, jobs, sample, starts if attempt == 0 else {}, weights)
        seen_skips: set[str] = set()
        for outcome in outcomes:
            for message in outcome.skips:
                if message not in seen_skips:
                    seen_skips.add(message)
                    on_skip(message)
        results = [o.result for o in outcomes if o.result is not None]
        merged = _merge_results(results, len(seen_skips))
        streams = [_read_keyed(work / str(attempt) / f"w{n}.alerts") for n in range(len(plan))]
        for _key, text in heapq.merge(*streams, key=lambda record: record[0]):
            if on_alert_json is not None:
                on_alert_json(text)
            if on_alert is not None:
                on_alert(Alert(**jsonutil.loads(text)))
        return merged


def _true_starts(plan: list[Job], outcomes: list[_Outcome]) -> dict[str, int] | None:
    """None when every worker learnt from the true start; else the true starts (each
    spread baseline's earliest hit over all workers, which one process starts at)."""
    assumed = plan[0].learning_starts
    true: dict[str, int] = {}
    for outcome in outcomes:
        for rule_id, t in outcome.first_hits.items():
            if rule_id in assumed and (rule_id not in true or t < true[rule_id]):
                true[rule_id] = t
    return None if true == assumed else true


def _run_workers(
    plan: list[Job],
    rank: dict[str, int],
    source: Path,
    work: Path,
    lateness_ns: int,
    progress: Callable[[ReplayResult], None] | None,
) -> list[_Outcome]:
    """Run one worker per job over ``source``; their outcomes (alerts in ``work``)."""
    context = multiprocessing.get_context("fork")
    work.mkdir()
    workers: list[tuple[BaseProcess, Connection]] = []
    counters: list[_Counter] = []
    try:
        for n, job in enumerate(plan):
            parent_end, child_end = context.Pipe(duplex=False)
            seen = context.Value("q", 0, lock=False)
            worker_tmp = work / f"w{n}"
            worker_tmp.mkdir()
            process = context.Process(
                target=_work,
                args=(job, rank, source, work / f"w{n}.alerts", worker_tmp, lateness_ns),
                kwargs={"events_seen": seen, "conn": child_end},
                daemon=True,
            )
            process.start()
            child_end.close()
            workers.append((process, parent_end))
            counters.append(seen)
        outcomes = _collect(workers, counters, progress)
    finally:
        for worker, conn in workers:
            conn.close()
            if worker.is_alive():
                worker.kill()
            worker.join()
    failed = [o.error for o in outcomes if o.error is not None]
    if failed:
        raise AlertingError(failed[0].splitlines()[0]) from None
    return outcomes


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

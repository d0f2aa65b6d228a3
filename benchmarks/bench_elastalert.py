"""One threshold rule against ElastAlert 2's FrequencyRule: the rule logic, same events.

ElastAlert leaves the search to Elasticsearch: its rule sees only the hits of the rule's
query, parsed by the client. So both sides get the failed logins of the same file (the
events ``benchmarks/rules/threshold/bench-threshold.yaml``'s condition accepts), in
time order, parsed before the clock starts, and the figure is what each does with them:

- ElastAlert 2 (2.31.0, in its own virtualenv, a subprocess: ``elastalert_side.py``):
  ``FrequencyRule`` configured as the YAML (``num_events`` = count, ``timeframe`` =
  within, ``query_key`` = by), fed as its run loop feeds it: per query segment
  (``buffer_time``, 15 minutes as in its example config) ``add_data`` with the
  segment's hits (pages of ``max_query_size`` 10,000), then ``garbage_collect``.
- ours: ``Engine.process`` of that rule per event, ``Engine.advance`` at each segment's
  end, alerts built (realert applied). The events are as ``alerting replay`` hands them
  to the engine (decoded by the replay's reader in the fields the rules read); a second
  figure gives it plain dicts, as the service's API source does. ``process`` is not told
  the event's route, so it also evaluates the condition that Elasticsearch evaluated
  for ElastAlert.

Times are CPU seconds (``time.process_time``) of each process, best of the repeats, the
two sides alternated; the ratio is taken within the run. The input built before the
clock is frozen out of the garbage collector's way on both sides (``gc.freeze``): neither
holds a whole backtest's hits at once when it runs. Both must raise the same
matches: ElastAlert's, with the rule's ``realert`` applied on event time, are compared
with our alerts (the user and the triggering event).

    python -m benchmarks.bench_elastalert [--repeats R]   # `make bench-elastalert`
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.alert import Alert
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.engine.types import ThresholdSpec
from alerting.events import Event, LazyEvent, identify
from alerting.replay import read_for_replay
from benchmarks.common import NOT_MEASURED, ROOT, THRESHOLD_RULE, Report, rate
from benchmarks.data import ensure_file

EA_VENV = ROOT / "benchmarks" / ".venv-elastalert"
EA_PYTHON = EA_VENV / "bin" / "python"
EA_READY = EA_VENV / ".installed"  # `make bench-elastalert`'s stamp: installed whole
EA_SIDE = Path(__file__).resolve().parent / "elastalert_side.py"
TARGET_RATIO = 30.0  # issue 14: one threshold rule >= 30x ElastAlert 2's rule logic
EVENTS = 200_000
MIX = "portal"  # mostly portal logins, ~12% of them failed
MINUTE_NS = 60 * 10**9
SEGMENT_NS = 15 * MINUTE_NS  # ElastAlert's buffer_time (its example config)
PAGE = 10_000  # ElastAlert's max_query_size default

Segment = tuple[int, int]  # (end in ns, events in it)


@dataclass
class Side:
    """One side's best run: CPU seconds and its matches as (user, trigger event id)."""

    cpu_s: float
    matches: list[tuple[str, str]]
    raw_matches: int  # before realert


def failed_logins(path: Path, rule: CompiledRule) -> list[bytes]:
    """The lines of ``path`` the rule's condition accepts (its query's hits), in time
    order (time, then id: the order Elasticsearch sorts them by ``timestamp``)."""
    engine = Engine([rule])
    kept: list[tuple[int, str, bytes]] = []
    with open(path, "rb") as fh:
        for line in fh:
            raw = jsonutil.loads(line)
            if engine.route(raw) is not None:
                kept.append((*identify(raw), line))
    kept.sort(key=lambda item: (item[0], item[1]))
    return [line for _t, _id, line in kept]


def segments(times_ns: list[int], size_ns: int) -> list[Segment]:
    """The query ranges of ElastAlert's run loop over these (sorted) times: consecutive
    ``size_ns`` windows from the first event's, each with its events (empty ones too)."""
    if not times_ns:
        return []
    out: list[Segment] = []
    end = times_ns[0] + size_ns
    count = 0
    for t in times_ns:
        while t >= end:
            out.append((end, count))
            end += size_ns
            count = 0
        count += 1
    out.append((end, count))
    return out


def write_plan(
    directory: Path, rule: CompiledRule, lines: list[bytes], segs: list[Segment]
) -> tuple[Path, Path]:
    """The ElastAlert side's input: the rule and segments (JSON), and the events."""
    spec = rule.aggregation
    assert isinstance(spec, ThresholdSpec)
    assert len(spec.by) == 1
    plan = {
        "name": rule.id,
        "num_events": spec.count,
        "timeframe_s": spec.within.total_seconds(),
        "query_key": spec.by[0],
        "timestamp_field": "timestamp",
        "index": "jumpcloud-di",
        "segments": [[_iso(end), [min(PAGE, n - i) for i in range(0, n, PAGE)]] for end, n in segs],
    }
    plan_path, events_path = directory / "plan.json", directory / "events.jsonl"
    plan_path.write_text(json.dumps(plan))
    events_path.write_bytes(b"".join(lines))
    return plan_path, events_path


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{rest // 1000:06d}Z"


@contextmanager
def elastalert_side(plan: Path, events: Path) -> Iterator[subprocess.Popen[str]]:
    """The ElastAlert 2 process (its own venv), ready for ``run`` lines."""
    proc = subprocess.Popen(
        [str(EA_PYTHON), str(EA_SIDE), str(plan), str(events)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=60)


def elastalert_run(proc: subprocess.Popen[str], mode: str, realert_ns: int) -> Side:
    """One timed FrequencyRule pass in the ElastAlert process: ``rule`` (its hits
    processed already) or ``hits`` (``process_hits`` timed too)."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(f"run {mode}\n")
    proc.stdin.flush()
    answer = proc.stdout.readline()
    if not answer:
        raise RuntimeError("the ElastAlert side exited (see its stderr above)")
    result = json.loads(answer)
    raw = [(user, stamp, event_id) for user, stamp, event_id in result["matches"]]
    return Side(result["cpu_s"], with_realert(raw, realert_ns), len(raw))


def with_realert(matches: list[tuple[str, str, str]], realert_ns: int) -> list[tuple[str, str]]:
    """ElastAlert's matches with the rule's realert applied per user on event time, as
    our engine applies it (ElastAlert's own silence runs on the wall clock, which in a
    backtest of past events would silence every match after a user's first)."""
    from alerting.events import parse_timestamp

    last: dict[str, int] = {}
    out: list[tuple[str, str]] = []
    for user, stamp, event_id in matches:
        t = parse_timestamp(stamp)
        previous = last.get(user)
        if previous is not None and abs(t - previous) < realert_ns:
            continue
        last[user] = t if previous is None else max(previous, t)
        out.append((user, event_id))
    return out


def replay_events(lines_path: Path, rules: list[CompiledRule]) -> list[Event]:
    """The events as ``alerting replay`` hands them to ``Engine.process``: read by its
    reader, decoded in the fields the rules read (``LazyEvent.parsed``)."""
    engine = Engine(rules)
    fields = engine.fields_read()
    project = jsonutil.projection_decoder(fields) if fields is not None else None
    out: list[Event] = []
    for event in read_for_replay(lines_path, engine, on_skip=lambda _m: None):
        parsed = event.parsed(project) if type(event) is LazyEvent else event
        assert parsed is not None
        out.append(parsed)
    return out


def dict_events(lines: list[bytes]) -> list[Event]:
    """The events as plain dicts, as the service's API source builds them."""
    return [Event.from_raw(jsonutil.loads(line)) for line in lines]


def engine_run(
    items: Sequence[Any],
    segs: list[Segment],
    rules: list[CompiledRule],
    build: Callable[[Any], Event] | None = None,
) -> Side:
    """One timed pass of our engine over ``items``, advanced at each segment's end:
    events, or parsed dicts that ``build`` makes events of (timed too)."""
    engine = Engine(rules)
    batches: list[tuple[int, Sequence[Any]]] = []
    at = 0
    for end, n in segs:
        batches.append((end, items[at : at + n]))
        at += n
    process = engine.process
    alerts: list[Alert] = []
    gc.collect()
    gc.freeze()  # the input, built before the clock: as elastalert_side.py does
    start = time.process_time()
    for end, batch in batches:
        for item in batch if build is None else map(build, batch):
            raised = process(item)
            if raised:
                alerts.extend(raised)
        engine.advance(end)
    cpu_s = time.process_time() - start
    gc.unfreeze()
    stats = engine.stats[rules[0].id]
    matches = [(str(next(iter(a.group.values()))), a.event_ids[-1]) for a in alerts]
    return Side(cpu_s, matches, stats.alerts + stats.suppressed)


def run(repeats: int, events: int = EVENTS, mix: str = MIX) -> Report:
    report = Report(f"one threshold rule vs ElastAlert 2's FrequencyRule (best of {repeats})")
    if not EA_READY.exists():
        report.add("ratio ours / ElastAlert 2", NOT_MEASURED)
        return report
    path = ensure_file(events, mix)
    rules = load_rules([THRESHOLD_RULE])
    rule = rules[0]
    spec = rule.aggregation
    assert isinstance(spec, ThresholdSpec)
    lines = failed_logins(path, rule)
    segs = segments([identify(jsonutil.loads(line))[0] for line in lines], SEGMENT_NS)
    n = len(lines)
    report.add("input", f"{path.name}: {n:,} failed logins (the rule's hits) of {events:,}")
    report.add(
        "rule",
        f"{rule.id}: {spec.count} within {spec.within} by {', '.join(spec.by)}, realert "
        f"{rule.realert_ns // MINUTE_NS}m; ElastAlert: frequency, the same num_events, "
        "timeframe, query_key",
    )
    report.add("query segments", f"{len(segs)} of {SEGMENT_NS // MINUTE_NS} min (buffer_time)")
    # the best run of each: ElastAlert's rule logic, and with process_hits; ours on the
    # replay's events, on plain dicts, and on parsed dicts made events in the timing
    best: dict[str, Side] = {}

    def keep(name: str, side: Side) -> None:
        if name not in best or side.cpu_s < best[name].cpu_s:
            best[name] = side

    with tempfile.TemporaryDirectory(prefix="bench-ea-") as tmp:
        plan, events_path = write_plan(Path(tmp), rule, lines, segs)
        with elastalert_side(plan, events_path) as proc:
            for _ in range(repeats):
                keep("ea", elastalert_run(proc, "rule", rule.realert_ns))
                keep("ea_hits", elastalert_run(proc, "hits", rule.realert_ns))
                keep("replay", engine_run(replay_events(events_path, rules), segs, rules))
                keep("dicts", engine_run(dict_events(lines), segs, rules))
                parsed = [jsonutil.loads(line) for line in lines]
                keep("hits", engine_run(parsed, segs, rules, Event.from_raw))
    ea, ea_hits, replay = best["ea"], best["ea_hits"], best["replay"]
    dicts, hits = best["dicts"], best["hits"]
    report.add(
        "ElastAlert 2 FrequencyRule",
        f"{rate(n, ea.cpu_s)}, {ea.raw_matches} matches, "
        f"{len(ea.matches)} after realert on event time",
    )
    report.add(
        "ours, events as replay reads them",
        f"{rate(n, replay.cpu_s)}, {replay.raw_matches} matches, {len(replay.matches)} alerts",
    )
    report.add("ours, events as plain dicts", rate(n, dicts.cpu_s))
    report.add("ElastAlert 2 + process_hits", rate(n, ea_hits.cpu_s))
    report.add("ours + timestamps parsed", rate(n, hits.cpu_s))
    same = all(
        side.matches == ea.matches and side.raw_matches == ea.raw_matches for side in best.values()
    )
    report.add("same alerts (user, triggering event)", "yes" if same else _difference(ea, replay))
    ratio = ea.cpu_s / replay.cpu_s
    report.add(
        "ratio ours / ElastAlert 2, rule logic",
        f"{ratio:.1f}x (plain dicts: {ea.cpu_s / dicts.cpu_s:.1f}x)",
    )
    report.add("ratio, + timestamps parsed", f"{ea_hits.cpu_s / hits.cpu_s:.1f}x")
    report.check("same matches as ElastAlert 2", same)
    report.check(
        f"one threshold rule >= {TARGET_RATIO:.0f}x ElastAlert 2's FrequencyRule (rule logic)",
        ratio >= TARGET_RATIO,
    )
    return report


def _difference(ea: Side, ours: Side) -> str:
    only_ea = set(ea.matches) - set(ours.matches)
    only_ours = set(ours.matches) - set(ea.matches)
    return f"no: {len(only_ea)} only ElastAlert's, {len(only_ours)} only ours"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--mix", choices=("portal", "simulator"), default=MIX)
    args = parser.parse_args(argv)
    print(run(args.repeats, args.events, args.mix).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

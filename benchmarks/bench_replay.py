"""Replay throughput: the shipped pack and one threshold rule vs. a bare parse loop.

All three read the same cached JSONL file (simulator traffic). The bare loop only reads
lines and JSON-parses them (the floor for any Python replay); the replays run the real
path of ``alerting replay``: ``replay_file`` (reader -> reorder buffer -> duplicates ->
engine) -> each alert serialised to JSON. Ratios are taken within one run, so the machine cancels out.

    python -m benchmarks.bench_replay [--events N] [--repeats R] [--profile]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from alerting import jsonutil, replay
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.engine.rule import CompiledRule
from alerting.source.files import read_events
from benchmarks.common import PACK_RULES, THRESHOLD_RULE, Report, best_of, rate
from benchmarks.data import ensure_file

READ_BUFFER = 1 << 16  # alerting.source.files reads files in 64 KiB
TARGET_RATE = 100_000  # events/s through the full pack, one core
TARGET_RATIO = 0.25  # of the bare-parse rate


def bare_loop(path: Path) -> int:
    """Read and JSON-parse every line, nothing else."""
    loads = jsonutil.loads
    n = 0
    with open(path, "rb", buffering=READ_BUFFER) as fh:  # as the replay's reader reads
        for line in fh:
            loads(line)
            n += 1
    return n


def replay_file(path: Path, rules: list[CompiledRule]) -> tuple[int, int]:
    """(events, alerts) of a full replay of ``path`` through ``rules`` (loaded already:
    loading and compiling rules is a start-up cost, not a per-event one), the CLI's way:
    ``alerting.replay.replay_file`` (in-order path, duplicates dropped, alerts spooled)."""
    alerts = 0

    def on_alert(alert: object) -> None:
        nonlocal alerts
        alerts += 1
        alert.to_json()  # type: ignore[attr-defined]  # what `replay --output` writes

    result = replay.replay_file(
        path, lambda: Engine(rules), on_skip=lambda _message: None, on_alert=on_alert
    )
    return result.events, alerts


def run(events: int, repeats: int) -> Report:
    path = ensure_file(events)
    pack = load_rules([PACK_RULES])
    threshold = load_rules([THRESHOLD_RULE])
    report = Report(f"replay throughput ({events:,} simulator events, best of {repeats})")
    report.add("input", f"{path.name} ({path.stat().st_size / 1e6:,.0f} MB)")
    report.add("full pack", f"{len(pack)} rules from {PACK_RULES.name}/")
    # warm the page cache and the interpreter before timing anything
    for _ in itertools.islice(read_events(path, on_skip=lambda _m: None), 10_000):
        pass
    bare_s, n = best_of(repeats, lambda: bare_loop(path))
    alerts = {"pack": 0, "threshold": 0}

    def pack_run() -> int:
        count, alerts["pack"] = replay_file(path, pack)
        return count

    def threshold_run() -> int:
        count, alerts["threshold"] = replay_file(path, threshold)
        return count

    pack_s, n_pack = best_of(repeats, pack_run)
    one_s, n_one = best_of(repeats, threshold_run)
    bare_rate, pack_rate, one_rate = n / bare_s, n_pack / pack_s, n_one / one_s
    report.add("bare read + parse", rate(n, bare_s))
    report.add("replay, full pack", f"{rate(n_pack, pack_s)}, {alerts['pack']} alerts")
    report.add("replay, one threshold rule", f"{rate(n_one, one_s)}, {alerts['threshold']} alerts")
    report.add("ratio full pack / bare", f"{pack_rate / bare_rate:.3f}")
    report.add("ratio one rule / bare", f"{one_rate / bare_rate:.3f}")
    report.add("ratio full pack / one rule", f"{pack_rate / one_rate:.3f}")
    report.check(f"full pack >= {TARGET_RATE:,} events/s", pack_rate >= TARGET_RATE)
    report.check(f"full pack >= {TARGET_RATIO} x bare parse", pack_rate / bare_rate >= TARGET_RATIO)
    return report


def profile(events: int, top: int = 20) -> str:
    """cProfile of one full-pack replay: the functions with the most own time."""
    import cProfile
    import io
    import pstats

    path = ensure_file(events)
    profiler = cProfile.Profile()
    profiler.runcall(replay_file, path, load_rules([PACK_RULES]))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of a full-pack replay instead"
    )
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.events))
        return 0
    report = run(args.events, args.repeats)
    print(report.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

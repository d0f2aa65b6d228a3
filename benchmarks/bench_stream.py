"""Memory stays flat over a long replay (10,000,000 events by default), streamed.

A child process generates simulator traffic as JSONL into a pipe (no 10 GB file on
disk); this process replays it from stdin through the full shipped pack as
``alerting replay --events -`` does (strict, duplicates dropped; only the CLI's copy of
stdin to a temporary file is left out), sampling its resident memory every million events.
Flat means: after the first million (windows, baselines and caches filled), RSS grows by
less than 10%.

    python -m benchmarks.bench_stream [--events N] [--every N]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import time

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.replay import DEFAULT_LATENESS_NS, ReplayResult, read_for_replay, replay
from benchmarks.common import PACK_RULES, ROOT, Report, rss_bytes

FLAT_GROWTH = 0.10


def _generate(count: int) -> int:
    """Child process: write ``count`` generated events as JSONL to stdout."""
    from alerting import jsonutil
    from benchmarks.data import generated

    out = sys.stdout.buffer
    dumps = jsonutil.dumps
    batch: list[str] = []
    for raw in generated(count):
        batch.append(dumps(raw))
        if len(batch) >= 5_000:
            out.write(("\n".join(batch) + "\n").encode())
            batch.clear()
    if batch:
        out.write(("\n".join(batch) + "\n").encode())
    out.flush()
    return 0


def run(events: int, every: int) -> Report:
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_stream", "--generate", str(events)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdout is not None
    with contextlib.suppress(OSError, AttributeError):  # Linux: a 1 MiB pipe, fewer stalls
        fcntl.fcntl(child.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    samples: list[tuple[int, int]] = []
    next_sample = every

    def progress(result: ReplayResult) -> None:
        nonlocal next_sample
        if result.events >= next_sample:
            samples.append((result.events, rss_bytes()))
            next_sample += every

    engine = Engine(load_rules([PACK_RULES]))
    alerts = 0

    def on_alert(alert: object) -> None:
        nonlocal alerts
        alerts += 1

    stdin = os.dup(0)
    os.dup2(child.stdout.fileno(), 0)  # read_events("-") reads stdin, like the CLI
    started = time.perf_counter()
    try:
        result = replay(
            read_for_replay("-", engine, on_skip=lambda _m: None),
            engine,
            on_alert=on_alert,
            progress=progress,
            strict=True,  # as replay_file's first attempt: the generator is in time order
            dedupe_ns=DEFAULT_LATENESS_NS,
        )
    finally:
        os.dup2(stdin, 0)
        os.close(stdin)
        child.stdout.close()
        child.wait()
    seconds = time.perf_counter() - started
    report = Report(f"memory over a streamed replay ({result.events:,} events, full pack)")
    for n, rss in samples:
        report.add(f"RSS after {n:,} events", f"{rss / 1e6:,.0f} MB")
    report.add("RSS at the end (buffer drained)", f"{rss_bytes() / 1e6:,.0f} MB")
    if not samples:
        raise SystemExit("too few events for a sample: raise --events or lower --every")
    base = samples[0][1]
    peak = max(rss for _, rss in samples)
    growth = (peak - base) / base
    report.add("growth after the first sample", f"{growth * 100:+.1f}%")
    report.add("throughput", f"{result.events / seconds:,.0f} events/s")
    report.add("alerts", f"{alerts:,}")
    report.add("wall time", f"{seconds:,.0f} s (generator in a second process)")
    report.check(f"RSS flat (< {FLAT_GROWTH:.0%} growth)", growth < FLAT_GROWTH)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=1_000_000)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate is not None:
        return _generate(args.generate)
    print(run(args.events, args.every).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replaying an unsorted export: memory stays flat while it is sorted on disk.

The input is simulator traffic written newest first (what JumpCloud's own DI exporters
write), ``--events`` of it (10,000,000 by default: a ~10 GB file, written once and
cached under benchmarks/data/). It is replayed through the full shipped pack exactly as
``alerting replay --events F`` does (``replay_file``): the in-order attempt gives up at
the first event it cannot put back in order, the file is sorted into runs on disk and
the merged runs are replayed. A thread samples resident memory twice a second.

Flat means: the peak RSS of the whole run stays under a bound that does not grow with
the input (the sort holds one run, ``RUN_BYTES``, plus one block per run while merging).

    python -m benchmarks.bench_sort [--events N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import threading
import time
from pathlib import Path

from alerting import replay_sort
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.replay import ReplayResult, replay_file
from benchmarks.common import PACK_RULES, Report, rate, rss_bytes
from benchmarks.data import DATA_DIR, ensure_file

FLAT_BYTES = 600 * 10**6  # peak RSS bound, whatever the input's size
_BLOCK_LINES = 20_000


def newest_first(sorted_path: Path) -> Path:
    """``sorted_path`` written newest first, in bounded memory (blocks of lines, read
    from the end); cached beside it."""
    target = sorted_path.with_name(sorted_path.stem + "-newest-first.jsonl")
    if target.exists():
        return target
    offsets = [0]
    with open(sorted_path, "rb") as fh:
        for n, _line in enumerate(iter(fh.readline, b""), 1):
            if n % _BLOCK_LINES == 0:
                offsets.append(fh.tell())
        end = fh.tell()
    if offsets[-1] != end:
        offsets.append(end)
    partial = target.with_suffix(".partial")
    with open(sorted_path, "rb") as src, open(partial, "wb") as out:
        for start, stop in reversed(list(itertools.pairwise(offsets))):
            src.seek(start)
            lines = src.read(stop - start).splitlines(keepends=True)
            out.writelines(reversed(lines))
    os.replace(partial, target)
    return target


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stop.wait(0.5):
            rss = rss_bytes()
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - started, rss))


def run(events: int) -> Report:
    path = newest_first(ensure_file(events))
    rules = list(load_rules([PACK_RULES]))
    size = path.stat().st_size
    marks: dict[str, float] = {}
    sort_samples: list[tuple[int, int]] = []
    replay_samples: list[tuple[int, int]] = []
    every = max(events // 8, 1)

    def sorting(n: int) -> None:
        marks.setdefault("sort", time.perf_counter())
        if not sort_samples or n - sort_samples[-1][0] >= every:
            sort_samples.append((n, rss_bytes()))

    def progress(result: ReplayResult) -> None:
        if "sort" in marks:
            marks.setdefault("merge", time.perf_counter())
            if not replay_samples or result.events - replay_samples[-1][0] >= every:
                replay_samples.append((result.events, rss_bytes()))

    alerts = 0

    def on_alert(_alert: object) -> None:
        nonlocal alerts
        alerts += 1

    sampler = _Sampler()
    tmp = DATA_DIR / "sort-tmp"
    tmp.mkdir(exist_ok=True)
    before = rss_bytes()
    sampler.start()
    started = time.perf_counter()
    try:
        result = replay_file(
            path,
            lambda: Engine(rules),
            on_skip=lambda _m: None,
            on_alert=on_alert,
            progress=progress,
            sort_progress=sorting,
            tmp_dir=tmp,
        )
    finally:
        sampler.stop.set()
        sampler.join()
        shutil.rmtree(tmp, ignore_errors=True)
    done = time.perf_counter()
    sort_s = marks.get("merge", done) - marks.get("sort", started)
    merge_s = done - marks.get("merge", done)
    report = Report(f"replay of an unsorted input ({result.events:,} events, newest first)")
    report.add("input", f"{path.name} ({size / 1e9:,.1f} GB)")
    report.add("what replay did", result.ordering or "no sort (the input was in order)")
    report.add("sort: read + spill runs", f"{sort_s:,.0f} s, {rate(result.events, sort_s)}")
    report.add("merge runs + replay", f"{merge_s:,.0f} s, {rate(result.events, merge_s)}")
    report.add("total", f"{done - started:,.0f} s, {rate(result.events, done - started)}")
    for n, rss in sort_samples:
        report.add(f"RSS while sorting, {n:,} events", f"{rss / 1e6:,.0f} MB")
    for n, rss in replay_samples:
        report.add(f"RSS while replaying, {n:,} events", f"{rss / 1e6:,.0f} MB")
    report.add("RSS before / peak", f"{before / 1e6:,.0f} MB / {sampler.peak / 1e6:,.0f} MB")
    report.add("alerts", f"{alerts:,}")
    report.add("run size (RUN_BYTES)", f"{replay_sort.RUN_BYTES / 2**20:.0f} MiB")
    report.check(f"peak RSS < {FLAT_BYTES / 1e6:,.0f} MB", sampler.peak < FLAT_BYTES)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    print(run(args.events).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

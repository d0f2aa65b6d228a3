"""Memory per event held in windows: 1,000,000 simulator events held at once.

One threshold rule that never fires (count 100M within 30 days, by user) holds every
event it sees, so after feeding N events the windows hold N entries. The figure is the
growth of the process's resident memory (RSS) over that feed, divided by N: everything a
held entry costs, the event included. Entries are slim (``alerting.engine.held``): the
newest 5 of each group keep their whole JSON (alert samples), older ones their id, time
and the fields the rule's summary reads (this rule has no summary: none).

    python -m benchmarks.bench_memory [--events N] [--plain]

``--plain`` feeds plain events (raw dict trees, as from the stdlib parser) instead of
orjson events: held events are encoded once, so the figure should not change.
"""

from __future__ import annotations

import argparse
import gc

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event
from alerting.source.files import read_events
from benchmarks.common import HOLD_RULE, Report, rss_bytes
from benchmarks.data import ensure_file

TARGET_BYTES = 200 * 10**6  # for 1,000,000 held events (issue 14)


def run(events: int, plain: bool) -> Report:
    path = ensure_file(events)
    engine = Engine(load_rules([HOLD_RULE]), max_entries_per_rule=events + 1)
    source = read_events(path, on_skip=lambda _m: None)
    if plain:
        source = (Event(e.raw, e.time_ns, e.id) for e in source)
    gc.collect()
    before = rss_bytes()
    process = engine.process
    fed = 0
    for event in source:
        process(event)
        fed += 1
    gc.collect()
    after = rss_bytes()
    held = sum(s.matched for s in engine.stats.values())  # nothing fires, nothing evicted
    growth = after - before
    kind = ("plain events" if plain else "orjson events") + ", held slim"
    report = Report(f"memory held in windows ({held:,} events, {kind})")
    report.add("events fed", f"{fed:,}")
    report.add("events held", f"{held:,}")
    report.add("RSS before / after", f"{before / 1e6:,.0f} MB / {after / 1e6:,.0f} MB")
    report.add("RSS growth", f"{growth / 1e6:,.0f} MB")
    report.add("per held event", f"{growth / max(held, 1):,.0f} bytes")
    scaled = growth / max(held, 1) * 1_000_000
    report.add("for 1,000,000 events", f"{scaled / 1e6:,.0f} MB")
    if not plain:
        report.check("1,000,000 held events <= 200 MB", scaled <= TARGET_BYTES)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args(argv)
    print(run(args.events, args.plain).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

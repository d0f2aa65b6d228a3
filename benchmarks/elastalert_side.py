"""ElastAlert 2's side of ``bench_elastalert``: its FrequencyRule over the events it is sent.

Runs only in the separate virtualenv ``make bench-elastalert`` makes
(``benchmarks/.venv-elastalert``, elastalert2 2.31.0), never in the project's, as a
subprocess of ``benchmarks.bench_elastalert``: standard library and elastalert only, no
``alerting`` import (that venv has neither the project nor its dependencies).

    benchmarks/.venv-elastalert/bin/python benchmarks/elastalert_side.py PLAN EVENTS

PLAN is the rule and the query segments (JSON, written by ``bench_elastalert``); EVENTS
the events, one JSON line each, in time order, as Elasticsearch would return the rule's
query. Then, for each ``run`` line on stdin, it
builds the events as ElastAlert's run loop hands them to the rule (``process_hits``: the
``_source`` dict, its timestamp a ``datetime``, ``_id`` and ``_index`` folded in; not
timed, like our side's parse), builds a fresh FrequencyRule and times what the loop does
with them for each segment (``run_rule``: ``add_data`` per page of hits, then
``garbage_collect`` at the segment's end), and writes one JSON line: CPU seconds, events,
and each match's (query_key value, timestamp, _id). ``quit`` (or end of input) exits.
"""

from __future__ import annotations

import datetime
import gc
import json
import sys
import time
from typing import Any


def _start() -> float:
    """The clock's start, with the input built before it out of the garbage collector's
    way (``gc.freeze``): ElastAlert holds one query's hits at a time, not a backtest's
    (our side does the same)."""
    gc.collect()
    gc.freeze()
    return time.process_time()


def main(argv: list[str]) -> int:
    from elastalert.elastalert import ElastAlerter  # type: ignore[import-not-found]
    from elastalert.ruletypes import FrequencyRule  # type: ignore[import-not-found]
    from elastalert.util import lookup_es_key, ts_to_dt  # type: ignore[import-not-found]

    with open(argv[1], encoding="utf-8") as fh:
        header = json.load(fh)
    with open(argv[2], encoding="utf-8") as fh:
        lines = fh.readlines()
    ts_field = header["timestamp_field"]
    query_key = header["query_key"]
    # [[segment end (ISO), [hits per page, ...]], ...]: the query ranges of run_rule
    segments = [(ts_to_dt(end), pages) for end, pages in header["segments"]]

    def rule_config() -> dict[str, Any]:
        """What ElastAlert's loader makes of the rule's YAML, for what FrequencyRule reads."""
        return {
            "name": header["name"],
            "type": "frequency",
            "num_events": header["num_events"],
            "timeframe": datetime.timedelta(seconds=header["timeframe_s"]),
            "query_key": query_key,
            "timestamp_field": ts_field,
        }

    def sources() -> list[dict[str, Any]]:
        """The events as ``process_hits`` hands them on (a fresh copy per run: a match
        turns its event's timestamp back into a string, in place)."""
        out = []
        for line in lines:
            source = json.loads(line)
            source[ts_field] = ts_to_dt(source[ts_field])
            source["_id"] = source["id"]
            source["_index"] = header["index"]
            out.append(source)
        return out

    def hits() -> list[dict[str, Any]]:
        """The events as the Elasticsearch client returns them, before ``process_hits``."""
        return [
            {"_id": source["id"], "_index": header["index"], "_source": source}
            for source in map(json.loads, lines)
        ]

    def pages(data: list[dict[str, Any]]) -> list[tuple[Any, list[list[dict[str, Any]]]]]:
        """The batches ``run_rule`` hands the rule: each segment's pages of hits."""
        out = []
        at = 0
        for end, sizes in segments:
            batch = []
            for size in sizes:
                batch.append(data[at : at + size])
                at += size
            out.append((end, batch))
        return out

    for command in sys.stdin:
        mode = command.split()
        if mode not in (["run", "rule"], ["run", "hits"]):
            break
        rule = FrequencyRule(rule_config())
        if mode[1] == "rule":
            # the rule's logic: add_data per page, garbage_collect at each segment's end
            batches = pages(sources())
            start = _start()
            for end, batch in batches:
                for page in batch:
                    rule.add_data(page)
                rule.garbage_collect(end)
        else:
            # and the run loop's own step per hit before it (its timestamp parsed)
            batches = pages(hits())
            loop_rule = {"timestamp_field": ts_field, "ts_to_dt": ts_to_dt}
            start = _start()
            for end, batch in batches:
                for page in batch:
                    rule.add_data(ElastAlerter.process_hits(loop_rule, page))
                rule.garbage_collect(end)
        cpu_s = time.process_time() - start
        gc.unfreeze()
        matches = [[lookup_es_key(m, query_key), m[ts_field], m["_id"]] for m in rule.matches]
        sys.stdout.write(json.dumps({"cpu_s": cpu_s, "matches": matches}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

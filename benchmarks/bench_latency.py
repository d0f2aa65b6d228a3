"""Poll-to-notification latency: the service against the embedded DI simulator.

The real ``Service`` (config, store, engine, notifier) polls the simulator's HTTP API on
127.0.0.1 and delivers every alert to a webhook receiver on 127.0.0.1. Time is a manual
clock moved one poll interval per cycle, so each poll reads one new minute of live
traffic (attacks every few minutes); the latency measured is wall-clock time from the
start of the poll that read an attack's events to the receiver holding the
notification: fetch + evaluate + commit + deliver. (In production add the configured
lag and up to one poll interval of waiting; those are settings, not work.)

    python -m benchmarks.bench_latency [--polls N] [--users N]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from alerting.clock import ManualClock
from alerting.config import load_config
from alerting.service import Service
from benchmarks.common import PACK_RULES, ROOT, Report

TARGET_P95_S = 1.0
START = datetime(
    2026, 1, 6, 15, 0, tzinfo=UTC
)  # a Tuesday afternoon (busy hours in the US)  # a poll's alerts are out within a second of the poll starting


class _Receiver(BaseHTTPRequestHandler):
    arrivals: list[float] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).arrivals.append(time.perf_counter())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


CONFIG = """
source:
  kind: simulator
  poll_interval: 60s
  lag: 2m
  overlap: 5m
  start_from: 1h
  simulator: {{seed: 11, history: 2h, users: {users}}}
state: {{path: {state}}}
rules: {{paths: [{rules}]}}
templates: {{path: {templates}}}
channels:
  hook: {{type: webhook, url: "http://127.0.0.1:{port}/alerts"}}
routes:
  - channels: [hook]
delivery: {{group_wait: 0s}}
server: {{listen: "127.0.0.1:0"}}
logging: {{level: error}}
"""


def run(polls: int, users: int) -> Report:
    logging.getLogger("alerting").setLevel(logging.ERROR)
    _Receiver.arrivals = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rows: list[tuple[int, int, float, float, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(
            CONFIG.format(
                users=users,
                state=Path(tmp) / "state.db",
                rules=PACK_RULES,
                templates=ROOT / "templates",
                port=server.server_address[1],
            )
        )
        config = load_config(path)
        clock = ManualClock(START.timestamp())
        service = Service.from_config(config, config_path=str(path), clock=clock)
        service.open(serve=False)
        try:
            for _ in range(polls):
                seen = len(_Receiver.arrivals)
                start = time.perf_counter()
                outcome = service.poll_once()
                polled = time.perf_counter()
                service.deliver_until_idle()
                delivered = time.perf_counter()
                latencies = [t - start for t in _Receiver.arrivals[seen:]]
                rows.append(
                    (outcome.new, outcome.alerts, polled - start, delivered - polled, latencies)
                )
                clock.advance(60)
        finally:
            service.close()
            server.shutdown()
    first, steady = rows[0], rows[1:]
    report = Report(f"poll-to-notification latency ({polls} polls of 60s, {users} users)")
    report.add(
        "first poll (warm-up, 1h back)",
        f"{first[0]:,} events, {first[1]} alerts, poll {first[2]:.3f}s, delivery {first[3]:.3f}s",
    )
    events = sum(r[0] for r in steady)
    alerts = sum(r[1] for r in steady)
    lat = sorted(x for r in steady for x in r[4])
    polls_s = sorted(r[2] for r in steady)
    report.add("steady polls", f"{len(steady)}: {events:,} events, {alerts} alerts")
    report.add(
        "poll (fetch+evaluate+commit)",
        f"median {statistics.median(polls_s) * 1000:.0f} ms, max {polls_s[-1] * 1000:.0f} ms",
    )
    if lat:
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        report.add(
            "latency poll start -> webhook",
            f"median {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {lat[-1] * 1000:.0f} ms ({len(lat)} notifications)",
        )
        report.check(f"p95 latency < {TARGET_P95_S:.0f} s", p95 < TARGET_P95_S)
    else:
        report.check("steady polls delivered notifications", False)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--users", type=int, default=400)
    args = parser.parse_args(argv)
    print(run(args.polls, args.users).render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

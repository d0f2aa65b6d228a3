"""``alerting simulate``: serve the fake DI API, or ``--export`` its traffic and exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alerting import jsonutil
from alerting.clock import SystemClock, time_ns
from alerting.errors import AlertingError
from alerting.events import format_timestamp
from alerting.simulator.di_api import API_PREFIX, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, parse_faults
from alerting.simulator.embedded import EmbeddedSimulator, resolve_scenarios
from alerting.simulator.traffic import (
    DEFAULT_ATTACK_SLOT_NS,
    HOUR_NS,
    MINUTE_NS,
    SCENARIOS,
    TrafficGenerator,
    attacks_to_json,
    export_jsonl,
)


def export(
    path: Path,
    *,
    hours: float,
    seed: int,
    scenarios: list[str] | None,
    now_ns: int,
    users: int = 60,
    unenrolled_mfa: float = 0.0,
) -> int:
    """Write ``hours`` of traffic ending at ``now_ns`` as JSONL (gzip for ``.gz``), plus its
    attacks' ground truth (``F.truth.json``)."""
    history = int(hours * HOUR_NS)
    count = len(SCENARIOS) if scenarios is None else len(scenarios)
    # every enabled scenario at least once in short exports, every few hours in long ones
    slot = max(2 * MINUTE_NS, min(DEFAULT_ATTACK_SLOT_NS, int(history * 0.9) // max(1, count)))
    generator = TrafficGenerator(
        seed=seed,
        users=users,
        scenarios=scenarios,
        unenrolled_mfa=unenrolled_mfa,
        attack_slot_ns=slot,
        attack_anchor_ns=now_ns - history,
    )
    events = generator.generate(now_ns - history, now_ns)
    # an attack still under way at the end of the range is cut short: leave it out of the
    # ground truth, or a backtest would be expected to alert on half an attack
    attacks = [a for a in generator.attacks if a.end_ns < now_ns]
    truth = truth_path(path)
    try:
        written = export_jsonl(path, events)
        truth.write_text(attacks_to_json(attacks, events) + "\n", encoding="utf-8")
    except OSError as exc:
        raise AlertingError(f"cannot write {exc.filename or path}: {exc.strerror}") from None
    _say(
        f"wrote {written} events ({format_timestamp(now_ns - history)} .. "
        f"{format_timestamp(now_ns)}) to {path}\n"
        f"wrote the ground truth of {len(attacks)} injected attacks to {truth}"
    )
    return 0


def truth_path(path: Path) -> Path:
    """Where ``--export F`` writes the ground truth: ``F.truth.json``."""
    return path.with_name(path.name + ".truth.json")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _curl(url: str, api_key: str, start_ns: int) -> str:
    body = jsonutil.dumps(
        {"service": ["all"], "start_time": format_timestamp(start_ns), "limit": 100}
    )
    return (
        f"curl -sS -D - -X POST '{url}{API_PREFIX}/events' -H 'x-api-key: {api_key}' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def main(args: argparse.Namespace) -> int:
    """``alerting simulate``: serve the fake DI API, or ``--export`` the traffic and exit."""
    if args.hours <= 0:
        raise AlertingError("--hours must be positive, e.g. --hours 24")
    users = getattr(args, "users", 60)
    if users < 4:
        raise AlertingError(f"--users {users}: the simulated org needs at least 4 people")
    unenrolled = getattr(args, "unenrolled_mfa", 0.0)
    if not 0.0 <= unenrolled < 1.0:
        raise AlertingError("--unenrolled-mfa must be a share from 0 up to 1, e.g. 0.1")
    scenarios = resolve_scenarios(args.scenario)
    faults = parse_faults(args.fault or [])  # an unknown name is an error, never ignored
    clock = SystemClock()
    if args.export:
        if args.fault:
            raise AlertingError(
                "--fault shapes the API's answers, not the events: it has no effect with "
                "--export; drop it, or serve the API without --export"
            )
        return export(
            Path(args.export),
            hours=args.hours,
            seed=args.seed,
            scenarios=scenarios,
            now_ns=time_ns(clock),
            users=users,
            unenrolled_mfa=unenrolled,
        )
    sim = EmbeddedSimulator(
        clock=clock,
        seed=args.seed,
        history_ns=int(args.hours * HOUR_NS),
        scenarios=scenarios,
        faults=faults,
        users=users,
        unenrolled_mfa=unenrolled,
        host=args.host,
        port=args.port,
    )
    try:
        sim.start()
        start = time_ns(clock) - HOUR_NS
        info = [
            f"DI API simulator serving {len(sim.server)} events at {sim.url}",
            f"API key: {sim.api_key}",
            f"service account: client_id {DEMO_CLIENT_ID}, client_secret {DEMO_CLIENT_SECRET}, "
            f"token_url {sim.server.token_url}",
            f"organization: {sim.org_id}",
            f"scenarios: {', '.join(sim.generator.scenarios) or 'none'}",
            'first page of the last hour (repeat with "search_after": <X-Search_after '
            "header> in the body for the next page):",
            "  " + _curl(sim.url, sim.api_key, start),
            "Ctrl-C to stop",
        ]
        _say("\n".join(info))
        sim.serve_forever()
    except KeyboardInterrupt:
        sys.stderr.write("stopped\n")
    finally:
        sim.stop()
    return 0

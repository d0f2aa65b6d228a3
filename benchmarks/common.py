"""Shared benchmark helpers: the machine, timing, resident memory, result lines."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_RULES = Path(__file__).resolve().parent / "rules"
THRESHOLD_RULE = BENCH_RULES / "threshold"
HOLD_RULE = BENCH_RULES / "hold"
ALERT_HEAVY_RULE = BENCH_RULES / "alert-heavy"
ALERT_QUIET_RULE = BENCH_RULES / "alert-quiet"
PACK_RULES = ROOT / "rules"
# How a figure that could not be measured starts (run_all lists it, not a failure).
NOT_MEASURED_PREFIX = "not measured:"
# What bench_elastalert prints without ElastAlert's venv.
NOT_MEASURED = f"{NOT_MEASURED_PREFIX} run make bench-elastalert"


def machine() -> dict[str, str]:
    """What the figures were measured on (for benchmarks/README.md)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import orjson

        parser = f"orjson {orjson.__version__}"
    except ImportError:  # pragma: no cover
        parser = "json (stdlib)"
    try:
        import msgspec

        parser += f", msgspec {msgspec.__version__}"
    except ImportError:  # pragma: no cover
        parser += ", no msgspec (events parsed whole)"
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "json": parser,
    }


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def best_of_rounds(repeats: int, fns: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """(best seconds, items) of each measurement (``fns``: each returns its item count),
    over ``repeats`` rounds that take one run of each in turn.

    The best run is the one least disturbed by other work on the machine. A shared VM's
    speed drifts by half within minutes: measured one after the other, a
    ratio could set one figure's fast minute against another's slow one. In rounds, each
    figure meets the same stretch of the machine's drift.
    """
    best = {name: (float("inf"), 0) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            items = fn()
            seconds = time.perf_counter() - start
            if seconds < best[name][0]:
                best[name] = (seconds, items)
    return best


@dataclass
class Report:
    """Figures of one benchmark: printed as aligned lines, checked against targets."""

    title: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.lines.append((label, value))

    def check(self, label: str, ok: bool) -> None:
        self.checks.append((label, ok))

    def render(self) -> str:
        width = max([len(label) for label, _ in self.lines] + [10])
        out = [f"== {self.title}"]
        out += [f"  {label:<{width}}  {value}" for label, value in self.lines]
        out += [f"  [{'PASS' if ok else 'FAIL'}] {label}" for label, ok in self.checks]
        return "\n".join(out)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} events/s ({seconds * 1e6 / max(n, 1):.2f} us/event)"

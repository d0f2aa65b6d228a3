"""Benchmark input: simulator traffic exported as JSONL, cached under benchmarks/data/.

The events come from ``TrafficGenerator`` (the simulator's generator) with every attack
scenario enabled, so the mix is the one the rule pack is tuned on: mostly SSO and RADIUS,
some directory logins, LDAP, admin changes, and an injected attack every half hour.
A file is generated once per (seed, users, count, generator source) and reused: writing
1M events takes ~15 s, and the same bytes make runs comparable.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alerting import jsonutil
from alerting.events import parse_timestamp
from alerting.simulator.traffic import DAY_NS, TrafficGenerator

DATA_DIR = Path(__file__).resolve().parent / "data"
START_NS = parse_timestamp("2026-01-05T00:00:00Z")  # a Monday
DEFAULT_SEED = 7
DEFAULT_USERS = 400  # ~320k events a weekday: 1M events is about four days
DEFAULT_MIX = "simulator"  # or "portal": ~91% portal logins (alerting.simulator.traffic.mixes)


def generated(
    count: int, *, seed: int = DEFAULT_SEED, users: int = DEFAULT_USERS, mix: str = DEFAULT_MIX
) -> Iterator[dict[str, Any]]:
    """The first ``count`` events of the generator's traffic from ``START_NS`` on.

    Streams a day at a time, so memory stays at one hour's worth of events however
    large ``count`` is (the 10M-event run uses this directly, without a file).
    """
    generator = TrafficGenerator(seed=seed, users=users, mix=mix)
    produced = 0
    day = START_NS
    while produced < count:
        for raw in generator.stream(day, day + DAY_NS):
            yield raw
            produced += 1
            if produced >= count:
                return
        day += DAY_NS


def generator_version() -> str:
    """A digest of the generator's source: a changed generator means new files."""
    import alerting.simulator.traffic as traffic

    root = Path(traffic.__file__).parent if traffic.__file__.endswith("__init__.py") else None
    files = sorted(root.glob("*.py")) if root else [Path(traffic.__file__)]
    digest = hashlib.sha1(usedforsecurity=False)
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:8]


def file_name(count: int, *, seed: int, users: int, mix: str) -> Path:
    """Where ``events_file`` caches its input: every parameter and the generator's digest."""
    tag = "" if mix == DEFAULT_MIX else f"-{mix}"
    return DATA_DIR / f"events{tag}-s{seed}-u{users}-n{count}-g{generator_version()}.jsonl"


def events_file(
    count: int, *, seed: int = DEFAULT_SEED, users: int = DEFAULT_USERS, mix: str = DEFAULT_MIX
) -> Path:
    """The cached JSONL file of ``generated(count)``; written (atomically) when missing."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = file_name(count, seed=seed, users=users, mix=mix)
    if path.exists():
        return path
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    dumps = jsonutil.dumps
    with open(tmp, "w", encoding="utf-8") as fh:
        batch: list[str] = []
        for raw in generated(count, seed=seed, users=users, mix=mix):
            batch.append(dumps(raw))
            if len(batch) >= 10_000:
                fh.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            fh.write("\n".join(batch) + "\n")
    tmp.replace(path)
    return path


def ensure_file(count: int, mix: str = DEFAULT_MIX) -> Path:
    """``events_file(count)``, generated in a child process when missing, so the
    generator's memory never shows in the caller's (the memory benchmark's) RSS."""
    path = file_name(count, seed=DEFAULT_SEED, users=DEFAULT_USERS, mix=mix)
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "benchmarks.data", str(count), mix],
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
        )
    return events_file(count, mix=mix)


if __name__ == "__main__":
    print(events_file(int(sys.argv[1]), mix=sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MIX))

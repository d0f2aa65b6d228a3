"""Every public, vendor-captured DI sample (tests/data/real-events/, sources in its
SOURCES.md) replayed through the shipped pack raises exactly the alerts the README's
"Replaying the real samples" table lists: the SSO app failures, the RADIUS MS-CHAP
failure, the SCIM updates and the 2020 admin shape raise nothing; the admin console
login without MFA does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.replay import read_for_replay, replay

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "real-events"
BEGIN, END = "<!-- real-samples:begin -->", "<!-- real-samples:end -->"


def readme_expectation() -> set[tuple[str, str, str]]:
    """(rule, group JSON, summary) of each row of the README table between the markers."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = set()
    for line in block.splitlines():
        m = re.fullmatch(r"\| `([a-z0-9-]+)` \| `(\{.*\})` \| (.*) \|", line.strip())
        if m:
            group = json.dumps(json.loads(m.group(2)), sort_keys=True)
            rows.add((m.group(1), group, m.group(3).replace("\\|", "|")))
    return rows


def test_the_samples_are_all_there() -> None:
    files = sorted(SAMPLES.glob("*.jsonl"))
    events = [line for f in files for line in f.read_text(encoding="utf-8").splitlines() if line]
    assert len(files) == 9
    assert len(events) == 22  # as SOURCES.md counts them


def test_replaying_every_real_sample_raises_what_the_readme_says(tmp_path: Path) -> None:
    combined = tmp_path / "real.jsonl"  # as `cat tests/data/real-events/*.jsonl` makes it
    combined.write_text(
        "".join(f.read_text(encoding="utf-8") for f in sorted(SAMPLES.glob("*.jsonl"))),
        encoding="utf-8",
    )
    engine = Engine(load_rules([ROOT / "rules"]))
    alerts: list = []
    replay(read_for_replay(combined, engine, on_skip=pytest.fail), engine, on_alert=alerts.append)
    got = {(a.rule, json.dumps(a.group, sort_keys=True), a.summary) for a in alerts}
    expected = readme_expectation()
    assert expected, "the README table of expected alerts is missing"
    assert got == expected
    assert len(alerts) == len(got)  # no alert twice

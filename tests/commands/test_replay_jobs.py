"""``replay --jobs N``: the rules over N forked workers give the alerts and the summary
of one process, byte for byte, whatever the input's order."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from alerting import cli, jsonutil
from alerting.engine.engine import Engine
from alerting.engine.fields import MISSING
from alerting.engine.loader import load_rules
from alerting.events import Event, parse_timestamp
from alerting.replay_parallel import (
    SAMPLE_EVENTS,
    can_fork,
    owner,
    plan_jobs,
    rule_weights,
    split_rules,
)
from alerting.source.files import first_events
from tests.support.exports import overlapping_exports
from tests.support.real_events import RADIUS_FAILURE, shaped
from tests.support.replay_cli import replay_pack

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not can_fork(), reason="--jobs forks its workers")


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of simulator traffic, every attack scenario, as `simulate --export`."""
    path = tmp_path_factory.mktemp("days") / "days.jsonl"
    assert cli.main(["simulate", "--export", str(path), "--hours", "48", "--seed", "11"]) == 0
    return path


def _replay(
    events: Path, output: Path, jobs: int, capsys: pytest.CaptureFixture[str]
) -> tuple[bytes, str]:
    code = replay_pack(events, output, "--jobs", str(jobs))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return output.read_bytes(), captured.out


@pytest.mark.parametrize("form", ["sorted", "shuffled", "every event twice", "overlapping exports"])
def test_jobs_give_the_alerts_and_summary_of_one_process(
    days: Path, tmp_path: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if form == "sorted":
        events = days
    elif form == "overlapping exports":  # streamed, its repeats dropped as they come
        events, _repeated = overlapping_exports(days, tmp_path)
    else:
        lines = days.read_bytes().splitlines()
        if form == "shuffled":
            random.Random(3).shuffle(lines)
        else:
            lines = lines + lines
        events = tmp_path / "events.jsonl"
        events.write_bytes(b"\n".join(lines) + b"\n")
    one = _replay(events, tmp_path / "one.jsonl", 1, capsys)
    assert one[0].count(b"\n") > 50  # the pack fires on these days: the comparison means something
    for jobs in (2, 3) if form == "sorted" else (2,):
        assert _replay(events, tmp_path / f"jobs{jobs}.jsonl", jobs, capsys) == one


def test_jobs_read_stdin_once_for_all_workers(
    days: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _replay(days, tmp_path / "file.jsonl", 1, capsys)
    with open(days, encoding="utf-8") as stdin:  # a real file: workers close theirs
        monkeypatch.setattr("sys.stdin", stdin)
        got = _replay(Path("-"), tmp_path / "stdin.jsonl", 2, capsys)
    assert got[0] == expected[0]


def test_a_worker_that_cannot_read_gives_one_line_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "alerts.jsonl"
    code = cli.main(
        ["replay", "--events", str(tmp_path / "missing.jsonl"), "--output", str(output),
         "--rules", str(REPO / "rules"), "--jobs", "2"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "missing.jsonl" in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize("bad", ["0", "-2", "many"])
def test_jobs_must_be_a_positive_number(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["replay", "--events", "x.jsonl", "--jobs", bad])
    assert exc.value.code == 2
    assert "is not a number of processes (1 or more)" in capsys.readouterr().err


def test_split_keeps_every_rule_once_in_order_and_balances_the_heavy_ones() -> None:
    rules = load_rules([REPO / "rules"])
    shares = split_rules(rules, rule_weights(rules, []), 2)
    assert len(shares) == 2
    assert sorted(r.id for share in shares for r in share) == sorted(r.id for r in rules)
    order = {r.id: i for i, r in enumerate(rules)}
    for share in shares:
        assert [order[r.id] for r in share] == sorted(order[r.id] for r in share)
    travel = [r.id for r in rules if type(r.aggregation).__name__ == "TravelSpec"]
    sequence = [r.id for r in rules if type(r.aggregation).__name__ == "SequenceSpec"]
    if travel and sequence:  # the two costliest kinds do not pile into one worker
        where = {r.id: n for n, share in enumerate(shares) for r in share}
        assert where[travel[0]] != where[sequence[0]]
    assert split_rules(rules[:1], [1.0], 4) == [rules[:1]]


def test_the_summary_json_is_the_same_with_jobs(
    days: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summaries = []
    for jobs in (1, 2):
        path = tmp_path / f"summary{jobs}.json"
        code = cli.main(
            ["replay", "--events", str(days), "--rules", str(REPO / "rules"),
             "--summary-json", str(path), "--jobs", str(jobs)]
        )  # fmt: skip
        assert code == 0
        summaries.append(jsonutil.loads(path.read_bytes()))
    capsys.readouterr()
    assert summaries[0] == summaries[1]


def test_the_rules_grouped_by_user_run_in_every_worker_over_its_share_of_users(
    days: Path,
) -> None:
    rules = load_rules([REPO / "rules"])
    plan = plan_jobs(rules, 2, first_events(days, SAMPLE_EVENTS))
    assert len(plan) == 2
    assert {job.partition.path for job in plan if job.partition} == {"initiated_by.username"}
    spread = plan[0].partitioned
    # the costliest rules of a login-heavy org, baselines included, are spread by user
    assert {"brute-force-success", "impossible-travel", "unusual-geoip-login"} <= spread
    for job in plan:
        assert spread <= {r.id for r in job.rules}
        assert set(job.learning_starts) == {r.id for r in rules if r.id in spread} & {
            r.id for r in rules if type(r.aggregation).__name__ == "NewValueSpec"
        }
    # a digest's period spans all users, and a spray is by source IP: never spread
    assert not {"login-without-mfa-digest", "password-spray"} & spread
    whole = [r.id for job in plan for r in job.rules if r.id not in spread]
    assert sorted(whole) == sorted(r.id for r in rules if r.id not in spread)


def test_a_user_belongs_to_the_same_worker_in_every_process() -> None:
    values: list[object] = ["alice", "bob", None, 7, "ünï", {"b": 1, "a": 2}]
    here = [owner(v, 3) for v in values]
    script = (
        "from alerting.replay_parallel import owner; "
        "print([owner(v, 3) for v in ['alice', 'bob', None, 7, 'ünï', {'a': 2, 'b': 1}]])"
    )
    for seed in ("1", "2"):  # str hash() differs per seed; the partition must not
        there = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert there.strip() == str(here)
    assert owner(MISSING, 3) == owner(None, 3)  # a missing user groups as null
    assert len({owner(f"user{i}", 2) for i in range(50)}) == 2  # both workers get users


def test_a_learning_start_beyond_the_sample_is_found_and_replayed(
    days: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two exports concatenated, the later day first: the split is planned from the
    # file's first events, which miss the baselines' first hits by a day, so the
    # workers' guess of when learning starts is a day late.
    lines = days.read_bytes().splitlines()
    half = len(lines) // 2
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines[half:] + lines[:half]) + b"\n")
    one = _replay(events, tmp_path / "one.jsonl", 1, capsys)
    with caplog.at_level(logging.INFO, logger="alerting.replay_parallel"):
        two = _replay(events, tmp_path / "two.jsonl", 2, capsys)
    assert two == one
    assert "replayed again from its true learning start" in caplog.text


def test_a_view_of_an_engine_shares_its_rules_state(tmp_path: Path) -> None:
    rules = load_rules([REPO / "rules"])
    engine = Engine(rules)
    view = engine.restricted_to({"failed-login-burst"})
    assert [r.id for r in view.rules] == ["failed-login-burst"]
    start = parse_timestamp("2023-06-15T15:16:41Z")
    failures = [
        Event.from_raw(shaped(RADIUS_FAILURE, f"f{i}", start + i * 10**9)) for i in range(10)
    ]
    # half the burst through the view, half through the engine: one rule, one window
    alerts = [a for e in failures[:5] for a in view.process(e)]
    alerts += [a for e in failures[5:] for a in engine.process(e)]
    assert [a.rule for a in alerts if a.rule == "failed-login-burst"] == ["failed-login-burst"]


def test_the_split_is_weighed_by_what_the_input_makes_the_rules_do(
    days: Path, tmp_path: Path
) -> None:
    rules = load_rules([REPO / "rules"])
    weights = dict(
        zip(
            [r.id for r in rules],
            rule_weights(rules, first_events(days, SAMPLE_EVENTS)),
            strict=True,
        )
    )
    # simulator traffic is mostly SSO logins: travel meets them all, admin rules almost none
    assert weights["impossible-travel"] > 10 * weights["admin-created"]
    # an input that cannot be read gives no sample: the split falls back to the rules' kinds
    assert first_events(tmp_path / "missing.jsonl", SAMPLE_EVENTS) == []
    plan = plan_jobs(rules, 2, [])
    assert {r.id for job in plan for r in job.rules} == {r.id for r in rules}
    # a baseline's learning start is not known without a sample: each runs whole, once
    baselines = [r.id for r in rules if type(r.aggregation).__name__ == "NewValueSpec"]
    placed = [r.id for job in plan for r in job.rules if r.id in baselines]
    assert sorted(placed) == sorted(baselines)
